// libFuzzer target: the safetensors header parser and float conversion must reject any
// malformed input with a clipserve::Error, never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <span>

#include "clipserve/error.h"
#include "model/layout.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  try {
    clipserve::SafetensorsHeader h = clipserve::parse_safetensors_header(bytes, "fuzz");
    // Bound the work per input: conversion allocates numel floats.
    uint64_t total = 0;
    for (const auto& t : h.tensors) total += t.end - t.begin;
    if (total > (64u << 20)) return 0;
    clipserve::WeightMap m = clipserve::safetensors_to_weight_map(bytes, h, "fuzz");
    clipserve::ModelConfig cfg;
    cfg.embed_dim = 4;
    cfg.vision = {8, 4, 8, 1, 4, 4.0f};
    cfg.text = {4, 8, 8, 2, 1, 4.0f};
    clipserve::check_weights(m, cfg);
  } catch (const clipserve::Error&) {
  }
  return 0;
}

// Synthetic CLIP weights per ../shared/fixtures/SYNTHETIC.md (spec v1): deterministic,
// bit-identical to the Python generator that made the goldens, for any config and seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve {

uint64_t fnv1a64(const std::string& bytes);
uint64_t splitmix64(uint64_t s);

/// The distribution the spec assigns to a tensor: value = float32(center + a * (2u - 1)),
/// a = sqrt(3) * std; `constant` tensors (logit_scale) are exactly float32(center).
struct SyntheticRule {
  bool constant = false;
  double center = 0.0;
  double std = 0.0;
};
/// Throws Error(kInvalidArgument) for a name the spec has no rule for.
SyntheticRule synthetic_rule(const std::string& name, const std::vector<int64_t>& shape,
                             const ModelConfig& cfg);

/// Fills `out[0..n)` with elements `first..first+n` of the tensor.
void synthetic_fill(const std::string& name, const SyntheticRule& rule, uint64_t seed,
                    uint64_t first, size_t n, float* out);

/// All tensors of the config (open_clip names and shapes), owned float32. Uses up to
/// `threads` threads (0 = hardware concurrency).
WeightMap synthetic_weights(const ModelConfig& cfg, uint64_t seed, int threads = 0);

/// Writes `dir/open_clip_config.json` and `dir/open_clip_model.safetensors` (tensors in
/// open_clip's state-dict order, metadata format=pt, synthetic_spec=v1, seed). Creates `dir`.
void write_synthetic_model(const ModelConfig& cfg, uint64_t seed, const std::string& dir,
                           int threads = 0);

}  // namespace clipserve

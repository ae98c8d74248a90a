// transformers OwlViTForObjectDetection checkpoints (config.json + model.safetensors /
// pytorch_model.bin): the CLIP towers under `owlvit.` mapped to the internal open_clip layout
// (hf_format.h), the detection heads (class_head, box_head, layer_norm) kept apart.
#pragma once

#include <string>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve {

/// The preprocess resize_mode of OwlViTImageProcessor: convert("RGB") first, then Pillow
/// bicubic to S x S without keeping the aspect ratio (no crop).
inline constexpr const char* kResizeSquashRgbFirst = "squash_rgb_first";

/// True when a config.json text declares model_type "owlvit" (invalid JSON: false).
bool is_owlvit_config(const std::string& config_json);

/// Parses an OwlViTConfig config.json (+ preprocessor_config.json text if given) into the
/// ModelConfig of its CLIP towers; preprocess.resize_mode is kResizeSquashRgbFirst. Throws
/// Error naming `source` (kUnsupported when projection_dim != text width: the class head
/// compares text-width embeddings with the projected queries).
ModelConfig parse_owlvit_config(const std::string& config_json, const std::string& source,
                                const std::string& preprocessor_json = "");

struct OwlVitWeights {
  WeightMap towers;  ///< open_clip names (visual.*, transformer.*, ...): for nn::Backend
  WeightMap heads;   ///< transformers names: class_head.*, box_head.*, layer_norm.*
};

/// Splits and renames a transformers OwlViTForObjectDetection state dict. `*.position_ids`
/// buffers (saved by transformers <= 4.30) are accepted and ignored; any other unknown
/// tensor is an error naming it. Tensors stay zero-copy views where possible.
OwlVitWeights split_owlvit_weights(WeightMap hf, const ModelConfig& cfg);

/// Loads an OWL-ViT model directory or model name (`hf-hub:google/owlvit-base-patch32`, or
/// `google/owlvit-base-patch32` etc. without the prefix) through the hub cache.
struct LoadedOwlVit {
  ModelConfig config;
  OwlVitWeights weights;
};
LoadedOwlVit load_owlvit(const std::string& model);

}  // namespace clipserve

// Synthetic OWL-ViT checkpoints for tests and benchmarks: SYNTHETIC.md's rules for the CLIP
// towers plus rules for the detection heads (docs/detect.md), written in the transformers
// OwlViTForObjectDetection layout (config.json, preprocessor_config.json, model.safetensors).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "clipserve/model_config.h"

namespace clipserve {

/// The towers of google/owlvit-base-patch32, owlvit-base-patch16, owlvit-large-patch14
/// (accepted with or without the "google/" prefix). Throws Error(kNotFound) otherwise.
ModelConfig owlvit_arch_config(const std::string& name);
std::vector<std::string> owlvit_arch_names();

/// transformers' OwlViTConfig config.json / OwlViTImageProcessor preprocessor_config.json.
std::string owlvit_config_json(const ModelConfig& cfg);
std::string owlvit_preprocessor_json(const ModelConfig& cfg);

/// Writes dir/config.json, dir/preprocessor_config.json and dir/model.safetensors: the
/// towers' spec-v1 synthetic tensors under transformers' names (`owlvit.` prefix), and the
/// heads: layer_norm.weight 1 +- 0.1, layer_norm.bias 0 +- 0.1, other biases 0 +- 0.02, other
/// weights std in_features^-0.5 (same generator, keyed by the transformers name).
void write_synthetic_owlvit(const ModelConfig& cfg, uint64_t seed, const std::string& dir,
                            int threads = 0);

}  // namespace clipserve

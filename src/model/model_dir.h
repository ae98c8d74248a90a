// Loading a model directory (open_clip_config.json + open_clip_model.safetensors) into a
// validated config and weight map: the entry point the Encoder uses.
#pragma once

#include <string>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve {

struct LoadedModel {
  ModelConfig config;
  WeightMap weights;
};

/// Reads `dir/open_clip_config.json` and `dir/open_clip_model.safetensors`, checks every
/// tensor against the config (check_weights). F16/BF16 weights are upcast to float32.
/// Throws Error naming the file and tensor on any problem.
LoadedModel load_model_dir(const std::string& dir);

}  // namespace clipserve

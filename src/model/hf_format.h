// Hugging Face transformers CLIPModel checkpoints (config.json + model.safetensors /
// pytorch_model.bin) mapped to and from the internal open_clip layout: HF names, separate
// q/k/v projections (open_clip: one in_proj), projections stored transposed
// (nn.Linear weight [out, in] vs open_clip's [in, out] matrices), hidden_act -> quick_gelu.
#pragma once

#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace clipserve {

/// Parses a transformers CLIPModel `config.json` (and, if given, the text of
/// `preprocessor_config.json`). Throws Error naming `source` and the field;
/// Error(kUnsupported) for non-CLIP models or options open_clip's CLIP cannot express.
ModelConfig parse_hf_clip_config(const std::string& config_json, const std::string& source,
                                 const std::string& preprocessor_json = "");

/// Renames / merges / transposes HF CLIPModel tensors into open_clip tensors. Renamed
/// tensors stay zero-copy views into `hf` (which is kept alive). Integer buffers such as
/// `*.position_ids` are ignored; any other unknown tensor is an error naming it.
WeightMap hf_to_open_clip(WeightMap hf, const ModelConfig& cfg);

/// The HF CLIPModel tensors of open_clip weights, in transformers' state-dict order.
/// `storage` receives the buffers of split / transposed tensors (keep it alive while the
/// returned pointers are used).
std::vector<TensorToWrite> open_clip_to_hf(const WeightMap& w, const ModelConfig& cfg,
                                           std::vector<std::vector<float>>& storage);

/// transformers' config.json / preprocessor_config.json for a config.
std::string hf_clip_config_json(const ModelConfig& cfg);
std::string hf_preprocessor_config_json(const ModelConfig& cfg);

}  // namespace clipserve

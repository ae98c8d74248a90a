// Loading models: a model directory in any supported format, or a model name (hub tag,
// hf-hub repository) that is downloaded into the Hugging Face cache first. Everything ends
// as one validated ModelConfig + WeightMap in the open_clip layout.
//
//   LoadedModel m = load_model("ViT-B-32/laion2b_s34b_b79k");  // downloads once
//   LoadedModel d = load_model("path/to/dir");                 // any supported format
#pragma once

#include <optional>
#include <string>

#include "clipserve/model_config.h"
#include "model/hub.h"
#include "model/weights.h"

namespace clipserve {

struct LoadedModel {
  ModelConfig config;
  WeightMap weights;
};

/// The checkpoint formats of a directory.
enum class ModelFormat {
  kOpenClipSafetensors,  ///< open_clip_config.json + open_clip_model.safetensors
  kOpenClipTorch,        ///< open_clip_config.json + open_clip_pytorch_model.bin
  kHfSafetensors,        ///< config.json (CLIPModel) + model.safetensors
  kHfTorch,              ///< config.json (CLIPModel) + pytorch_model.bin
};
const char* model_format_name(ModelFormat f);
/// Detects the format of a directory; throws Error(kNotFound/kInvalidArgument) naming the
/// directory and the files it looked for.
ModelFormat detect_model_format(const std::string& dir);

/// Loads a directory in any supported format. `config_override`, if given, replaces the
/// directory's config (open_clip pretrained tags come with their own config and no file).
/// Checks every tensor against the config (check_weights). F16/BF16 weights are upcast.
/// A `dir` that does not exist is taken as a model name and goes through load_model (hub
/// options from the environment), so callers given a `--model` argument accept names too.
LoadedModel load_model_dir(const std::string& dir,
                           const std::optional<ModelConfig>& config_override = std::nullopt);

/// The config of a directory in any supported format (no weights are read).
ModelConfig load_model_dir_config(const std::string& dir);

/// A model name made local: the directory holding its files and, for ARCH/TAG names, the
/// config open_clip would build for it.
struct ResolvedModel {
  std::string dir;
  std::optional<ModelConfig> config;
  std::string description;  ///< what it is, for messages
};
/// Resolves a model argument (see parse_model_name), downloading missing files into the
/// hub cache. Errors name the model and the files tried.
ResolvedModel resolve_model(const std::string& name, const HubOptions& opt);

/// The config a model name resolves to (files downloaded if needed, weights not read).
ModelConfig load_model_config_for(const std::string& name);

/// resolve_model + load_model_dir, with options from the environment by default.
LoadedModel load_model(const std::string& name);
LoadedModel load_model(const std::string& name, const HubOptions& opt);

}  // namespace clipserve

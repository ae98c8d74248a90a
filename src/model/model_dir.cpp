// load_model_dir: config + safetensors of an open_clip model directory, validated together.
#include "model/model_dir.h"

#include <filesystem>

#include "core/check.h"
#include "model/layout.h"
#include "model/safetensors.h"

namespace clipserve {

LoadedModel load_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    if (fs::exists(dir, ec)) CS_THROW(kInvalidArgument, dir, ": not a model directory");
    CS_THROW(kNotFound, dir, ": model directory not found");
  }
  const std::string config_path = dir + "/open_clip_config.json";
  const std::string weights_path = dir + "/open_clip_model.safetensors";
  CS_CHECK_ARG(fs::exists(config_path, ec), dir,
               ": not an open_clip model directory (open_clip_config.json is missing)");
  CS_CHECK_ARG(fs::exists(weights_path, ec), dir, ": open_clip_model.safetensors is missing");
  LoadedModel m{load_model_config(config_path), load_safetensors(weights_path)};
  check_weights(m.weights, m.config);
  return m;
}

}  // namespace clipserve

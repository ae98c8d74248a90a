// Model architecture and preprocessing configuration, as in open_clip's model_configs JSON
// and the `open_clip_config.json` of hub model repositories.
//
//   auto cfg = clipserve::builtin_model_config("ViT-B-32");          // open_clip's values
//   auto cfg2 = clipserve::load_model_config("dir/open_clip_config.json");
//
// Thread-safety: plain values; the functions are reentrant.
#pragma once

#include <array>
#include <string>
#include <vector>

namespace clipserve {

struct VisionConfig {
  int image_size = 224;
  int patch_size = 16;  ///< open_clip's CLIPVisionCfg default
  int width = 768;
  int layers = 12;
  int head_width = 64;  ///< heads = width / head_width (open_clip's rule)
  float mlp_ratio = 4.0f;
  int heads() const { return width / head_width; }
  /// MLP hidden width: int(width * mlp_ratio) as open_clip computes it.
  int mlp_width() const { return static_cast<int>(width * static_cast<double>(mlp_ratio)); }
  int grid() const { return image_size / patch_size; }
  int tokens() const { return grid() * grid() + 1; }
};

struct TextConfig {
  int context_length = 77;
  int vocab_size = 49408;
  int width = 512;
  int heads = 8;
  int layers = 12;
  float mlp_ratio = 4.0f;
  int head_width() const { return width / heads; }
  int mlp_width() const { return static_cast<int>(width * static_cast<double>(mlp_ratio)); }
};

/// open_clip's eval transform parameters (`preprocess_cfg`).
struct PreprocessConfig {
  int size = 224;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  ///< OpenAI values
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  std::string interpolation = "bicubic";
  std::string resize_mode = "shortest";
  int fill_color = 0;
};

struct ModelConfig {
  std::string name;  ///< arch name or the config file path (not serialized)
  int embed_dim = 512;
  bool quick_gelu = false;
  VisionConfig vision;
  TextConfig text;
  PreprocessConfig preprocess;
};

/// open_clip's built-in architectures: ViT-B-32, ViT-B-32-quickgelu, ViT-B-16,
/// ViT-B-16-quickgelu, ViT-L-14, ViT-L-14-quickgelu, ViT-L-14-336.
std::vector<std::string> builtin_model_names();
/// Throws Error(kNotFound) for an unknown name, listing the known ones.
ModelConfig builtin_model_config(const std::string& name);
/// Parses `{"model_cfg": {...}, "preprocess_cfg": {...}}` or a bare model_cfg object.
/// Missing fields take open_clip's defaults (CLIPVisionCfg / CLIPTextCfg); preprocess
/// size defaults to the vision image_size. Throws Error(kInvalidArgument) naming `source`
/// and the bad field, Error(kUnsupported) for architecture options clipserve does not
/// implement (timm / HF towers, attentional pooling, layer scale, ...).
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
/// Reads and parses a config file; throws Error(kNotFound) when the file is missing.
ModelConfig load_model_config(const std::string& path);
/// Serializes to the open_clip_config.json layout (`model_cfg` + `preprocess_cfg`,
/// 2-space indent); parse_model_config(model_config_to_json(c)) == c.
std::string model_config_to_json(const ModelConfig& cfg);

bool operator==(const VisionConfig& a, const VisionConfig& b);
bool operator==(const TextConfig& a, const TextConfig& b);
bool operator==(const PreprocessConfig& a, const PreprocessConfig& b);
/// Compares the architecture and preprocessing (not `name`).
bool operator==(const ModelConfig& a, const ModelConfig& b);

}  // namespace clipserve

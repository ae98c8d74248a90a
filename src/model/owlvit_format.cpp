// OwlViTForObjectDetection checkpoints: config, tensor split and renames, directory loading.
#include "model/owlvit_format.h"

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/file.h"
#include "model/hf_format.h"
#include "model/layout.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/torch_zip.h"

namespace clipserve {

namespace {

using Json = nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The detection heads of OwlViTForObjectDetection (OWL-ViT v1: no objectness head).
bool is_head_tensor(const std::string& name) {
  static const char* const kHeads[] = {
      "class_head.dense0", "class_head.logit_shift", "class_head.logit_scale",
      "box_head.dense0",   "box_head.dense1",        "box_head.dense2",
      "layer_norm"};
  for (const char* h : kHeads) {
    const std::string p(h);
    if (name == p + ".weight" || name == p + ".bias") return true;
  }
  return false;
}

}  // namespace

bool is_owlvit_config(const std::string& config_json) {
  try {
    const Json j = Json::parse(config_json);
    return j.is_object() && j.value("model_type", std::string()) == "owlvit";
  } catch (const Json::exception&) {
    return false;
  }
}

ModelConfig parse_owlvit_config(const std::string& config_json, const std::string& source,
                                const std::string& preprocessor_json) {
  Json j;
  try {
    j = Json::parse(config_json);
  } catch (const Json::exception& e) {
    CS_THROW(kInvalidArgument, source, ": invalid JSON: ", e.what());
  }
  CS_CHECK_ARG(j.is_object() && j.value("model_type", std::string()) == "owlvit", source,
               ": not an OWL-ViT config (model_type 'owlvit' expected)");
  // The towers are CLIP's: reuse the transformers CLIP parser for them. transformers'
  // OwlViTConfig defaults differ from CLIP's where a field is missing: text
  // max_position_embeddings 16, vision image_size 768, projection_dim 512.
  Json c = j;
  c["model_type"] = "clip";
  if (!c.contains("text_config") || !c["text_config"].is_object())
    c["text_config"] = Json::object();
  if (!c.contains("vision_config") || !c["vision_config"].is_object())
    c["vision_config"] = Json::object();
  if (!c["text_config"].contains("max_position_embeddings"))
    c["text_config"]["max_position_embeddings"] = 16;
  if (!c["vision_config"].contains("image_size")) c["vision_config"]["image_size"] = 768;
  ModelConfig cfg = parse_hf_clip_config(c.dump(), source, preprocessor_json);
  CS_CHECK_ARG(cfg.vision.image_size % cfg.vision.patch_size == 0, source, ": vision image_size ",
               cfg.vision.image_size, " is not a multiple of patch_size ", cfg.vision.patch_size);
  if (cfg.embed_dim != cfg.text.width)
    CS_THROW(kUnsupported, source, ": projection_dim ", cfg.embed_dim,
             " differs from the text width ", cfg.text.width,
             " (OWL-ViT's class head needs them equal)");
  cfg.preprocess.resize_mode = kResizeSquashRgbFirst;
  cfg.preprocess.interpolation = "bicubic";
  return cfg;
}

OwlVitWeights split_owlvit_weights(WeightMap hf_in, const ModelConfig& cfg) {
  auto hf = std::make_shared<WeightMap>(std::move(hf_in));
  const std::string src = hf->source();
  WeightMap towers(src), heads(src);
  towers.keep_alive(hf);
  heads.keep_alive(hf);
  for (const std::string& name : hf->names()) {
    const WeightTensor& t = hf->at(name);
    if (starts_with(name, "owlvit.")) {
      std::string n = name.substr(7);
      if (starts_with(n, "vision_model.pre_layernorm."))  // CLIP spells it pre_layrnorm
        n = "vision_model.pre_layrnorm." + n.substr(27);
      towers.add_view(n, t.shape, t.data);
    } else if (is_head_tensor(name)) {
      heads.add_view(name, t.shape, t.data);
    } else {
      CS_CHECK_ARG(ends_with(name, ".position_ids"), src, ": unexpected tensor '", name,
                   "' for a transformers OwlViTForObjectDetection");
    }
  }
  OwlVitWeights out{hf_to_open_clip(std::move(towers), cfg), std::move(heads)};
  check_weights(out.towers, cfg);
  return out;
}

LoadedOwlVit load_owlvit(const std::string& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string dir = model;
  if (!fs::exists(model, ec)) {
    std::string name = model;
    // transformers-style names: ORG/NAME (google/owlvit-base-patch32) is a hub repository.
    const size_t slash = name.find('/');
    const bool org_name = slash != std::string::npos && slash > 0 && name[0] != '.' &&
                          name.find('/', slash + 1) == std::string::npos && slash + 1 < name.size();
    if (!starts_with(name, "hf-hub:")) {
      if (!org_name) {
        CS_THROW(kNotFound, "model '", model,
                 "' is not a directory nor a hub name (google/owlvit-base-patch32, "
                 "google/owlvit-base-patch16, google/owlvit-large-patch14, hf-hub:ORG/NAME)");
      }
      name = "hf-hub:" + name;
    }
    dir = resolve_model(name, hub_options_from_env()).dir;
  }
  CS_CHECK_ARG(fs::is_directory(dir, ec), model, ": model directory not found");
  const std::string config_path = dir + "/config.json";
  CS_CHECK_ARG(fs::exists(config_path, ec), dir, ": config.json is missing");
  const std::string config_text = read_file_text(config_path);
  CS_CHECK_ARG(is_owlvit_config(config_text), config_path,
               ": not an OWL-ViT model (model_type 'owlvit' expected)");
  const std::string pre = fs::exists(dir + "/preprocessor_config.json", ec)
                              ? read_file_text(dir + "/preprocessor_config.json")
                              : std::string();
  LoadedOwlVit r;
  r.config = parse_owlvit_config(config_text, config_path, pre);
  WeightMap w;
  if (fs::exists(dir + "/model.safetensors", ec)) {
    w = load_safetensors(dir + "/model.safetensors");
  } else if (fs::exists(dir + "/pytorch_model.bin", ec)) {
    w = load_torch_checkpoint(dir + "/pytorch_model.bin");
  } else {
    CS_THROW(kInvalidArgument, dir, ": no model.safetensors or pytorch_model.bin");
  }
  r.weights = split_owlvit_weights(std::move(w), r.config);
  return r;
}

}  // namespace clipserve

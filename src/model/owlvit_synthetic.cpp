// Synthetic OWL-ViT checkpoints (owlvit_synthetic.h).
#include "model/owlvit_synthetic.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/file.h"
#include "model/hf_format.h"
#include "model/owlvit_format.h"
#include "model/safetensors.h"
#include "model/synthetic.h"

namespace clipserve {

namespace {

using OrderedJson = nlohmann::ordered_json;

ModelConfig tower_config(int vw, int vlayers, int vheads, int patch, int image, int tw, int theads,
                         int proj) {
  ModelConfig c;
  c.embed_dim = proj;
  c.quick_gelu = true;
  c.vision.width = vw;
  c.vision.layers = vlayers;
  c.vision.head_width = vw / vheads;
  c.vision.patch_size = patch;
  c.vision.image_size = image;
  c.vision.mlp_ratio = 4.0f;
  c.text.width = tw;
  c.text.heads = theads;
  c.text.layers = 12;
  c.text.context_length = 16;
  c.text.vocab_size = 49408;
  c.preprocess.size = image;
  c.preprocess.resize_mode = kResizeSquashRgbFirst;
  return c;
}

}  // namespace

std::vector<std::string> owlvit_arch_names() {
  return {"owlvit-base-patch32", "owlvit-base-patch16", "owlvit-large-patch14"};
}

ModelConfig owlvit_arch_config(const std::string& name_in) {
  std::string name = name_in;
  if (name.rfind("google/", 0) == 0) name = name.substr(7);
  ModelConfig c;
  if (name == "owlvit-base-patch32") {
    c = tower_config(768, 12, 12, 32, 768, 512, 8, 512);
  } else if (name == "owlvit-base-patch16") {
    c = tower_config(768, 12, 12, 16, 768, 512, 8, 512);
  } else if (name == "owlvit-large-patch14") {
    c = tower_config(1024, 24, 16, 14, 840, 768, 12, 768);
  } else {
    CS_THROW(kNotFound, "unknown OWL-ViT architecture '", name_in,
             "' (known: owlvit-base-patch32, owlvit-base-patch16, owlvit-large-patch14)");
  }
  c.name = name;
  return c;
}

std::string owlvit_config_json(const ModelConfig& cfg) {
  OrderedJson j = OrderedJson::parse(hf_clip_config_json(cfg));
  j["architectures"] = {"OwlViTForObjectDetection"};
  j["model_type"] = "owlvit";
  j["text_config"]["model_type"] = "owlvit_text_model";
  j["text_config"]["pad_token_id"] = 0;
  j["vision_config"]["model_type"] = "owlvit_vision_model";
  return j.dump(2) + "\n";
}

std::string owlvit_preprocessor_json(const ModelConfig& cfg) {
  const auto& p = cfg.preprocess;
  auto triple = [](const std::array<float, 3>& a) {
    return OrderedJson::array({double(a[0]), double(a[1]), double(a[2])});
  };
  const int s = cfg.vision.image_size;
  OrderedJson j = {{"crop_size", {{"height", s}, {"width", s}}},
                   {"do_center_crop", true},
                   {"do_normalize", true},
                   {"do_rescale", true},
                   {"do_resize", true},
                   {"image_mean", triple(p.mean)},
                   {"image_processor_type", "OwlViTImageProcessor"},
                   {"image_std", triple(p.std)},
                   {"processor_class", "OwlViTProcessor"},
                   {"resample", 3},
                   {"rescale_factor", 1.0 / 255},
                   {"size", {{"height", s}, {"width", s}}}};
  return j.dump(2) + "\n";
}

void write_synthetic_owlvit(const ModelConfig& cfg, uint64_t seed, const std::string& dir,
                            int threads) {
  CS_CHECK_ARG(cfg.embed_dim == cfg.text.width,
               "OWL-ViT needs projection_dim == text width (class head)");
  std::filesystem::create_directories(dir);
  const WeightMap towers = synthetic_weights(cfg, seed, threads);
  std::vector<std::vector<float>> storage;
  std::vector<TensorToWrite> tensors = open_clip_to_hf(towers, cfg, storage);
  for (auto& t : tensors) {
    std::string n = t.name;
    if (n.rfind("vision_model.pre_layrnorm.", 0) == 0)
      n = "vision_model.pre_layernorm." + n.substr(26);  // OWL-ViT spells it right
    t.name = "owlvit." + n;
  }
  const int64_t d = cfg.vision.width, tw = cfg.text.width;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> heads = {
      {"class_head.dense0.weight", {tw, d}},
      {"class_head.dense0.bias", {tw}},
      {"class_head.logit_shift.weight", {1, d}},
      {"class_head.logit_shift.bias", {1}},
      {"class_head.logit_scale.weight", {1, d}},
      {"class_head.logit_scale.bias", {1}},
      {"box_head.dense0.weight", {d, d}},
      {"box_head.dense0.bias", {d}},
      {"box_head.dense1.weight", {d, d}},
      {"box_head.dense1.bias", {d}},
      {"box_head.dense2.weight", {4, d}},
      {"box_head.dense2.bias", {4}},
      {"layer_norm.weight", {d}},
      {"layer_norm.bias", {d}}};
  storage.reserve(storage.size() + heads.size());
  for (const auto& [name, shape] : heads) {
    SyntheticRule r;
    if (name == "layer_norm.weight") {
      r = {false, 1.0, 0.1};
    } else if (name == "layer_norm.bias") {
      r = {false, 0.0, 0.1};
    } else {
      r = synthetic_rule(name, shape, cfg);
    }
    size_t n = 1;
    for (int64_t s : shape) n *= static_cast<size_t>(s);
    storage.emplace_back(n);
    synthetic_fill(name, r, seed, 0, n, storage.back().data());
    tensors.push_back({name, shape, storage.back().data()});
  }
  write_safetensors(
      dir + "/model.safetensors", tensors,
      {{"format", "pt"}, {"synthetic_spec", "v1+owlvit-heads"}, {"seed", std::to_string(seed)}});
  auto write_text = [](const std::string& path, const std::string& text) {
    write_file_atomic(
        path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  };
  write_text(dir + "/config.json", owlvit_config_json(cfg));
  write_text(dir + "/preprocessor_config.json", owlvit_preprocessor_json(cfg));
}

}  // namespace clipserve

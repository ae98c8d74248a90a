// transformers CLIPModel <-> open_clip CLIP: config fields and tensor names / layouts.
#include "model/hf_format.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "core/check.h"
#include "model/layout.h"
#include "model/weights.h"

namespace clipserve {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

int json_int(const Json& obj, const char* key, int fallback, const std::string& where,
             const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  CS_CHECK_ARG(
      it->is_number_integer() && it->get<int64_t>() >= 1 && it->get<int64_t>() <= (1 << 24), source,
      ": field '", where, key, "' must be a positive integer, got ", it->dump());
  return static_cast<int>(it->get<int64_t>());
}

std::string json_str(const Json& obj, const char* key, const std::string& fallback,
                     const std::string& where, const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  CS_CHECK_ARG(it->is_string(), source, ": field '", where, key, "' must be a string");
  return it->get<std::string>();
}

// The open_clip block part name for each HF block part that is a plain rename.
const std::vector<std::pair<std::string, std::string>> kBlockRenames = {
    {"ln_1.weight", "layer_norm1.weight"},
    {"ln_1.bias", "layer_norm1.bias"},
    {"attn.out_proj.weight", "self_attn.out_proj.weight"},
    {"attn.out_proj.bias", "self_attn.out_proj.bias"},
    {"ln_2.weight", "layer_norm2.weight"},
    {"ln_2.bias", "layer_norm2.bias"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},
    {"mlp.c_fc.bias", "mlp.fc1.bias"},
    {"mlp.c_proj.weight", "mlp.fc2.weight"},
    {"mlp.c_proj.bias", "mlp.fc2.bias"},
};

// Plain renames outside the blocks (open_clip name, HF name).
const std::vector<std::pair<std::string, std::string>> kTopRenames = {
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"logit_scale", "logit_scale"},
    {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},  // sic: transformers' name
    {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
    {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
    {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
};

// (open_clip, HF) for transposed projections.
const std::vector<std::pair<std::string, std::string>> kTransposed = {
    {"text_projection", "text_projection.weight"},
    {"visual.proj", "visual_projection.weight"},
};

std::vector<float> transpose(const float* src, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = src[r * cols + c];
  return out;
}

}  // namespace

ModelConfig parse_hf_clip_config(const std::string& config_json, const std::string& source,
                                 const std::string& preprocessor_json) {
  Json j;
  try {
    j = Json::parse(config_json);
  } catch (const Json::exception& e) {
    CS_THROW(kInvalidArgument, source, ": invalid JSON: ", e.what());
  }
  CS_CHECK_ARG(j.is_object(), source, ": config.json must be a JSON object");
  std::string model_type = json_str(j, "model_type", "clip", "", source);
  if (model_type != "clip") {
    CS_THROW(kUnsupported, source, ": model_type '", model_type,
             "' is not supported (clipserve loads transformers CLIPModel, model_type 'clip')");
  }
  const Json empty = Json::object();
  auto sub = [&](const char* a, const char* b) -> const Json& {
    if (j.contains(a) && j[a].is_object()) return j[a];
    if (j.contains(b) && j[b].is_object()) return j[b];
    return empty;
  };
  const Json& tc = sub("text_config", "text_config_dict");
  const Json& vc = sub("vision_config", "vision_config_dict");
  ModelConfig cfg;
  cfg.name = source;
  cfg.embed_dim = json_int(j, "projection_dim", 512, "", source);
  TextConfig& t = cfg.text;
  t.width = json_int(tc, "hidden_size", 512, "text_config.", source);
  int t_mlp = json_int(tc, "intermediate_size", 2048, "text_config.", source);
  t.heads = json_int(tc, "num_attention_heads", 8, "text_config.", source);
  t.layers = json_int(tc, "num_hidden_layers", 12, "text_config.", source);
  t.context_length = json_int(tc, "max_position_embeddings", 77, "text_config.", source);
  t.vocab_size = json_int(tc, "vocab_size", 49408, "text_config.", source);
  VisionConfig& v = cfg.vision;
  v.width = json_int(vc, "hidden_size", 768, "vision_config.", source);
  int v_mlp = json_int(vc, "intermediate_size", 3072, "vision_config.", source);
  int v_heads = json_int(vc, "num_attention_heads", 12, "vision_config.", source);
  v.layers = json_int(vc, "num_hidden_layers", 12, "vision_config.", source);
  v.image_size = json_int(vc, "image_size", 224, "vision_config.", source);
  v.patch_size = json_int(vc, "patch_size", 32, "vision_config.", source);
  CS_CHECK_ARG(json_int(vc, "num_channels", 3, "vision_config.", source) == 3, source,
               ": field 'vision_config.num_channels' must be 3");
  CS_CHECK_ARG(v.width % v_heads == 0, source, ": vision_config.hidden_size ", v.width,
               " is not a multiple of num_attention_heads ", v_heads);
  CS_CHECK_ARG(t.width % t.heads == 0, source, ": text_config.hidden_size ", t.width,
               " is not a multiple of num_attention_heads ", t.heads);
  CS_CHECK_ARG(v.patch_size <= v.image_size, source,
               ": vision_config.patch_size is larger than image_size");
  v.head_width = v.width / v_heads;
  v.mlp_ratio = static_cast<float>(double(v_mlp) / v.width);
  t.mlp_ratio = static_cast<float>(double(t_mlp) / t.width);
  CS_CHECK_ARG(v.mlp_width() == v_mlp && t.mlp_width() == t_mlp, source,
               ": intermediate_size / hidden_size is not representable as an open_clip mlp_ratio");
  std::string tact = json_str(tc, "hidden_act", "quick_gelu", "text_config.", source);
  std::string vact = json_str(vc, "hidden_act", "quick_gelu", "vision_config.", source);
  for (const auto& act : {tact, vact}) {
    if (act != "gelu" && act != "quick_gelu")
      CS_THROW(kUnsupported, source, ": hidden_act '", act,
               "' is not supported (only gelu and quick_gelu, as in open_clip)");
  }
  if (tact != vact)
    CS_THROW(kUnsupported, source, ": the text (", tact, ") and vision (", vact,
             ") towers use different activations; open_clip's CLIP has one quick_gelu flag");
  cfg.quick_gelu = tact == "quick_gelu";
  for (const Json* c : {&tc, &vc}) {
    auto it = c->find("layer_norm_eps");
    if (it != c->end() && it->is_number() && std::fabs(it->get<double>() - 1e-5) > 1e-12)
      CS_THROW(kUnsupported, source, ": layer_norm_eps ", it->get<double>(),
               " is not supported (open_clip uses 1e-5)");
  }
  cfg.preprocess.size = v.image_size;
  if (!preprocessor_json.empty()) {
    Json p;
    try {
      p = Json::parse(preprocessor_json);
    } catch (const Json::exception& e) {
      CS_THROW(kInvalidArgument, source, ": preprocessor_config.json: invalid JSON: ", e.what());
    }
    auto triple = [&](const char* key, std::array<float, 3>& out) {
      if (!p.contains(key)) return;
      const Json& a = p[key];
      CS_CHECK_ARG(
          a.is_array() && a.size() == 3 && a[0].is_number() && a[1].is_number() && a[2].is_number(),
          source, ": preprocessor_config.json: '", key, "' must be 3 numbers");
      for (int i = 0; i < 3; ++i) out[i] = a[i].get<float>();
    };
    triple("image_mean", cfg.preprocess.mean);
    triple("image_std", cfg.preprocess.std);
    for (float s : cfg.preprocess.std)
      CS_CHECK_ARG(s > 0, source, ": preprocessor_config.json: image_std must be positive");
    if (p.contains("crop_size")) {
      const Json& c = p["crop_size"];
      if (c.is_number_integer()) cfg.preprocess.size = c.get<int>();
      if (c.is_object() && c.contains("height") && c["height"].is_number_integer())
        cfg.preprocess.size = c["height"].get<int>();
      CS_CHECK_ARG(cfg.preprocess.size >= 1 && cfg.preprocess.size <= 8192, source,
                   ": preprocessor_config.json: bad crop_size");
    }
    if (p.contains("resample") && p["resample"].is_number_integer()) {
      int r = p["resample"].get<int>();  // PIL codes
      cfg.preprocess.interpolation = r == 2 ? "bilinear" : r == 0 ? "nearest" : "bicubic";
    }
  }
  return cfg;
}

WeightMap hf_to_open_clip(WeightMap hf_in, const ModelConfig& cfg) {
  auto hf = std::make_shared<WeightMap>(std::move(hf_in));
  const std::string& src = hf->source();
  WeightMap out(src);
  out.keep_alive(hf);
  std::set<std::string> used;
  auto take = [&](const std::string& hf_name, const std::vector<int64_t>& shape) -> const float* {
    CS_CHECK_ARG(hf->contains(hf_name), src, ": tensor '", hf_name,
                 "' is missing (transformers CLIPModel layout)");
    const WeightTensor& t = hf->at(hf_name);
    CS_CHECK_ARG(t.shape == shape, src, ": tensor '", hf_name, "' has shape ", shape_str(t.shape),
                 ", expected ", shape_str(shape), " for this config");
    used.insert(hf_name);
    return t.data;
  };
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& s : expected_tensors(cfg)) shapes[s.name] = s.shape;
  for (const auto& [oc, name] : kTopRenames) {
    std::vector<int64_t> shape = shapes.at(oc);
    // Some exports store logit_scale as [1]; accept it as the scalar it is.
    if (oc == "logit_scale" && hf->contains(name) && hf->at(name).shape == std::vector<int64_t>{1})
      shape = {1};
    out.add_view(oc, shapes.at(oc), take(name, shape));
  }
  for (const auto& [oc, name] : kTransposed) {
    const auto& s = shapes.at(oc);  // open_clip [in, out]; HF [out, in]
    const float* p = take(name, {s[1], s[0]});
    out.add_owned(oc, s, transpose(p, s[1], s[0]));
  }
  struct Tower {
    std::string oc_prefix, hf_prefix;
    int layers;
    int64_t width;
  };
  for (const Tower& tw : {Tower{"visual.transformer.resblocks.", "vision_model.encoder.layers.",
                                cfg.vision.layers, cfg.vision.width},
                          Tower{"transformer.resblocks.", "text_model.encoder.layers.",
                                cfg.text.layers, cfg.text.width}}) {
    const int64_t w = tw.width;
    for (int i = 0; i < tw.layers; ++i) {
      const std::string ob = tw.oc_prefix + std::to_string(i) + ".";
      const std::string hb = tw.hf_prefix + std::to_string(i) + ".";
      for (const auto& [o, h] : kBlockRenames)
        out.add_view(ob + o, shapes.at(ob + o), take(hb + h, shapes.at(ob + o)));
      std::vector<float> in_w(static_cast<size_t>(3 * w * w)), in_b(static_cast<size_t>(3 * w));
      const char* qkv[] = {"q_proj", "k_proj", "v_proj"};
      for (int k = 0; k < 3; ++k) {
        const float* pw = take(hb + "self_attn." + qkv[k] + ".weight", {w, w});
        const float* pb = take(hb + "self_attn." + qkv[k] + ".bias", {w});
        std::memcpy(in_w.data() + k * w * w, pw, static_cast<size_t>(w * w) * 4);
        std::memcpy(in_b.data() + k * w, pb, static_cast<size_t>(w) * 4);
      }
      out.add_owned(ob + "attn.in_proj_weight", {3 * w, w}, std::move(in_w));
      out.add_owned(ob + "attn.in_proj_bias", {3 * w}, std::move(in_b));
    }
  }
  for (const auto& name : hf->names()) {
    if (used.count(name)) continue;
    CS_CHECK_ARG(name.size() >= 13 && name.compare(name.size() - 13, 13, ".position_ids") == 0, src,
                 ": unexpected tensor '", name, "' for a transformers CLIPModel of this config");
  }
  return out;
}

std::vector<TensorToWrite> open_clip_to_hf(const WeightMap& w, const ModelConfig& cfg,
                                           std::vector<std::vector<float>>& storage) {
  check_weights(w, cfg);
  std::vector<TensorToWrite> out;
  storage.reserve(storage.size() + 2 + 6 * size_t(cfg.vision.layers + cfg.text.layers));
  auto view = [&](const std::string& hf, const std::string& oc) {
    out.push_back({hf, w.at(oc).shape, w.at(oc).data});
  };
  auto owned = [&](const std::string& hf, std::vector<int64_t> shape, std::vector<float> data) {
    storage.push_back(std::move(data));
    out.push_back({hf, std::move(shape), storage.back().data()});
  };
  view("logit_scale", "logit_scale");
  struct Tower {
    std::string oc_prefix, hf_prefix;
    int layers;
    int64_t width;
  };
  // transformers' order: text_model, vision_model, visual_projection, text_projection.
  auto blocks = [&](const Tower& tw) {
    const int64_t wd = tw.width;
    for (int i = 0; i < tw.layers; ++i) {
      const std::string ob = tw.oc_prefix + std::to_string(i) + ".";
      const std::string hb = tw.hf_prefix + std::to_string(i) + ".";
      const float* in_w = w.at(ob + "attn.in_proj_weight").data;
      const float* in_b = w.at(ob + "attn.in_proj_bias").data;
      const char* qkv[] = {"k_proj", "v_proj", "q_proj"};
      const int index[] = {1, 2, 0};
      for (int k = 0; k < 3; ++k) {
        int src = index[k];
        owned(hb + "self_attn." + qkv[k] + ".weight", {wd, wd},
              std::vector<float>(in_w + src * wd * wd, in_w + (src + 1) * wd * wd));
        owned(hb + "self_attn." + qkv[k] + ".bias", {wd},
              std::vector<float>(in_b + src * wd, in_b + (src + 1) * wd));
      }
      for (const auto& [o, h] : kBlockRenames) view(hb + h, ob + o);
    }
  };
  view("text_model.embeddings.token_embedding.weight", "token_embedding.weight");
  view("text_model.embeddings.position_embedding.weight", "positional_embedding");
  blocks({"transformer.resblocks.", "text_model.encoder.layers.", cfg.text.layers, cfg.text.width});
  view("text_model.final_layer_norm.weight", "ln_final.weight");
  view("text_model.final_layer_norm.bias", "ln_final.bias");
  view("vision_model.embeddings.class_embedding", "visual.class_embedding");
  view("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight");
  view("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding");
  view("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight");
  view("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias");
  blocks({"visual.transformer.resblocks.", "vision_model.encoder.layers.", cfg.vision.layers,
          cfg.vision.width});
  view("vision_model.post_layernorm.weight", "visual.ln_post.weight");
  view("vision_model.post_layernorm.bias", "visual.ln_post.bias");
  for (const auto& [oc, hf] : {kTransposed[1], kTransposed[0]}) {
    const auto& t = w.at(oc);
    owned(hf, {t.shape[1], t.shape[0]}, transpose(t.data, t.shape[0], t.shape[1]));
  }
  return out;
}

std::string hf_clip_config_json(const ModelConfig& cfg) {
  const char* act = cfg.quick_gelu ? "quick_gelu" : "gelu";
  OrderedJson text = {{"hidden_size", cfg.text.width},
                      {"intermediate_size", cfg.text.mlp_width()},
                      {"num_attention_heads", cfg.text.heads},
                      {"num_hidden_layers", cfg.text.layers},
                      {"max_position_embeddings", cfg.text.context_length},
                      {"vocab_size", cfg.text.vocab_size},
                      {"hidden_act", act},
                      {"layer_norm_eps", 1e-5},
                      {"projection_dim", cfg.embed_dim},
                      {"bos_token_id", 49406},
                      {"eos_token_id", 49407},
                      {"pad_token_id", 1},
                      {"model_type", "clip_text_model"}};
  OrderedJson vision = {{"hidden_size", cfg.vision.width},
                        {"intermediate_size", cfg.vision.mlp_width()},
                        {"num_attention_heads", cfg.vision.heads()},
                        {"num_hidden_layers", cfg.vision.layers},
                        {"image_size", cfg.vision.image_size},
                        {"patch_size", cfg.vision.patch_size},
                        {"num_channels", 3},
                        {"hidden_act", act},
                        {"layer_norm_eps", 1e-5},
                        {"projection_dim", cfg.embed_dim},
                        {"model_type", "clip_vision_model"}};
  OrderedJson j = {
      {"architectures", {"CLIPModel"}},   {"model_type", "clip"}, {"projection_dim", cfg.embed_dim},
      {"logit_scale_init_value", 2.6592}, {"text_config", text},  {"vision_config", vision},
      {"torch_dtype", "float32"}};
  return j.dump(2) + "\n";
}

std::string hf_preprocessor_config_json(const ModelConfig& cfg) {
  const auto& p = cfg.preprocess;
  int resample = p.interpolation == "bilinear" ? 2 : p.interpolation == "nearest" ? 0 : 3;
  auto triple = [](const std::array<float, 3>& a) {
    return OrderedJson::array({double(a[0]), double(a[1]), double(a[2])});
  };
  OrderedJson j = {{"crop_size", {{"height", p.size}, {"width", p.size}}},
                   {"do_center_crop", true},
                   {"do_convert_rgb", true},
                   {"do_normalize", true},
                   {"do_rescale", true},
                   {"do_resize", true},
                   {"image_mean", triple(p.mean)},
                   {"image_processor_type", "CLIPImageProcessor"},
                   {"image_std", triple(p.std)},
                   {"resample", resample},
                   {"rescale_factor", 1.0 / 255},
                   {"size", {{"shortest_edge", p.size}}}};
  return j.dump(2) + "\n";
}

}  // namespace clipserve

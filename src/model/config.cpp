// Model configs: open_clip's built-in architectures, parsing open_clip_config.json (strict:
// options that change the network but that clipserve does not implement are refused, so a
// config never silently computes something other than open_clip), and serialization.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "clipserve/model_config.h"
#include "core/check.h"
#include "core/file.h"

namespace clipserve {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

struct BuiltinArch {
  const char* name;
  int embed_dim;
  bool quick_gelu;
  int image_size, patch_size, vision_width, vision_layers;
  int text_width, text_heads, text_layers;
};

// Values from open_clip's src/open_clip/model_configs/<name>.json (context 77, vocab 49408,
// head_width 64 and mlp_ratio 4 are the CLIPVisionCfg / CLIPTextCfg defaults they use).
constexpr BuiltinArch kBuiltins[] = {
    {"ViT-B-32", 512, false, 224, 32, 768, 12, 512, 8, 12},
    {"ViT-B-32-quickgelu", 512, true, 224, 32, 768, 12, 512, 8, 12},
    {"ViT-B-16", 512, false, 224, 16, 768, 12, 512, 8, 12},
    {"ViT-B-16-quickgelu", 512, true, 224, 16, 768, 12, 512, 8, 12},
    {"ViT-L-14", 768, false, 224, 14, 1024, 24, 768, 12, 12},
    {"ViT-L-14-quickgelu", 768, true, 224, 14, 1024, 24, 768, 12, 12},
    {"ViT-L-14-336", 768, false, 336, 14, 1024, 24, 768, 12, 12},
};

// Reads fields of one JSON object, remembering which keys were consumed so the rest can be
// reported as unknown.
class FieldReader {
 public:
  FieldReader(const Json& obj, std::string path, const std::string& source)
      : obj_(obj), path_(std::move(path)), source_(source) {
    CS_CHECK_ARG(obj.is_object(), source_, ": '", path_, "' must be a JSON object");
  }

  const std::string& path() const { return path_; }
  std::string field(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  const Json* find(const std::string& key) {
    seen_.insert(key);
    auto it = obj_.find(key);
    if (it == obj_.end()) return nullptr;
    return &*it;
  }

  int get_int(const std::string& key, int fallback, int lo, int hi) {
    const Json* v = find(key);
    if (v == nullptr) return fallback;
    int64_t x = 0;
    if (v->is_number_integer()) {
      x = v->get<int64_t>();
      if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) x = INT64_MAX;
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
               std::floor(v->get<double>()) == v->get<double>() &&
               std::fabs(v->get<double>()) < 1e15) {
      x = static_cast<int64_t>(v->get<double>());
    } else {
      CS_THROW(kInvalidArgument, source_, ": field '", field(key), "' must be an integer, got ",
               v->dump());
    }
    CS_CHECK_ARG(x >= lo && x <= hi, source_, ": field '", field(key), "' = ", x,
                 " is out of range [", lo, ", ", hi, "]");
    return static_cast<int>(x);
  }

  double get_number(const std::string& key, double fallback, double lo, double hi) {
    const Json* v = find(key);
    if (v == nullptr) return fallback;
    CS_CHECK_ARG(v->is_number(), source_, ": field '", field(key), "' must be a number, got ",
                 v->dump());
    double x = v->get<double>();
    CS_CHECK_ARG(std::isfinite(x) && x >= lo && x <= hi, source_, ": field '", field(key),
                 "' = ", x, " is out of range [", lo, ", ", hi, "]");
    return x;
  }

  bool get_bool(const std::string& key, bool fallback) {
    const Json* v = find(key);
    if (v == nullptr) return fallback;
    CS_CHECK_ARG(v->is_boolean(), source_, ": field '", field(key), "' must be true or false, got ",
                 v->dump());
    return v->get<bool>();
  }

  std::string get_string(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& allowed) {
    const Json* v = find(key);
    if (v == nullptr) return fallback;
    CS_CHECK_ARG(v->is_string(), source_, ": field '", field(key), "' must be a string, got ",
                 v->dump());
    std::string s = v->get<std::string>();
    bool ok = allowed.empty();
    std::string list;
    for (const auto& a : allowed) {
      ok = ok || a == s;
      list += (list.empty() ? "" : ", ") + a;
    }
    CS_CHECK_ARG(ok, source_, ": field '", field(key), "' = \"", s, "\" is not one of: ", list);
    return s;
  }

  std::array<float, 3> get_triple(const std::string& key, std::array<float, 3> fallback,
                                  bool positive) {
    const Json* v = find(key);
    if (v == nullptr) return fallback;
    if (v->is_number()) {  // open_clip accepts a single value for all channels
      float x = static_cast<float>(v->get<double>());
      CS_CHECK_ARG(std::isfinite(x) && (!positive || x > 0), source_, ": field '", field(key),
                   "' has an invalid value ", v->dump());
      return {x, x, x};
    }
    CS_CHECK_ARG(v->is_array() && v->size() == 3, source_, ": field '", field(key),
                 "' must be a list of 3 numbers, got ", v->dump());
    std::array<float, 3> r{};
    for (int i = 0; i < 3; ++i) {
      const Json& e = (*v)[i];
      CS_CHECK_ARG(
          e.is_number() && std::isfinite(e.get<double>()) && (!positive || e.get<double>() > 0),
          source_, ": field '", field(key), "' has an invalid value ", v->dump());
      r[i] = static_cast<float>(e.get<double>());
    }
    return r;
  }

  // Options that change the network: accepted only at their open_clip default.
  void require_default(const std::string& key, const Json& default_value) {
    const Json* v = find(key);
    if (v == nullptr || *v == default_value) return;
    if (default_value.is_null() && v->is_object() && v->empty()) return;  // {} == no kwargs
    CS_THROW(kUnsupported, source_, ": field '", field(key), "' = ", v->dump(),
             " is not supported by clipserve (only ", default_value.dump(), ")");
  }

  // Keys that do not change inference results.
  void ignore(std::initializer_list<const char*> keys) {
    for (const char* k : keys) seen_.insert(k);
  }

  void reject_unknown() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (!seen_.count(it.key())) {
        CS_THROW(kUnsupported, source_, ": unknown field '", field(it.key()),
                 "' (clipserve implements open_clip's ViT CLIP; this option is not known)");
      }
    }
  }

 private:
  const Json& obj_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> seen_;
};

const std::vector<std::string> kInterpolations = {"bicubic", "bilinear", "nearest"};
const std::vector<std::string> kResizeModes = {"shortest", "longest", "squash"};

void parse_vision(FieldReader& r, const std::string& source, ModelConfig& cfg) {
  VisionConfig& v = cfg.vision;
  if (const Json* is = r.find("image_size"); is != nullptr && is->is_array()) {
    // open_clip allows (height, width); clipserve handles square inputs only.
    CS_CHECK_ARG(is->size() == 2 && (*is)[0].is_number_integer() && (*is)[0] == (*is)[1], source,
                 ": field '", r.field("image_size"),
                 "' must be an integer or a square [size, size], got ", is->dump());
    Json tmp = {{"image_size", (*is)[0]}};
    FieldReader t(tmp, r.path(), source);
    v.image_size = t.get_int("image_size", 224, 1, 8192);
  } else {
    v.image_size = r.get_int("image_size", 224, 1, 8192);
  }
  v.patch_size = r.get_int("patch_size", 16, 1, 1024);
  v.width = r.get_int("width", 768, 1, 16384);
  v.layers = r.get_int("layers", 12, 1, 256);
  v.head_width = r.get_int("head_width", 64, 1, 16384);
  v.mlp_ratio = static_cast<float>(r.get_number("mlp_ratio", 4.0, 1e-3, 64.0));
  CS_CHECK_ARG(v.patch_size <= v.image_size, source, ": field '", r.field("patch_size"),
               "' = ", v.patch_size, " is larger than image_size ", v.image_size);
  CS_CHECK_ARG(v.width % v.head_width == 0, source, ": field '", r.field("width"), "' = ", v.width,
               " is not a multiple of head_width ", v.head_width);
  CS_CHECK_ARG(v.mlp_width() >= 1, source, ": field '", r.field("mlp_ratio"),
               "' gives an empty MLP");
  // Preprocessing hints some configs carry inside vision_cfg; preprocess_cfg overrides them.
  PreprocessConfig& p = cfg.preprocess;
  p.mean = r.get_triple("image_mean", p.mean, false);
  p.std = r.get_triple("image_std", p.std, true);
  p.interpolation = r.get_string("interpolation", p.interpolation, kInterpolations);
  p.resize_mode = r.get_string("resize_mode", p.resize_mode, kResizeModes);
  r.ignore({"patch_dropout", "output_tokens", "timm_model_pretrained", "timm_pool", "timm_proj",
            "timm_proj_bias", "timm_drop", "timm_drop_path"});
  r.require_default("ls_init_value", nullptr);
  r.require_default("attentional_pool", false);
  r.require_default("no_ln_pre", false);
  r.require_default("pos_embed_type", "learnable");
  r.require_default("final_ln_after_pool", false);
  r.require_default("pool_type", "tok");
  r.require_default("global_average_pool", false);
  r.require_default("input_patchnorm", false);
  r.require_default("timm_model_name", nullptr);
  r.require_default("act_kwargs", nullptr);
  r.require_default("norm_kwargs", nullptr);
  r.require_default("output_dim", cfg.embed_dim);
  r.reject_unknown();
}

void parse_text(FieldReader& r, const std::string& source, TextConfig& t) {
  t.context_length = r.get_int("context_length", 77, 1, 16384);
  t.vocab_size = r.get_int("vocab_size", 49408, 1, 1 << 24);
  t.width = r.get_int("width", 512, 1, 16384);
  t.heads = r.get_int("heads", 8, 1, 16384);
  t.layers = r.get_int("layers", 12, 1, 256);
  t.mlp_ratio = static_cast<float>(r.get_number("mlp_ratio", 4.0, 1e-3, 64.0));
  CS_CHECK_ARG(t.width % t.heads == 0, source, ": field '", r.field("width"), "' = ", t.width,
               " is not a multiple of heads ", t.heads);
  CS_CHECK_ARG(t.mlp_width() >= 1, source, ": field '", r.field("mlp_ratio"),
               "' gives an empty MLP");
  r.ignore({"hf_tokenizer_name", "tokenizer_kwargs", "output_tokens", "pad_id", "attn_mask"});
  r.require_default("ls_init_value", nullptr);
  r.require_default("embed_cls", false);
  r.require_default("no_causal_mask", false);
  r.require_default("final_ln_after_pool", false);
  r.require_default("pool_type", "argmax");
  r.require_default("proj_bias", false);
  r.require_default("proj_type", "linear");
  r.require_default("hf_model_name", nullptr);
  r.require_default("act_kwargs", nullptr);
  r.require_default("norm_kwargs", nullptr);
  r.reject_unknown();
}

void parse_preprocess(FieldReader& r, const std::string& source, PreprocessConfig& p) {
  if (const Json* s = r.find("size"); s != nullptr && s->is_array()) {
    CS_CHECK_ARG(s->size() == 2 && (*s)[0].is_number_integer() && (*s)[0] == (*s)[1], source,
                 ": field '", r.field("size"), "' must be an integer or [size, size], got ",
                 s->dump());
    Json tmp = {{"size", (*s)[0]}};
    FieldReader t(tmp, "preprocess_cfg", source);
    p.size = t.get_int("size", p.size, 1, 8192);
  } else {
    p.size = r.get_int("size", p.size, 1, 8192);
  }
  r.get_string("mode", "RGB", {"RGB"});
  p.mean = r.get_triple("mean", p.mean, false);
  p.std = r.get_triple("std", p.std, true);
  p.interpolation = r.get_string("interpolation", p.interpolation, kInterpolations);
  p.resize_mode = r.get_string("resize_mode", p.resize_mode, kResizeModes);
  p.fill_color = r.get_int("fill_color", p.fill_color, 0, 255);
  r.reject_unknown();
}

// A float as the shortest decimal that reads back to it, so 0.48145466f serializes as
// 0.48145466 rather than 0.4814546597003937.
double float_for_json(float f) {
  // The normalization constants as open_clip writes them (more digits than the shortest
  // float form), so configs we write read like open_clip's own.
  static const double kCanonical[] = {0.48145466, 0.4578275, 0.40821073, 0.26862954, 0.26130258,
                                      0.27577711, 0.485,     0.456,      0.406,      0.229,
                                      0.224,      0.225,     0.5};
  for (double c : kCanonical)
    if (static_cast<float>(c) == f) return c;
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

}  // namespace

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> r;
  for (const auto& b : kBuiltins) r.emplace_back(b.name);
  return r;
}

ModelConfig builtin_model_config(const std::string& name) {
  for (const auto& b : kBuiltins) {
    if (name != b.name) continue;
    ModelConfig c;
    c.name = b.name;
    c.embed_dim = b.embed_dim;
    c.quick_gelu = b.quick_gelu;
    c.vision.image_size = b.image_size;
    c.vision.patch_size = b.patch_size;
    c.vision.width = b.vision_width;
    c.vision.layers = b.vision_layers;
    c.vision.head_width = 64;
    c.text.width = b.text_width;
    c.text.heads = b.text_heads;
    c.text.layers = b.text_layers;
    c.preprocess.size = b.image_size;
    return c;
  }
  std::string known;
  for (const auto& b : kBuiltins) known += (known.empty() ? "" : ", ") + std::string(b.name);
  CS_THROW(kNotFound, "unknown model architecture '", name, "' (known: ", known, ")");
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    CS_THROW(kInvalidArgument, source, ": invalid JSON: ", e.what());
  }
  CS_CHECK_ARG(root.is_object(), source, ": the config must be a JSON object");
  const Json* model_cfg = &root;
  const Json* preprocess_cfg = nullptr;
  if (root.contains("model_cfg")) {
    FieldReader top(root, "", source);
    model_cfg = top.find("model_cfg");
    preprocess_cfg = top.find("preprocess_cfg");
    top.reject_unknown();
  }
  ModelConfig cfg;
  cfg.name = source;
  FieldReader m(*model_cfg, model_cfg == &root ? "" : "model_cfg", source);
  cfg.embed_dim = m.get_int("embed_dim", 0, 1, 16384);
  CS_CHECK_ARG(m.find("embed_dim") != nullptr, source, ": field '", m.field("embed_dim"),
               "' is missing");
  cfg.quick_gelu = m.get_bool("quick_gelu", false);
  const Json* vision = m.find("vision_cfg");
  CS_CHECK_ARG(vision != nullptr, source, ": field '", m.field("vision_cfg"), "' is missing");
  FieldReader vr(*vision, m.field("vision_cfg"), source);
  parse_vision(vr, source, cfg);
  const Json* text = m.find("text_cfg");
  CS_CHECK_ARG(text != nullptr, source, ": field '", m.field("text_cfg"), "' is missing");
  FieldReader tr(*text, m.field("text_cfg"), source);
  parse_text(tr, source, cfg.text);
  m.ignore({"custom_text", "cast_dtype", "output_dict", "init_logit_scale"});
  m.require_default("init_logit_bias", nullptr);
  m.require_default("nonscalar_logit_scale", false);
  m.require_default("multimodal_cfg", nullptr);
  m.reject_unknown();
  cfg.preprocess.size = cfg.vision.image_size;
  if (preprocess_cfg != nullptr && !preprocess_cfg->is_null()) {
    FieldReader pr(*preprocess_cfg, "preprocess_cfg", source);
    parse_preprocess(pr, source, cfg.preprocess);
  }
  return cfg;
}

ModelConfig load_model_config(const std::string& path) {
  return parse_model_config(read_file_text(path), path);
}

std::string model_config_to_json(const ModelConfig& c) {
  OrderedJson vision = {{"image_size", c.vision.image_size},
                        {"layers", c.vision.layers},
                        {"width", c.vision.width},
                        {"head_width", c.vision.head_width},
                        {"patch_size", c.vision.patch_size}};
  if (c.vision.mlp_ratio != 4.0f) vision["mlp_ratio"] = float_for_json(c.vision.mlp_ratio);
  OrderedJson text = {{"context_length", c.text.context_length},
                      {"vocab_size", c.text.vocab_size},
                      {"width", c.text.width},
                      {"heads", c.text.heads},
                      {"layers", c.text.layers}};
  if (c.text.mlp_ratio != 4.0f) text["mlp_ratio"] = float_for_json(c.text.mlp_ratio);
  OrderedJson model = {{"embed_dim", c.embed_dim},
                       {"quick_gelu", c.quick_gelu},
                       {"vision_cfg", vision},
                       {"text_cfg", text}};
  auto triple = [](const std::array<float, 3>& a) {
    return OrderedJson::array({float_for_json(a[0]), float_for_json(a[1]), float_for_json(a[2])});
  };
  OrderedJson pre = {{"size", c.preprocess.size},
                     {"mode", "RGB"},
                     {"mean", triple(c.preprocess.mean)},
                     {"std", triple(c.preprocess.std)},
                     {"interpolation", c.preprocess.interpolation},
                     {"resize_mode", c.preprocess.resize_mode},
                     {"fill_color", c.preprocess.fill_color}};
  OrderedJson root = {{"model_cfg", model}, {"preprocess_cfg", pre}};
  return root.dump(2) + "\n";
}

bool operator==(const VisionConfig& a, const VisionConfig& b) {
  return a.image_size == b.image_size && a.patch_size == b.patch_size && a.width == b.width &&
         a.layers == b.layers && a.head_width == b.head_width && a.mlp_ratio == b.mlp_ratio;
}
bool operator==(const TextConfig& a, const TextConfig& b) {
  return a.context_length == b.context_length && a.vocab_size == b.vocab_size &&
         a.width == b.width && a.heads == b.heads && a.layers == b.layers &&
         a.mlp_ratio == b.mlp_ratio;
}
bool operator==(const PreprocessConfig& a, const PreprocessConfig& b) {
  return a.size == b.size && a.mean == b.mean && a.std == b.std &&
         a.interpolation == b.interpolation && a.resize_mode == b.resize_mode &&
         a.fill_color == b.fill_color;
}
bool operator==(const ModelConfig& a, const ModelConfig& b) {
  return a.embed_dim == b.embed_dim && a.quick_gelu == b.quick_gelu && a.vision == b.vision &&
         a.text == b.text && a.preprocess == b.preprocess;
}

}  // namespace clipserve

// Helpers for the model tests: random CLIP weights for any config, small configs.
#pragma once

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve::test {

/// Every tensor of an open_clip CLIP state dict for `cfg`, filled with random values of
/// roughly the scale real models have (LayerNorm gains ~1, weights ~ 1/sqrt(fan_in)).
inline std::shared_ptr<WeightMap> random_clip_weights(const ModelConfig& cfg, uint32_t seed) {
  auto wm = std::make_shared<WeightMap>("<random seed " + std::to_string(seed) + ">");
  std::mt19937 rng(seed);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float center, float scale) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = center + scale * u(rng);
    wm->add_owned(name, std::move(shape), std::move(v));
  };
  auto blocks = [&](const std::string& prefix, int64_t w, int64_t hidden, int layers) {
    for (int i = 0; i < layers; ++i) {
      const std::string p = prefix + std::to_string(i) + ".";
      for (const char* ln : {"ln_1", "ln_2"}) {
        add(p + ln + ".weight", {w}, 1.0f, 0.2f);
        add(p + ln + ".bias", {w}, 0.0f, 0.2f);
      }
      const float s = 1.7f / std::sqrt(float(w));
      add(p + "attn.in_proj_weight", {3 * w, w}, 0, s);
      add(p + "attn.in_proj_bias", {3 * w}, 0, 0.05f);
      add(p + "attn.out_proj.weight", {w, w}, 0, s);
      add(p + "attn.out_proj.bias", {w}, 0, 0.05f);
      add(p + "mlp.c_fc.weight", {hidden, w}, 0, s);
      add(p + "mlp.c_fc.bias", {hidden}, 0, 0.05f);
      add(p + "mlp.c_proj.weight", {w, hidden}, 0, 1.7f / std::sqrt(float(hidden)));
      add(p + "mlp.c_proj.bias", {w}, 0, 0.05f);
    }
  };
  const auto& v = cfg.vision;
  const int64_t vw = v.width, p = v.patch_size, g = v.grid(), e = cfg.embed_dim;
  add("visual.class_embedding", {vw}, 0, 0.5f);
  add("visual.positional_embedding", {g * g + 1, vw}, 0, 0.5f);
  add("visual.proj", {vw, e}, 0, 1.7f / std::sqrt(float(vw)));
  add("visual.conv1.weight", {vw, 3, p, p}, 0, 1.7f / std::sqrt(float(3 * p * p)));
  for (const char* ln : {"visual.ln_pre", "visual.ln_post"}) {
    add(std::string(ln) + ".weight", {vw}, 1.0f, 0.2f);
    add(std::string(ln) + ".bias", {vw}, 0.0f, 0.2f);
  }
  blocks("visual.transformer.resblocks.", vw, static_cast<int64_t>(vw * v.mlp_ratio), v.layers);
  const auto& t = cfg.text;
  const int64_t tw = t.width;
  add("token_embedding.weight", {t.vocab_size, tw}, 0, 0.05f);
  add("positional_embedding", {t.context_length, tw}, 0, 0.02f);
  add("ln_final.weight", {tw}, 1.0f, 0.2f);
  add("ln_final.bias", {tw}, 0.0f, 0.2f);
  add("text_projection", {tw, e}, 0, 1.7f / std::sqrt(float(tw)));
  blocks("transformer.resblocks.", tw, static_cast<int64_t>(tw * t.mlp_ratio), t.layers);
  wm->add_owned("logit_scale", {}, {4.6051702f});
  return wm;
}

/// Names and shapes of every tensor of the state dict of `cfg`.
inline std::vector<std::pair<std::string, std::vector<int64_t>>> random_clip_weights_shapes(
    const ModelConfig& cfg) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> r;
  ModelConfig c = cfg;
  c.text.vocab_size = 1;  // the shapes only: avoid filling the big embedding twice
  auto wm = random_clip_weights(c, 0);
  for (const auto& name : wm->names()) {
    auto shape = wm->at(name).shape;
    if (name == "token_embedding.weight") shape[0] = cfg.text.vocab_size;
    r.emplace_back(name, shape);
  }
  return r;
}

/// A small config (fast in every backend) with odd sizes to catch tail handling.
inline ModelConfig small_config(bool quick_gelu) {
  ModelConfig c;
  c.name = "small-test";
  c.embed_dim = 24;
  c.quick_gelu = quick_gelu;
  c.vision.image_size = 48;
  c.vision.patch_size = 16;
  c.vision.width = 96;
  c.vision.head_width = 32;
  c.vision.layers = 2;
  c.text.context_length = 20;
  c.text.vocab_size = 1000;
  c.text.width = 80;
  c.text.heads = 4;
  c.text.layers = 2;
  return c;
}

}  // namespace clipserve::test

namespace clipserve::test {

/// SYNTHETIC.md spec v1 values for one tensor (test-side twin of the generator in
/// src/model, kept here so these tests do not depend on it).
inline std::vector<float> synthetic_tensor(const std::string& name,
                                           const std::vector<int64_t>& shape, uint64_t seed,
                                           int vision_width, int patch) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (name == "logit_scale") return std::vector<float>(n, 4.6051702f);
  std::string last = name.substr(name.rfind('.') + 1), before;
  {
    std::string head = name.substr(0, name.rfind('.') == std::string::npos ? 0 : name.rfind('.'));
    before = head.substr(head.rfind('.') == std::string::npos ? 0 : head.rfind('.') + 1);
  }
  double center = 0, std = 0;
  const bool ln = before.rfind("ln_", 0) == 0 && name.find('.') != std::string::npos;
  if (ln && last == "weight") {
    center = 1.0, std = 0.1;
  } else if (ln && last == "bias") {
    std = 0.1;
  } else if (ends_with("bias")) {
    std = 0.02;
  } else if (name == "visual.class_embedding" || name == "visual.positional_embedding") {
    std = 1.0 / std::sqrt(double(vision_width));
  } else if (name == "positional_embedding") {
    std = 0.01;
  } else if (name == "token_embedding.weight") {
    std = 0.02;
  } else if (name == "visual.proj" || name == "text_projection") {
    std = 1.0 / std::sqrt(double(shape[0]));
  } else if (name == "visual.conv1.weight") {
    std = 1.0 / std::sqrt(double(3 * patch * patch));
  } else {
    std = 1.0 / std::sqrt(double(shape[1]));
  }
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  const uint64_t key = h ^ (seed * 0x9E3779B97F4A7C15ull);
  const double a = std::sqrt(3.0) * std;
  std::vector<float> v(n);
  for (int64_t k = 0; k < n; ++k) {
    uint64_t z = key + static_cast<uint64_t>(k) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
    const double x = 2 * u - 1;
    const double ax = a * x;
    v[k] = static_cast<float>(center + ax);
  }
  return v;
}

/// The synthetic (spec v1) weights of `cfg` for `seed`: same names and shapes as
/// random_clip_weights.
inline std::shared_ptr<WeightMap> synthetic_clip_weights(const ModelConfig& cfg, uint64_t seed) {
  auto shapes = random_clip_weights_shapes(cfg);
  auto wm = std::make_shared<WeightMap>("<synthetic seed " + std::to_string(seed) + ">");
  for (auto& [name, shape] : shapes) {
    wm->add_owned(name, shape,
                  synthetic_tensor(name, shape, seed, cfg.vision.width, cfg.vision.patch_size));
  }
  return wm;
}

}  // namespace clipserve::test

// Helpers for the model tests: random CLIP weights for any config, small configs.
#pragma once

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/synthetic.h"
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

/// The synthetic (SYNTHETIC.md spec v1) weights of `cfg` for `seed`, shared for the backends.
inline std::shared_ptr<const WeightMap> synthetic_clip_weights(const ModelConfig& cfg,
                                                               uint64_t seed) {
  return std::make_shared<const WeightMap>(synthetic_weights(cfg, seed));
}

}  // namespace clipserve::test

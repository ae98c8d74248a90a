// Helpers for the model tests: random CLIP weights for any config, small configs.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "core/file.h"
#include "core/npy.h"
#include "model/synthetic.h"
#include "model/weights.h"
#include "nn/backend.h"
#include "testing.h"

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

// ---- open_clip goldens (synthetic seed 0) and comparisons ----

struct Outputs {
  std::vector<float> img, txt;
};

inline std::vector<float> random_pixels(const ModelConfig& cfg, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> px(static_cast<size_t>(n) * 3 * cfg.vision.image_size * cfg.vision.image_size);
  for (auto& x : px) x = d(rng);
  return px;
}

inline std::vector<std::vector<int32_t>> random_texts(const ModelConfig& cfg, uint32_t seed) {
  std::mt19937 rng(seed);
  const int vocab = cfg.text.vocab_size;
  std::vector<std::vector<int32_t>> ids;
  for (int len : {1, 2, 5, cfg.text.context_length, 9, 3}) {
    std::vector<int32_t> row(len);
    for (auto& t : row) t = static_cast<int32_t>(rng() % (vocab - 1));
    row.back() = vocab - 1;  // EOT-like largest id
    ids.push_back(row);
  }
  // Largest id in the middle: pooled there; later tokens must not matter.
  ids.push_back({5, vocab - 1, 7, 8});
  return ids;
}

inline Outputs run(nn::Backend& b, const std::vector<float>& px, int n,
                   const std::vector<std::vector<int32_t>>& ids) {
  const int e = b.config().embed_dim;
  Outputs o;
  o.img.resize(static_cast<size_t>(n) * e);
  o.txt.resize(ids.size() * e);
  b.encode_images(px.data(), n, o.img.data());
  b.encode_texts(ids, o.txt.data());
  return o;
}

inline void expect_rows_close(const std::vector<float>& got, const std::vector<float>& want,
                              int dim, double min_cos, float rel_tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const int rows = static_cast<int>(got.size() / dim);
  for (int r = 0; r < rows; ++r) {
    std::span<const float> g(got.data() + r * dim, dim), w(want.data() + r * dim, dim);
    EXPECT_GE(cosine(g, w), min_cos) << what << " row " << r;
    EXPECT_LE(max_abs_diff(g, w), rel_tol * max_abs(w)) << what << " row " << r;
  }
}

// tests/data/model/image_input_224.u8.zlib holds the 8-bit pixels behind the goldens'
// image_input_224.npy: open_clip normalizes uint8 / 255 as (x - mean) / std in float32, so
// the float tensor is rebuilt bit-exactly (checked against ../shared below).
inline std::vector<float> golden_pixels() {
  const auto z = read_file_bytes(data_dir() + "/model/image_input_224.u8.zlib");
  std::vector<uint8_t> u(6L * 3 * 224 * 224);
  uLongf n = u.size();
  EXPECT_EQ(uncompress(u.data(), &n, z.data(), z.size()), Z_OK);
  EXPECT_EQ(n, u.size());
  const PreprocessConfig pc;
  std::vector<float> px(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    const int c = static_cast<int>(i / (224 * 224) % 3);
    px[i] = (static_cast<float>(u[i]) / 255.0f - pc.mean[c]) / pc.std[c];
  }
  return px;
}

inline ModelConfig arch_config(const std::string& arch) {
  if (arch == "tiny") {
    ModelConfig c = load_model_config(data_dir() + "/model/tiny/open_clip_config.json");
    c.name = "tiny";
    return c;
  }
  return builtin_model_config(arch);
}

/// Token rows of text_tokens.npy cut after the EOT (the contract: no padding).
inline std::vector<std::vector<int32_t>> golden_ids(const std::string& dir) {
  const NpyArray a = read_npy(dir + "/text_tokens.npy");
  const auto v = a.to_i64();
  const long cols = a.shape.at(1);
  std::vector<std::vector<int32_t>> ids;
  for (long r = 0; r < a.shape.at(0); ++r) {
    std::vector<int32_t> row;
    for (long c = 0; c < cols; ++c) {
      row.push_back(static_cast<int32_t>(v[r * cols + c]));
      if (row.back() == 49407) break;
    }
    ids.push_back(row);
  }
  return ids;
}

inline std::vector<float> probs_of(const std::vector<float>& img, const std::vector<float>& txt,
                                   int e, float logit_scale) {
  const long ni = img.size() / e, nt = txt.size() / e;
  auto norm = [&](const std::vector<float>& x, long r) {
    double s = 0;
    for (int k = 0; k < e; ++k) s += double(x[r * e + k]) * x[r * e + k];
    return std::sqrt(s);
  };
  std::vector<float> p(ni * nt);
  for (long i = 0; i < ni; ++i) {
    std::vector<double> l(nt);
    double mx = -1e300, sum = 0;
    for (long t = 0; t < nt; ++t) {
      double d = 0;
      for (int k = 0; k < e; ++k) d += double(img[i * e + k]) * txt[t * e + k];
      l[t] = std::exp(double(logit_scale)) * d / (norm(img, i) * norm(txt, t));
      mx = std::max(mx, l[t]);
    }
    for (long t = 0; t < nt; ++t) sum += std::exp(l[t] - mx);
    for (long t = 0; t < nt; ++t) p[i * nt + t] = static_cast<float>(std::exp(l[t] - mx) / sum);
  }
  return p;
}

/// Checks one backend against the goldens in `dir` with the tolerances and returns
/// {max |diff| / max |golden|, 1 - min cosine} over all rows (for the closing numbers).
inline std::pair<double, double> check_golden(nn::Backend& b, const std::string& dir,
                                              const std::vector<float>& pixels, float logit_scale) {
  const int e = b.config().embed_dim;
  const auto ids = golden_ids(dir);
  Outputs o = run(b, pixels, 6, ids);
  const auto gi = read_npy(dir + "/image_features.npy").to_f32();
  const auto gt = read_npy(dir + "/text_features.npy").to_f32();
  const auto gp = read_npy(dir + "/probs.npy").to_f32();
  const std::string what = b.config().name + " " + b.name();
  expect_rows_close(o.img, gi, e, 0.99999, 2e-5f, what + " image");
  expect_rows_close(o.txt, gt, e, 0.99999, 2e-5f, what + " text");
  const auto p = probs_of(o.img, o.txt, e, logit_scale);
  EXPECT_LE(max_abs_diff(p, gp), 1e-4f) << what << " probs";
  double worst_rel = 0, worst_cos = 0;
  for (auto [got, want] : {std::pair{&o.img, &gi}, std::pair{&o.txt, &gt}}) {
    for (size_t r = 0; r < got->size() / e; ++r) {
      std::span<const float> g(got->data() + r * e, e), w(want->data() + r * e, e);
      worst_rel = std::max(worst_rel, double(max_abs_diff(g, w)) / max_abs(w));
      worst_cos = std::max(worst_cos, 1 - cosine(g, w));
    }
  }
  std::printf("[golden] %-20s %-9s %s: max|diff|/max|golden| %.2e, 1-min cos %.2e\n",
              b.config().name.c_str(), b.name().c_str(), b.precision().c_str(), worst_rel,
              worst_cos);
  return {worst_rel, worst_cos};
}

/// bf16 fast mode on the cpu backend: cosine >= 0.999 against the fp32 goldens on every row.
inline void check_bf16_golden(const std::string& arch, const std::string& dir) {
  const ModelConfig cfg = arch_config(arch);
  auto w = synthetic_clip_weights(cfg, 0);
  nn::BackendOptions opt;
  opt.precision = "bf16";
  auto b = nn::make_backend("cpu", cfg, w, opt);
  ASSERT_EQ(b->precision(), "bf16");
  Outputs o = run(*b, golden_pixels(), 6, golden_ids(dir));
  const auto gi = read_npy(dir + "/image_features.npy").to_f32();
  const auto gt = read_npy(dir + "/text_features.npy").to_f32();
  double worst = 1;
  const int e = cfg.embed_dim;
  for (auto [got, want] : {std::pair{&o.img, &gi}, std::pair{&o.txt, &gt}}) {
    for (size_t r = 0; r < got->size() / e; ++r) {
      const double c = cosine({got->data() + r * e, size_t(e)}, {want->data() + r * e, size_t(e)});
      EXPECT_GE(c, 0.999) << arch << " row " << r;
      worst = std::min(worst, c);
    }
  }
  std::printf("[golden] %-20s cpu       bf16: 1-min cos %.2e\n", arch.c_str(), 1 - worst);
}

}  // namespace clipserve::test

// int8 path: the fast quantization and oneDNN int8 linear layers against the plain reference
// (src/nn/ref_int8.h), and whole int8 forward passes (cpu vs reference, int8 vs fp32).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <random>
#include <span>

#include "clipserve/error.h"
#include "cpu/int8.h"
#include "cpu/int8_kernels.h"
#include "cpu/kernels.h"
#include "model_testing.h"
#include "nn/backend.h"
#include "nn/ref_int8.h"
#include "nn/ref_kernels.h"
#include "testing.h"

namespace clipserve::test {
namespace {

std::vector<float> randn(long n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Quantizes [rows, width] with the fast kernel `k` (kmax 0: no outlier split).
struct Quantized {
  std::vector<int8_t> q;
  std::vector<float> scale, val;
  std::vector<int> count, col;
  cpu::Int8Rows rows;
  Quantized(long rows_, int width, int kmax)
      : q(rows_ * width, 99),
        scale(rows_),
        val(rows_ * std::max(kmax, 1)),
        count(rows_, -1),
        col(rows_ * std::max(kmax, 1)) {
    rows.q = q.data();
    rows.scale = scale.data();
    rows.kmax = kmax;
    if (kmax > 0) {
      rows.count = count.data();
      rows.col = col.data();
      rows.val = val.data();
    }
  }
};

void expect_same_scale(float a, float b, int r) {
  if (std::isnan(a)) {
    EXPECT_TRUE(std::isnan(b)) << r;
  } else {
    EXPECT_EQ(a, b) << r;
  }
}

TEST(Int8Quantize, RowsEqualReferenceBitForBit) {
  const int rows = 37, width = 203;
  auto x = randn(static_cast<long>(rows) * width, 1);
  for (int i = 0; i < width; ++i) x[3 * width + i] = 0.0f;  // all-zero row: scale 0
  // Row 5: absmax 127 -> reciprocal 1, so x.5 values test round-half-to-even.
  for (int i = 0; i < width; ++i) x[5 * width + i] = (i % 2 ? -1.0f : 1.0f) * (0.5f + i % 9);
  x[5 * width + 7] = 127.0f;
  x[8 * width + 11] = NAN;  // non-finite row: scale NaN, q zeros
  x[9 * width + 1] = -INFINITY;
  x[10 * width + 2] = 1e30f;  // huge but finite
  std::vector<int8_t> qa(x.size());
  std::vector<float> sa(rows);
  nn::ref::quantize_activations(x.data(), rows, width, true, qa.data(), sa.data());
  for (const cpu::Int8Kernels* k : {&cpu::int8_kernels(), &cpu::generic_int8_kernels()}) {
    Quantized b(rows, width, 0);
    k->quantize(x.data(), rows, width, nullptr, nullptr, b.rows);
    EXPECT_EQ(std::memcmp(qa.data(), b.q.data(), qa.size()), 0) << k->isa;
    for (int r = 0; r < rows; ++r) expect_same_scale(sa[r], b.scale[r], r);
  }
  EXPECT_EQ(sa[3], 0.0f);
  EXPECT_TRUE(std::isnan(sa[8]) && std::isnan(sa[9]));
  EXPECT_EQ(sa[5], 1.0f);
  EXPECT_EQ(qa[5 * width + 0], 0);   // 0.5 -> 0
  EXPECT_EQ(qa[5 * width + 1], -2);  // -1.5 -> -2
  EXPECT_EQ(qa[5 * width + 2], 2);   // 2.5 -> 2
  for (int i = 0; i < width; ++i) EXPECT_GE(qa[i], -127);
}

// Rows with outlier columns: the split (columns, values, q, scale) equals the reference bit for
// bit, in both builds; rows without outliers quantize as without the split.
TEST(Int8Quantize, OutlierSplitEqualsReferenceBitForBit) {
  EXPECT_EQ(nn::ref::kOutlierRatio, 6.0f);  // the constant int8_kernels_impl.h repeats
  const int rows = 29, width = 768, kmax = nn::ref::kMaxOutliers;
  auto x = randn(static_cast<long>(rows) * width, 4);
  for (int r = 0; r < rows; ++r) {
    float* xr = x.data() + static_cast<long>(r) * width;
    if (r % 4 == 1) {  // a few residual-stream-like outlier channels
      xr[3] *= 30.0f;
      xr[17] *= -45.0f;
      xr[700] = 20.0f;
    }
    if (r == 6) {  // more outliers than kmax: the rest stay in the int8 part
      for (int c = 0; c < 12; ++c) xr[c * 50] = 100.0f + c;
    }
    if (r == 7) std::fill(xr, xr + width, 0.0f);
    if (r == 8) xr[5] = NAN;
    if (r == 9) {  // every non-zero value an outlier
      std::fill(xr, xr + width, 0.0f);
      xr[10] = 3.0f;
    }
  }
  std::vector<int8_t> qa(x.size());
  std::vector<float> sa(rows), va(rows * kmax);
  std::vector<int> ca(rows), cola(rows * kmax);
  int split_rows = 0;
  for (int r = 0; r < rows; ++r) {
    sa[r] = nn::ref::quantize_row_split(x.data() + static_cast<long>(r) * width, width,
                                        qa.data() + static_cast<long>(r) * width, kmax, &ca[r],
                                        cola.data() + r * kmax, va.data() + r * kmax);
    split_rows += ca[r] > 0;
  }
  EXPECT_EQ(ca[1], 3);
  EXPECT_EQ(cola[kmax + 0], 3);
  EXPECT_EQ(ca[6], kmax);
  EXPECT_EQ(ca[9], 1);
  EXPECT_EQ(sa[9], 0.0f);
  EXPECT_EQ(ca[0], 0);
  EXPECT_GE(split_rows, 8);
  for (const cpu::Int8Kernels* k : {&cpu::int8_kernels(), &cpu::generic_int8_kernels()}) {
    Quantized b(rows, width, kmax);
    k->quantize(x.data(), rows, width, nullptr, nullptr, b.rows);
    EXPECT_EQ(std::memcmp(qa.data(), b.q.data(), qa.size()), 0) << k->isa;
    for (int r = 0; r < rows; ++r) {
      expect_same_scale(sa[r], b.scale[r], r);
      ASSERT_EQ(ca[r], b.count[r]) << r << " " << k->isa;
      for (int j = 0; j < ca[r]; ++j) {
        EXPECT_EQ(cola[r * kmax + j], b.col[r * kmax + j]);
        EXPECT_EQ(va[r * kmax + j], b.val[r * kmax + j]);
      }
    }
  }
  // Without outliers the split changes nothing.
  std::vector<int8_t> qp(width);
  float sp = 0;
  nn::ref::quantize_activations(x.data(), 1, width, true, qp.data(), &sp);
  EXPECT_EQ(sp, sa[0]);
  EXPECT_EQ(std::memcmp(qp.data(), qa.data(), width), 0);
}

// LayerNorm fused into the quantization: the same floats as kernels().layer_norm, so the same
// int8 rows bit for bit.
TEST(Int8Quantize, FusedLayerNormEqualsLayerNormThenQuantize) {
  const int rows = 50, width = 200, kmax = nn::ref::kMaxOutliers;
  auto x = randn(static_cast<long>(rows) * width, 5, 3.0f);
  for (int r = 0; r < rows; r += 2) x[static_cast<long>(r) * width + 9] *= 40.0f;
  auto g = randn(width, 6), b = randn(width, 7, 0.1f);
  std::vector<float> h(x.size());
  cpu::kernels().layer_norm(x.data(), rows, width, g.data(), b.data(), h.data(), false);
  Quantized want(rows, width, kmax), got(rows, width, kmax);
  cpu::int8_kernels().quantize(h.data(), rows, width, nullptr, nullptr, want.rows);
  cpu::int8_kernels().quantize(x.data(), rows, width, g.data(), b.data(), got.rows);
  EXPECT_EQ(want.q, got.q);
  EXPECT_EQ(want.scale, got.scale);
  EXPECT_EQ(want.count, got.count);
  EXPECT_GT(got.count[0], 0);
}

TEST(Int8Quantize, PerTensorUsesOneScale) {
  auto x = randn(4 * 50, 2);
  x[17] = 9.0f;
  std::vector<int8_t> q(x.size());
  std::vector<float> s(4);
  nn::ref::quantize_activations(x.data(), 4, 50, false, q.data(), s.data());
  for (float v : s) EXPECT_EQ(v, 9.0f / 127.0f);
  EXPECT_EQ(q[17], 127);
}

TEST(Int8Quantize, WeightsPerOutputChannel) {
  auto w = randn(6 * 40, 3);
  w[2 * 40 + 5] = -30.0f;
  const auto qw = nn::ref::quantize_weights(w.data(), 6, 40);
  EXPECT_EQ(qw.scale[2], 30.0f / 127.0f);
  EXPECT_EQ(qw.q[2 * 40 + 5], -127);
  for (int o = 0; o < 6; ++o) {
    for (int i = 0; i < 40; ++i) {
      EXPECT_LE(std::fabs(w[o * 40 + i] - qw.q[o * 40 + i] * qw.scale[o]),
                0.5f * qw.scale[o] * 1.0001f);
    }
  }
}

// The documented bound (docs/backends.md): y_fast = (float(acc) * s_w) * s_x + s_w * outl + b
// in float, y_ref the same in double: a few float roundings,
// |diff| <= 3e-7 * (|acc s_x s_w| + |b| + s_w sum_k |x_k q_w|); GELU adds our erf
// approximation (<= 1.5e-7 * |x| / 2 + roundings).
using Post = cpu::Int8Linear::Post;
class Int8LinearMatches : public ::testing::TestWithParam<std::tuple<Post, bool>> {};

TEST_P(Int8LinearMatches, Reference) {
  const auto [post, outliers] = GetParam();
  const int kmax = outliers ? nn::ref::kMaxOutliers : 0;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  int split = 0;
  for (auto [m, in, out] : {std::tuple{1, 64, 48}, {50, 96, 288}, {77, 203, 131}}) {
    auto w = randn(static_cast<long>(out) * in, 10 + m, 0.1f);
    auto b = randn(out, 20 + m, 0.5f);
    auto x = randn(static_cast<long>(m) * in, 30 + m);
    for (int r = 0; r < m; r += 3) x[static_cast<long>(r) * in] *= 40.0f;  // row outliers
    cpu::Int8Linear lin(eng, w.data(), b.data(), in, out, m);
    Quantized q(m, in, kmax);
    cpu::int8_kernels().quantize(x.data(), m, in, nullptr, nullptr, q.rows);
    for (int r = 0; r < m && outliers; ++r) split += q.count[r];
    auto y0 = randn(static_cast<long>(m) * out, 40 + m);  // the residual stream
    std::vector<float> got = post == Post::kResidual ? y0 : std::vector<float>(y0.size());
    lin.run(strm, m, q.rows, post, got.data());

    const auto qw = nn::ref::quantize_weights(w.data(), out, in);
    std::vector<float> want(y0.size());
    nn::ref::linear_int8(x.data(), m, qw, b.data(), true, want.data(), kmax);
    // Magnitudes: the same sums over |terms| (x and weights by absolute value).
    std::vector<float> xa(x.size()), wa(w.size()), mag(y0.size());
    for (size_t i = 0; i < x.size(); ++i) xa[i] = std::fabs(x[i]);
    nn::ref::QuantWeights qa = qw;
    for (auto& v : qa.q) v = static_cast<int8_t>(std::abs(v));
    nn::ref::linear_int8(xa.data(), m, qa, nullptr, true, mag.data(), kmax);
    const bool act = post == Post::kGelu || post == Post::kQuickGelu;
    if (act) nn::ref::gelu(want.data(), static_cast<long>(want.size()), post == Post::kQuickGelu);
    double worst = 0;
    for (long i = 0; i < static_cast<long>(want.size()); ++i) {
      const int o = static_cast<int>(i % out);
      double bound = 3e-7 * (std::fabs(mag[i]) + std::fabs(b[o]));
      double ref = want[i];
      if (post == Post::kResidual) {
        ref += y0[i];
        bound += 6e-8 * std::fabs(ref);
      }
      if (act) bound = 1.2 * bound + 2e-6 + 1e-7 * std::fabs(ref);
      worst = std::max(worst, std::fabs(got[i] - ref) / bound);
      ASSERT_LE(std::fabs(got[i] - ref), bound) << "m=" << m << " i=" << i;
    }
    RecordProperty("worst_over_bound_m" + std::to_string(m), std::to_string(worst));
  }
  if (outliers) {
    EXPECT_GT(split, 10);  // the outlier path did run
  }
}

INSTANTIATE_TEST_SUITE_P(Posts, Int8LinearMatches,
                         ::testing::Combine(::testing::Values(Post::kNone, Post::kResidual,
                                                              Post::kGelu, Post::kQuickGelu),
                                            ::testing::Bool()));

// The fused epilogue (residual + LayerNorm + quantization, or GELU + quantization without
// storing the float row) equals the unfused steps bit for bit.
TEST(Int8Epilogue, FusedStepsEqualSeparateSteps) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const int m = 45, in = 96, out = 160, kmax = nn::ref::kMaxOutliers;
  auto w = randn(static_cast<long>(out) * in, 50, 0.1f), b = randn(out, 51, 0.5f);
  auto x = randn(static_cast<long>(m) * in, 52);
  for (int r = 0; r < m; r += 2) x[static_cast<long>(r) * in + 4] *= 50.0f;
  auto g = randn(out, 53), beta = randn(out, 54, 0.1f);
  cpu::Int8Linear lin(eng, w.data(), b.data(), in, out, m);
  Quantized q(m, in, kmax);
  cpu::int8_kernels().quantize(x.data(), m, in, nullptr, nullptr, q.rows);
  std::vector<float> t(static_cast<size_t>(m) * out);
  lin.matmul(strm, m, q.q.data(), t.data());
  for (Post post : {Post::kResidual, Post::kGelu}) {
    const auto y0 = randn(static_cast<long>(m) * out, 55);
    std::vector<float> ya = y0, yb = y0;
    Quantized want(m, out, kmax), got(m, out, kmax);
    cpu::Int8Epilogue e = lin.epilogue(t.data(), &q.rows, post);
    e.y = ya.data();
    cpu::int8_kernels().epilogue(e, m);
    const bool ln = post == Post::kResidual;
    cpu::int8_kernels().quantize(ya.data(), m, out, ln ? g.data() : nullptr,
                                 ln ? beta.data() : nullptr, want.rows);
    e.y = ln ? yb.data() : nullptr;
    e.ln_g = ln ? g.data() : nullptr;
    e.ln_b = ln ? beta.data() : nullptr;
    e.next = &got.rows;
    cpu::int8_kernels().epilogue(e, m);
    if (ln) {
      EXPECT_EQ(ya, yb);
    }
    EXPECT_EQ(want.q, got.q);
    EXPECT_EQ(want.scale, got.scale);
    EXPECT_EQ(want.count, got.count);
  }
}

// Whole forward passes: the cpu int8 path against the reference int8 path (same scheme; they
// can differ where a value sits at a rounding boundary after the fp32 LayerNorm/attention
// kernels' last-bit differences), and int8 against fp32.
TEST(Int8Backend, MatchesReferenceInt8AndStaysNearFp32) {
  for (bool quick : {false, true}) {
    const ModelConfig cfg = small_config(quick);
    auto w = random_clip_weights(cfg, 7);
    nn::BackendOptions o8;
    o8.precision = "int8";
    auto ref8 = nn::make_backend("reference", cfg, w, o8);
    auto cpu8 = nn::make_backend("cpu", cfg, w, o8);
    auto ref32 = nn::make_backend("reference", cfg, w, {});
    EXPECT_EQ(cpu8->precision(), "int8");
    EXPECT_EQ(ref8->precision(), "int8");
    const int n = 3;
    auto px = random_pixels(cfg, n, 7);
    auto ids = random_texts(cfg, 7);
    Outputs a = run(*ref8, px, n, ids), b = run(*cpu8, px, n, ids), c = run(*ref32, px, n, ids);
    expect_rows_close(b.img, a.img, cfg.embed_dim, 1 - 1e-4, 2e-2f, "int8 image vs ref int8");
    expect_rows_close(b.txt, a.txt, cfg.embed_dim, 1 - 1e-4, 2e-2f, "int8 text vs ref int8");
    expect_rows_close(b.img, c.img, cfg.embed_dim, 0.995, 0.2f, "int8 image vs fp32");
    expect_rows_close(b.txt, c.txt, cfg.embed_dim, 0.995, 0.2f, "int8 text vs fp32");
    // Per-token scales: an item's embedding does not depend on its batch.
    const int e = cfg.embed_dim;
    std::vector<float> one(e);
    cpu8->encode_images(px.data() + 3L * 48 * 48, 1, one.data());
    for (int k = 0; k < e; ++k) EXPECT_EQ(one[k], b.img[e + k]) << k;
    std::vector<float> t1(e);
    cpu8->encode_texts({ids[2]}, t1.data());
    for (int k = 0; k < e; ++k) EXPECT_EQ(t1[k], b.txt[2 * e + k]) << k;
  }
}

// Residual-stream outlier channels (bench/bench_int8_accuracy.cpp's injection: channels 3,
// 17, 42, 61 of every write into the stream scaled 20-50x): with the outlier split, int8
// stays near fp32 and the fast path near the reference; without it, text falls behind.
std::shared_ptr<const WeightMap> inject_outliers(const ModelConfig& cfg, const WeightMap& src) {
  auto out = std::make_shared<WeightMap>(src.source() + " + outliers");
  const std::vector<std::pair<int, float>> ch = {{3, 20.0f}, {17, 35.0f}, {42, 50.0f}, {61, 28.0f}};
  for (const std::string& name : src.names()) {
    const WeightTensor& t = src.at(name);
    std::vector<float> d(t.data, t.data + t.numel());
    const int64_t w = name.rfind("visual.", 0) == 0 ? cfg.vision.width : cfg.text.width;
    auto ends = [&](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    const bool rows = name == "visual.conv1.weight" || ends("attn.out_proj.weight") ||
                      ends("mlp.c_proj.weight") || ends("attn.out_proj.bias") ||
                      ends("mlp.c_proj.bias");
    const bool cols = name == "visual.class_embedding" || name == "visual.positional_embedding" ||
                      name == "visual.ln_pre.weight" || name == "visual.ln_pre.bias" ||
                      name == "token_embedding.weight" || name == "positional_embedding";
    if (rows) {
      const int64_t per = t.numel() / w;  // [width, ...]: channel c is row c
      for (auto [c, k] : ch)
        for (int64_t j = 0; j < per; ++j) d[c * per + j] *= k;
    } else if (cols) {
      for (int64_t r = 0; r < t.numel() / w; ++r)
        for (auto [c, k] : ch) d[r * w + c] *= k;
    }
    out->add_owned(name, t.shape, std::move(d));
  }
  return out;
}

double min_row_cos(const std::vector<float>& a, const std::vector<float>& b, int dim) {
  double worst = 1;
  for (size_t r = 0; r < a.size() / dim; ++r) {
    worst = std::min(worst, cosine(std::span<const float>(a.data() + r * dim, dim),
                                   std::span<const float>(b.data() + r * dim, dim)));
  }
  return worst;
}

TEST(Int8Backend, OutlierSplitHandlesInjectedOutliers) {
  const ModelConfig cfg = small_config(false);
  auto w = inject_outliers(cfg, *random_clip_weights(cfg, 9));
  nn::BackendOptions o8, o8plain;
  o8.precision = o8plain.precision = "int8";
  o8plain.int8_outliers = false;
  auto ref8 = nn::make_backend("reference", cfg, w, o8);
  auto cpu8 = nn::make_backend("cpu", cfg, w, o8);
  auto plain8 = nn::make_backend("cpu", cfg, w, o8plain);
  auto ref32 = nn::make_backend("reference", cfg, w, {});
  const int n = 3;
  auto px = random_pixels(cfg, n, 9);
  auto ids = random_texts(cfg, 9);
  Outputs a = run(*ref8, px, n, ids), b = run(*cpu8, px, n, ids), c = run(*ref32, px, n, ids),
          p = run(*plain8, px, n, ids);
  const int e = cfg.embed_dim;
  expect_rows_close(b.img, a.img, e, 1 - 1e-4, 2e-2f, "int8 image vs ref int8");
  expect_rows_close(b.txt, a.txt, e, 1 - 1e-4, 2e-2f, "int8 text vs ref int8");
  const double split_img = min_row_cos(b.img, c.img, e), split_txt = min_row_cos(b.txt, c.txt, e);
  const double plain_txt = min_row_cos(p.txt, c.txt, e);
  RecordProperty("split_image_cos", std::to_string(split_img));
  RecordProperty("split_text_cos", std::to_string(split_txt));
  RecordProperty("plain_text_cos", std::to_string(plain_txt));
  EXPECT_GE(split_img, 0.995);
  EXPECT_GE(split_txt, 0.995);
  EXPECT_LT(1 - split_txt, 1 - plain_txt);  // the split is what fixes it
}

TEST(Int8Backend, GemmOnlyRunsAndBadPrecisionIsRejected) {
  const ModelConfig cfg = small_config(false);
  auto w = random_clip_weights(cfg, 8);
  nn::BackendOptions o8;
  o8.precision = "int8";
  auto cpu8 = nn::make_backend("cpu", cfg, w, o8);
  EXPECT_TRUE(cpu8->run_gemms_only(true, 2, 0));
  EXPECT_TRUE(cpu8->run_gemms_only(false, 2, 7));
  nn::BackendOptions bad;
  bad.precision = "int4";
  EXPECT_THROW(nn::make_backend("cpu", cfg, w, bad), Error);
  EXPECT_THROW(nn::make_backend("reference", cfg, w, bad), Error);
}

}  // namespace
}  // namespace clipserve::test

// int8 path: the fast quantization and oneDNN int8 linear layers against the plain reference
// (src/nn/ref_int8.h), and whole int8 forward passes (cpu vs reference, int8 vs fp32).
#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <random>

#include "clipserve/error.h"
#include "cpu/int8.h"
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
  std::vector<int8_t> qa(x.size()), qb(x.size(), 99);
  std::vector<float> sa(rows), sb(rows);
  nn::ref::quantize_activations(x.data(), rows, width, true, qa.data(), sa.data());
  cpu::quantize_rows(x.data(), rows, width, qb.data(), sb.data());
  EXPECT_EQ(std::memcmp(qa.data(), qb.data(), qa.size()), 0);
  for (int r = 0; r < rows; ++r) {
    if (std::isnan(sa[r])) {
      EXPECT_TRUE(std::isnan(sb[r])) << r;
    } else {
      EXPECT_EQ(sa[r], sb[r]) << r;
    }
  }
  EXPECT_EQ(sa[3], 0.0f);
  EXPECT_TRUE(std::isnan(sa[8]) && std::isnan(sa[9]));
  EXPECT_EQ(sa[5], 1.0f);
  EXPECT_EQ(qa[5 * width + 0], 0);   // 0.5 -> 0
  EXPECT_EQ(qa[5 * width + 1], -2);  // -1.5 -> -2
  EXPECT_EQ(qa[5 * width + 2], 2);   // 2.5 -> 2
  for (int i = 0; i < width; ++i) EXPECT_GE(qa[i], -127);
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

// The documented bound (docs/backends.md): y_fast = (float(acc) * s_w) * s_x + b in float,
// y_ref the same in double: a few float roundings, |diff| <= 3e-7 * (|acc s_x s_w| + |b|);
// GELU adds oneDNN's erf approximation.
using Post = cpu::Int8Linear::Post;
class Int8LinearMatches : public ::testing::TestWithParam<Post> {};

TEST_P(Int8LinearMatches, Reference) {
  const Post post = GetParam();
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  for (auto [m, in, out] : {std::tuple{1, 64, 48}, {50, 96, 288}, {77, 203, 131}}) {
    auto w = randn(static_cast<long>(out) * in, 10 + m, 0.1f);
    auto b = randn(out, 20 + m, 0.5f);
    auto x = randn(static_cast<long>(m) * in, 30 + m);
    for (int r = 0; r < m; r += 3) x[static_cast<long>(r) * in] *= 40.0f;  // row outliers
    cpu::Int8Linear lin(eng, w.data(), b.data(), in, out, post, m);
    std::vector<int8_t> q(x.size());
    std::vector<float> s(m);
    cpu::quantize_rows(x.data(), m, in, q.data(), s.data());
    auto y0 = randn(static_cast<long>(m) * out, 40 + m);  // the residual stream
    std::vector<float> got = post == Post::kResidual ? y0 : std::vector<float>(y0.size());
    lin.run(strm, m, q.data(), s.data(), got.data());

    const auto qw = nn::ref::quantize_weights(w.data(), out, in);
    std::vector<float> want(y0.size()), mag(y0.size());
    nn::ref::linear_int8(x.data(), m, qw, b.data(), true, want.data());
    nn::ref::linear_int8(x.data(), m, qw, nullptr, true, mag.data());
    if (post == Post::kGelu || post == Post::kQuickGelu)
      nn::ref::gelu(want.data(), static_cast<long>(want.size()), post == Post::kQuickGelu);
    double worst = 0;
    for (long i = 0; i < static_cast<long>(want.size()); ++i) {
      const int o = static_cast<int>(i % out);
      double bound = 3e-7 * (std::fabs(mag[i]) + std::fabs(b[o]));
      double ref = want[i];
      if (post == Post::kResidual) {
        ref += y0[i];
        bound += 6e-8 * std::fabs(ref);
      }
      if (post == Post::kGelu || post == Post::kQuickGelu) bound = 1.2 * bound + 2e-6;
      worst = std::max(worst, std::fabs(got[i] - ref) / bound);
      ASSERT_LE(std::fabs(got[i] - ref), bound) << "m=" << m << " i=" << i;
    }
    RecordProperty("worst_over_bound_m" + std::to_string(m), std::to_string(worst));
  }
}

INSTANTIATE_TEST_SUITE_P(Posts, Int8LinearMatches,
                         ::testing::Values(Post::kNone, Post::kResidual, Post::kGelu,
                                           Post::kQuickGelu));

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

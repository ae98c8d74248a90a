// Forward pass tests: reference and oneDNN backends against each other (random weights) and
// against open_clip's goldens (synthetic weights, tiny and ViT-B-32).
#include <zlib.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <random>

#include "clipserve/error.h"
#include "core/file.h"
#include "core/npy.h"
#include "cpu/kernels.h"
#include "model_testing.h"
#include "nn/backend.h"
#include "nn/ref_kernels.h"
#include "testing.h"

namespace clipserve::test {
namespace {

struct Outputs {
  std::vector<float> img, txt;
};

std::vector<float> random_pixels(const ModelConfig& cfg, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> px(static_cast<size_t>(n) * 3 * cfg.vision.image_size * cfg.vision.image_size);
  for (auto& x : px) x = d(rng);
  return px;
}

std::vector<std::vector<int32_t>> random_texts(const ModelConfig& cfg, uint32_t seed) {
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

Outputs run(nn::Backend& b, const std::vector<float>& px, int n,
            const std::vector<std::vector<int32_t>>& ids) {
  const int e = b.config().embed_dim;
  Outputs o;
  o.img.resize(static_cast<size_t>(n) * e);
  o.txt.resize(ids.size() * e);
  b.encode_images(px.data(), n, o.img.data());
  b.encode_texts(ids, o.txt.data());
  return o;
}

void expect_rows_close(const std::vector<float>& got, const std::vector<float>& want, int dim,
                       double min_cos, float rel_tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const int rows = static_cast<int>(got.size() / dim);
  for (int r = 0; r < rows; ++r) {
    std::span<const float> g(got.data() + r * dim, dim), w(want.data() + r * dim, dim);
    EXPECT_GE(cosine(g, w), min_cos) << what << " row " << r;
    EXPECT_LE(max_abs_diff(g, w), rel_tol * max_abs(w)) << what << " row " << r;
  }
}

class BackendsAgree : public ::testing::TestWithParam<bool> {};

TEST_P(BackendsAgree, RandomWeightsSmallConfig) {
  const ModelConfig cfg = small_config(GetParam());
  for (uint32_t seed : {1u, 2u}) {
    auto w = random_clip_weights(cfg, seed);
    auto ref = nn::make_backend("reference", cfg, w, {});
    auto cpu = nn::make_backend("cpu", cfg, w, {});
    const int n = 3;
    auto px = random_pixels(cfg, n, seed);
    auto ids = random_texts(cfg, seed);
    Outputs a = run(*ref, px, n, ids), b = run(*cpu, px, n, ids);
    expect_rows_close(b.img, a.img, cfg.embed_dim, 1 - 1e-6, 2e-5f, "image");
    expect_rows_close(b.txt, a.txt, cfg.embed_dim, 1 - 1e-6, 2e-5f, "text");
    // Tokens after the pooled position change nothing (the last row pools at index 1).
    auto ids2 = ids;
    ids2.back() = {5, cfg.text.vocab_size - 1};
    Outputs c = run(*cpu, px, n, ids2);
    const int e = cfg.embed_dim;
    for (int k = 0; k < e; ++k)
      EXPECT_EQ(c.txt[(ids.size() - 1) * e + k], b.txt[(ids.size() - 1) * e + k]);
    // Batch of one gives the same as inside a batch (row independence).
    std::vector<float> one(e);
    cpu->encode_images(px.data() + 3L * 48 * 48, 1, one.data());
    expect_rows_close(one, std::vector<float>(b.img.begin() + e, b.img.begin() + 2 * e), e,
                      1 - 1e-6, 2e-5f, "image batch 1");
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, BackendsAgree, ::testing::Values(false, true));

TEST(Backend, RejectsBadTokens) {
  const ModelConfig cfg = small_config(false);
  auto w = random_clip_weights(cfg, 3);
  for (const char* name : {"reference", "cpu"}) {
    auto b = nn::make_backend(name, cfg, w, {});
    std::vector<float> out(4 * cfg.embed_dim);
    EXPECT_THROW(b->encode_texts({{}}, out.data()), Error) << name;
    EXPECT_THROW(b->encode_texts({{1, 2, 1000}}, out.data()), Error) << name;
    EXPECT_THROW(b->encode_texts({{1, -2, 3}}, out.data()), Error) << name;
    EXPECT_THROW(b->encode_texts({std::vector<int32_t>(21, 3)}, out.data()), Error) << name;
  }
  EXPECT_THROW(nn::make_backend("gpu", cfg, w, {}), Error);
}

TEST(Backend, RejectsMissingOrMisshapedTensor) {
  const ModelConfig cfg = small_config(false);
  auto w = random_clip_weights(cfg, 4);
  w->erase("visual.transformer.resblocks.1.mlp.c_fc.bias");
  try {
    nn::make_backend("cpu", cfg, w, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("visual.transformer.resblocks.1.mlp.c_fc.bias"),
              std::string::npos)
        << e.what();
  }
  auto w2 = random_clip_weights(cfg, 4);
  w2->add_owned("text_projection", {3}, {1, 2, 3});
  EXPECT_THROW(nn::make_backend("reference", cfg, w2, {}), Error);
}

// ---- open_clip goldens (synthetic seed 0) ----

// tests/data/model/image_input_224.u8.zlib holds the 8-bit pixels behind the goldens'
// image_input_224.npy: open_clip normalizes uint8 / 255 as (x - mean) / std in float32, so
// the float tensor is rebuilt bit-exactly (checked against ../shared below).
std::vector<float> golden_pixels() {
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

TEST(Golden, CompactPixelsAreBitExact) {
  CS_REQUIRE_SHARED(shared);
  const auto want = read_npy(shared + "/golden/model/image_input_224.npy").to_f32();
  const auto got = golden_pixels();
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
}

ModelConfig arch_config(const std::string& arch) {
  ModelConfig c;
  c.name = arch;
  c.vision.patch_size = 32;
  if (arch == "tiny") {
    c.embed_dim = 32;
    c.vision.width = 64;
    c.vision.layers = 2;
    c.vision.head_width = 32;
    c.text.width = 64;
    c.text.heads = 2;
    c.text.layers = 2;
  } else if (arch == "ViT-B-32-quickgelu") {
    c.quick_gelu = true;
  } else if (arch == "ViT-B-16") {
    c.vision.patch_size = 16;
  } else if (arch == "ViT-L-14") {
    c.embed_dim = 768;
    c.vision.patch_size = 14;
    c.vision.width = 1024;
    c.vision.layers = 24;
    c.text.width = 768;
    c.text.heads = 12;
  }
  return c;
}

/// Token rows of text_tokens.npy cut after the EOT (the contract: no padding).
std::vector<std::vector<int32_t>> golden_ids(const std::string& dir) {
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

std::vector<float> probs_of(const std::vector<float>& img, const std::vector<float>& txt, int e,
                            float logit_scale) {
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
std::pair<double, double> check_golden(nn::Backend& b, const std::string& dir,
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

class GoldenArch : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(GoldenArch, MatchesOpenClip) {
  const auto& [arch, backend] = GetParam();
  const ModelConfig cfg = arch_config(arch);
  auto w = synthetic_clip_weights(cfg, 0);
  auto b = nn::make_backend(backend, cfg, w, {});
  check_golden(*b, data_dir() + "/model/" + arch, golden_pixels(), w->at("logit_scale").data[0]);
}

INSTANTIATE_TEST_SUITE_P(Core, GoldenArch,
                         ::testing::Combine(::testing::Values("tiny", "ViT-B-32"),
                                            ::testing::Values("reference", "cpu")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (auto& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// bf16 fast mode: cosine >= 0.999 against open_clip's fp32 features on every row.
TEST(GoldenBf16, CloseToFp32) {
  if (!__builtin_cpu_supports("avx512bf16")) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (const std::string arch : {"tiny", "ViT-B-32"}) {
    const ModelConfig cfg = arch_config(arch);
    auto w = synthetic_clip_weights(cfg, 0);
    nn::BackendOptions opt;
    opt.precision = "bf16";
    auto b = nn::make_backend("cpu", cfg, w, opt);
    ASSERT_EQ(b->precision(), "bf16");
    const std::string dir = data_dir() + "/model/" + arch;
    Outputs o = run(*b, golden_pixels(), 6, golden_ids(dir));
    const auto gi = read_npy(dir + "/image_features.npy").to_f32();
    const auto gt = read_npy(dir + "/text_features.npy").to_f32();
    double worst = 1;
    for (auto [got, want] : {std::pair{&o.img, &gi}, std::pair{&o.txt, &gt}}) {
      const int e = cfg.embed_dim;
      for (size_t r = 0; r < got->size() / e; ++r) {
        const double c =
            cosine({got->data() + r * e, size_t(e)}, {want->data() + r * e, size_t(e)});
        EXPECT_GE(c, 0.999) << arch << " row " << r;
        worst = std::min(worst, c);
      }
    }
    std::printf("[golden] %-20s cpu bf16: min cos %.6f\n", arch.c_str(), worst);
  }
}

// Every build of the fast kernels (generic, and AVX-512 where the CPU has it) against the
// reference kernels.
std::vector<const cpu::Kernels*> kernel_builds() {
  std::vector<const cpu::Kernels*> k{&cpu::generic_kernels()};
  if (&cpu::kernels() != &cpu::generic_kernels()) k.push_back(&cpu::kernels());
  return k;
}

float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(CpuKernels, LayerNormMatchesReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.3f, 2.0f);
  for (int width : {1, 7, 64, 100, 768}) {
    const int rows = 5;
    std::vector<float> x(rows * width), g(width), b(width), want(rows * width);
    for (auto& v : x) v = d(rng);
    for (auto& v : g) v = 1 + 0.1f * d(rng);
    for (auto& v : b) v = 0.1f * d(rng);
    nn::ref::layer_norm(x.data(), rows, width, g.data(), b.data(), want.data());
    for (const cpu::Kernels* k : kernel_builds()) {
      std::vector<float> got(rows * width);
      k->layer_norm(x.data(), rows, width, g.data(), b.data(), got.data(), false);
      EXPECT_LE(max_abs_diff(got, want), 2e-6f * max_abs(want)) << k->isa << " width " << width;
      std::vector<uint16_t> h(rows * width);
      k->layer_norm(x.data(), rows, width, g.data(), b.data(), h.data(), true);
      for (int i = 0; i < rows * width; ++i) {
        ASSERT_NEAR(bf16_to_float(h[i]), want[i], std::abs(want[i]) * 0.0079f + 1e-6f) << k->isa;
      }
    }
  }
}

TEST(CpuKernels, AttentionMatchesReference) {
  std::mt19937 rng(8);
  std::normal_distribution<float> d(0.0f, 1.5f);
  const int width = 96, heads = 3;
  // Packed sequences of different lengths, as the text tower batches them.
  const std::vector<cpu::SeqSpan> seqs{{0, 1}, {1, 17}, {18, 50}, {68, 3}};
  const int rows = 71;
  std::vector<float> qkv(rows * 3 * width);
  for (auto& v : qkv) v = d(rng);
  for (bool causal : {false, true}) {
    std::vector<float> want(rows * width);
    for (const auto& s : seqs) {
      nn::ref::attention(qkv.data() + s.offset * 3L * width, s.length, width, heads, causal,
                         want.data() + s.offset * width);
    }
    for (const cpu::Kernels* k : kernel_builds()) {
      std::vector<float> got(rows * width);
      k->attention(qkv.data(), seqs.data(), 4, width, heads, causal, got.data(), false);
      EXPECT_LE(max_abs_diff(got, want), 2e-6f * max_abs(want)) << k->isa << " causal " << causal;
    }
  }
}

TEST(CpuKernels, Bf16RoundsToNearestEven) {
  const float in[] = {
      1.0f, 1.00390625f /* tie, even down */, 1.01171875f /* tie, up */, -2.5f, 3.0e-39f, 65504.0f};
  for (const cpu::Kernels* k : kernel_builds()) {
    uint16_t out[6];
    k->to_bf16(in, 6, out);
    EXPECT_EQ(out[0], 0x3f80) << k->isa;
    EXPECT_EQ(out[1], 0x3f80) << k->isa;
    EXPECT_EQ(out[2], 0x3f82) << k->isa;
    EXPECT_EQ(bf16_to_float(out[3]), -2.5f) << k->isa;
    EXPECT_NEAR(bf16_to_float(out[4]), 3.0e-39f, 4.6e-41f) << k->isa;  // half a bf16 subnormal step
    EXPECT_EQ(bf16_to_float(out[5]), 65536.0f) << k->isa;
  }
}

}  // namespace
}  // namespace clipserve::test

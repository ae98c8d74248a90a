// Forward pass tests: reference and oneDNN backends against each other (random weights) and
// against open_clip's goldens (synthetic weights, tiny and ViT-B-32).
#include <zlib.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "clipserve/encoder.h"
#include "clipserve/error.h"
#include "core/file.h"
#include "core/npy.h"
#include "cpu/attention.h"
#include "cpu/kernels.h"
#include "model_testing.h"
#include "nn/backend.h"
#include "nn/ref_kernels.h"
#include "testing.h"

namespace clipserve::test {
namespace {

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
TEST(Golden, CompactPixelsAreBitExact) {
  CS_REQUIRE_SHARED(shared);
  const auto want = read_npy(shared + "/golden/model/image_input_224.npy").to_f32();
  const auto got = golden_pixels();
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
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
    check_bf16_golden(arch, data_dir() + "/model/" + arch);
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
  // Packed sequences: equal lengths (grouped into one batched call) and others, as images and
  // texts arrive.
  const std::vector<cpu::SeqSpan> seqs{{0, 1}, {1, 17}, {18, 50}, {68, 3}, {71, 17}};
  const int rows = 88;
  std::vector<float> qkv(rows * 3 * width);
  for (auto& v : qkv) v = d(rng);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  cpu::Attention att(eng, dnnl::stream(eng));
  for (bool causal : {false, true}) {
    std::vector<float> want(rows * width);
    for (const auto& s : seqs) {
      nn::ref::attention(qkv.data() + s.offset * 3L * width, s.length, width, heads, causal,
                         want.data() + s.offset * width);
    }
    std::vector<float> got(rows * width);
    att.run(qkv.data(), seqs.data(), static_cast<int>(seqs.size()), width, heads, causal,
            got.data(), false);
    EXPECT_LE(max_abs_diff(got, want), 2e-6f * max_abs(want)) << " causal " << causal;
    std::vector<uint16_t> h(rows * width);
    att.run(qkv.data(), seqs.data(), static_cast<int>(seqs.size()), width, heads, causal, h.data(),
            true);
    for (int i = 0; i < rows * width; ++i) {
      ASSERT_NEAR(bf16_to_float(h[i]), want[i], std::abs(want[i]) * 0.0079f + 1e-6f);
    }
  }
}

// The fused (flash-style) kernel and the batched-matmul path against the reference on
// sequences that end inside, at and just past the kernel's query and key blocks (32, 128),
// with scores large enough (std ~ 18 before the 1/sqrt(d) scale) that the online softmax's
// running maximum moves between blocks.
TEST(CpuKernels, FusedAttentionMatchesReference) {
  std::mt19937 rng(11);
  for (const auto& [width, heads] : {std::pair{128, 2}, std::pair{96, 2}, std::pair{64, 4}}) {
    const std::vector<cpu::SeqSpan> seqs{{0, 1},     {1, 33},   {34, 129},
                                         {163, 300}, {463, 32}, {495, 300}};
    const int rows = 795;
    std::normal_distribution<float> d(0.0f, 1.5f);
    std::vector<float> qkv(static_cast<size_t>(rows) * 3 * width);
    for (auto& v : qkv) v = d(rng);
    std::vector<float> want(static_cast<size_t>(rows) * width);
    for (const auto& s : seqs) {
      nn::ref::attention(qkv.data() + s.offset * 3L * width, s.length, width, heads, false,
                         want.data() + static_cast<long>(s.offset) * width);
    }
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    cpu::Attention att(eng, dnnl::stream(eng));
    for (auto mode : {cpu::Attention::Mode::kAuto, cpu::Attention::Mode::kMatmuls}) {
      SCOPED_TRACE(testing::Message() << "width " << width << " heads " << heads << " mode "
                                      << static_cast<int>(mode));
      att.set_mode(mode);
      std::vector<float> got(want.size());
      att.run(qkv.data(), seqs.data(), static_cast<int>(seqs.size()), width, heads, false,
              got.data(), false);
      EXPECT_LE(max_abs_diff(got, want), 2e-6f * max_abs(want));
      std::vector<uint16_t> h(want.size());
      att.run(qkv.data(), seqs.data(), static_cast<int>(seqs.size()), width, heads, false, h.data(),
              true);
      for (size_t i = 0; i < h.size(); ++i) {
        ASSERT_NEAR(bf16_to_float(h[i]), want[i], std::abs(want[i]) * 0.0079f + 1e-5f) << i;
      }
    }
  }
  EXPECT_TRUE(!__builtin_cpu_supports("avx512bf16") || cpu::Attention::fused_supported(64));
}

TEST(CpuKernels, DirectAttentionMatchesReference) {
  std::mt19937 rng(10);
  std::normal_distribution<float> d(0.0f, 1.5f);
  const int width = 64, heads = 2, rows = 30;
  const std::vector<cpu::SeqSpan> seqs{{0, 1}, {1, 16}, {17, 13}};
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
      k->attention_direct(qkv.data(), seqs.data(), 3, width, heads, causal, got.data(), false);
      EXPECT_LE(max_abs_diff(got, want), 2e-6f * max_abs(want)) << k->isa << " causal " << causal;
    }
  }
}

TEST(CpuKernels, AttentionSoftmaxMatchesDouble) {
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.0f, 4.0f);
  const int mats = 3, tp = 24, len = 21;
  const float scale = 0.125f;
  std::vector<float> s(mats * tp * tp);
  for (auto& v : s) v = d(rng);
  for (bool causal : {false, true}) {
    for (const cpu::Kernels* k : kernel_builds()) {
      std::vector<float> got = s;
      k->attention_softmax(got.data(), mats, tp, len, scale, causal);
      for (int m = 0; m < mats; ++m) {
        for (int i = 0; i < tp; ++i) {
          const float* in = s.data() + (m * tp + i) * tp;
          const float* out = got.data() + (m * tp + i) * tp;
          const int n = i >= len ? 0 : (causal ? i + 1 : len);
          double mx = -1e300, sum = 0;
          for (int j = 0; j < n; ++j) mx = std::max(mx, double(in[j]) * scale);
          for (int j = 0; j < n; ++j) sum += std::exp(double(in[j]) * scale - mx);
          for (int j = 0; j < tp; ++j) {
            const double want = j < n ? std::exp(double(in[j]) * scale - mx) / sum : 0.0;
            ASSERT_NEAR(out[j], want, 2e-7 + 1e-6 * want)
                << k->isa << " " << m << " " << i << " " << j;
          }
        }
      }
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

// ---- Encoder API and `clipserve embed` on a model directory ----

std::string tiny_model_dir() {
  static const std::string dir = [] {
    const std::string d = temp_dir() + "/tiny";
    write_synthetic_model(arch_config("tiny"), 0, d);
    return d;
  }();
  return dir;
}

TEST(Encoder, LoadsModelDirAndMatchesGoldens) {
  for (const char* backend : {"cpu", "reference"}) {
    EncoderOptions opt;
    opt.backend = backend;
    opt.threads = 2;
    auto enc = Encoder::load(tiny_model_dir(), opt);
    EXPECT_EQ(enc->embed_dim(), 32);
    EXPECT_EQ(enc->logit_scale(), 100.00000762939453f);
    const std::string dir = data_dir() + "/model/tiny";
    const auto px = golden_pixels();
    std::vector<float> img(6 * 32), txt(12 * 32);
    enc->encode_images(px.data(), 6, img.data());
    enc->encode_texts(golden_ids(dir), txt.data());
    expect_rows_close(img, read_npy(dir + "/image_features.npy").to_f32(), 32, 0.99999, 2e-5f,
                      backend);
    expect_rows_close(txt, read_npy(dir + "/text_features.npy").to_f32(), 32, 0.99999, 2e-5f,
                      backend);
  }
  EncoderOptions bad;
  bad.backend = "gpu";
  EXPECT_THROW(Encoder::load(tiny_model_dir(), bad), Error);
  EXPECT_THROW(Encoder::load(temp_dir() + "/missing", {}), Error);
}

TEST(EmbedCli, NpyAndTextInputsInOrder) {
  const std::string t = temp_dir();
  const std::string dir = data_dir() + "/model/tiny";
  const auto px = golden_pixels();
  const long plane = 3L * 224 * 224;
  write_npy_f32(t + "/img1.npy", std::span<const float>(px.data() + plane, plane), {3, 224, 224});
  write_npy_f32(t + "/img0.npy", std::span<const float>(px.data(), plane), {3, 224, 224});
  {
    std::ofstream f(t + "/texts.jsonl");
    f << "{\"text\": \"a photo of a cat.\"}\n\n{\"text\": \"a diagram\"}\n";
  }
  const std::string cmd = cli_path() + " embed --model " + tiny_model_dir() + " --out " + t +
                          "/raw.npy --raw " + t + "/img1.npy 'text:a photo of a dog.' " + t +
                          "/img0.npy @" + t + "/texts.jsonl 2>&1";
  auto [rc, out] = run_command(cmd);
  ASSERT_EQ(rc, 0) << out;
  const NpyArray a = read_npy(t + "/raw.npy");
  ASSERT_EQ(a.shape, (std::vector<int64_t>{5, 32}));
  const auto got = a.to_f32();
  const auto gi = read_npy(dir + "/image_features.npy").to_f32();
  const auto gt = read_npy(dir + "/text_features.npy").to_f32();
  auto row = [](const std::vector<float>& v, int r) {
    return std::vector<float>(v.begin() + r * 32, v.begin() + (r + 1) * 32);
  };
  // Rows in input order: image 1, text 0, image 0, texts 1 and 2 (golden texts 0..2 are
  // "a photo of a dog.", "a photo of a cat.", "a diagram").
  expect_rows_close(row(got, 0), row(gi, 1), 32, 0.99999, 2e-5f, "image 1");
  expect_rows_close(row(got, 1), row(gt, 0), 32, 0.99999, 2e-5f, "text 0");
  expect_rows_close(row(got, 2), row(gi, 0), 32, 0.99999, 2e-5f, "image 0");
  expect_rows_close(row(got, 3), row(gt, 1), 32, 0.99999, 2e-5f, "text 1");
  expect_rows_close(row(got, 4), row(gt, 2), 32, 0.99999, 2e-5f, "text 2");

  auto [rc2, out2] = run_command(cli_path() + " embed --model " + tiny_model_dir() + " --out " + t +
                                 "/norm.npy " + t + "/img0.npy 'text:a photo of a dog.' 2>&1");
  ASSERT_EQ(rc2, 0) << out2;
  const auto n = read_npy(t + "/norm.npy").to_f32();
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int k = 0; k < 32; ++k) s += double(n[r * 32 + k]) * n[r * 32 + k];
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
  EXPECT_GT(cosine(row(n, 0), row(gi, 0)), 0.99999);
}

TEST(EmbedCli, ImageFileEndToEnd) {
  CS_REQUIRE_SHARED(shared);
  const std::string t = temp_dir();
  const std::string img = shared + "/golden/model/images/n02099601_golden_retriever.JPEG";
  auto [rc, out] = run_command(cli_path() + " embed --raw --model " + tiny_model_dir() + " --out " +
                               t + "/o.npy " + img + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  const auto got = read_npy(t + "/o.npy").to_f32();
  const auto gi = read_npy(data_dir() + "/model/tiny/image_features.npy").to_f32();
  // The image module's pixels are bit-exact, so the model tolerance holds end to end.
  expect_rows_close(got, std::vector<float>(gi.begin(), gi.begin() + 32), 32, 0.99999, 2e-5f,
                    "image file");
}

TEST(EmbedCli, BadInputsFailWithAMessage) {
  const std::string t = temp_dir();
  write_npy_f32(t + "/small.npy", std::vector<float>(3 * 8 * 8, 0.0f), {3, 8, 8});
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"--model " + tiny_model_dir() + " --out " + t + "/o.npy " + t + "/small.npy", "small.npy"},
      {"--model " + t + "/nope --out " + t + "/o.npy text:x", "nope"},
      {"--model " + tiny_model_dir() + " --out " + t + "/o.npy " + t + "/missing.png",
       "missing.png"},
      {"--model " + tiny_model_dir() + " --out " + t + "/o.npy @" + t + "/missing.jsonl",
       "missing.jsonl"},
      {"--model " + tiny_model_dir() + " --device cuda --out " + t + "/o.npy text:x", "CUDA"},
      {"--model " + tiny_model_dir() + " --out " + t + "/o.npy", "no inputs"},
  };
  for (const Case& c : cases) {
    auto [rc, out] = run_command(cli_path() + " embed " + c.args + " 2>&1");
    EXPECT_NE(rc, 0) << c.args;
    EXPECT_NE(out.find(c.expect), std::string::npos) << c.args << ": " << out;
  }
}

// `clipserve bench --json`: one object per case with the keys scripts rely on (values are
// timings, so only their presence and consistency are checked).
TEST(BenchCli, JsonHasTheContractKeys) {
  auto [rc, out] = run_command(cli_path() + " bench --model " + tiny_model_dir() +
                               " --tower image,text --batch 1,3 --precision fp32 --threads 1 "
                               "--iters 2 --warmup 1 --tokens 8 --json");
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string line;
  int cases = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    for (const char* key : {"model", "tower", "batch", "precision", "threads", "median_ms",
                            "min_ms", "max_ms", "items_per_s", "gemm_floor_ms", "efficiency"}) {
      EXPECT_TRUE(j.contains(key)) << key << " in " << line;
    }
    EXPECT_LE(j["min_ms"].get<double>(), j["median_ms"].get<double>());
    EXPECT_LE(j["median_ms"].get<double>(), j["max_ms"].get<double>());
    EXPECT_GT(j["gemm_floor_ms"].get<double>(), 0.0);
    EXPECT_EQ(j["threads"], 1);
    ++cases;
  }
  EXPECT_EQ(cases, 4);
  auto [rc2, out2] =
      run_command(cli_path() + " bench --model " + tiny_model_dir() + " --tower sideways 2>&1");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(out2.find("sideways"), std::string::npos) << out2;
}

}  // namespace
}  // namespace clipserve::test

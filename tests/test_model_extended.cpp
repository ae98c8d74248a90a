// Extended forward-pass tests (slow): the larger architectures against open_clip's goldens in
// ../shared (skipped without it), bf16 on all of them, and reference vs oneDNN for other seeds.
#include "model_testing.h"

namespace clipserve::test {
namespace {

class ExtendedGolden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ExtendedGolden, MatchesOpenClip) {
  CS_REQUIRE_SHARED(shared);
  const auto& [arch, backend] = GetParam();
  const ModelConfig cfg = arch_config(arch);
  auto w = synthetic_clip_weights(cfg, 0);
  nn::BackendOptions opt;
  opt.threads = 2;
  auto b = nn::make_backend(backend, cfg, w, opt);
  check_golden(*b, shared + "/golden/model/" + arch, golden_pixels(), w->at("logit_scale").data[0]);
}

INSTANTIATE_TEST_SUITE_P(Archs, ExtendedGolden,
                         ::testing::Combine(::testing::Values("ViT-B-32-quickgelu", "ViT-B-16",
                                                              "ViT-L-14"),
                                            ::testing::Values("cpu", "reference")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (auto& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(ExtendedBf16, AllArchsCloseToFp32) {
  CS_REQUIRE_SHARED(shared);
  if (!__builtin_cpu_supports("avx512bf16")) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (const std::string arch : {"ViT-B-32-quickgelu", "ViT-B-16", "ViT-L-14"}) {
    check_bf16_golden(arch, shared + "/golden/model/" + arch);
  }
}

// The oneDNN backend against the reference on other synthetic seeds: the agreement is not
// tuned to seed 0.
TEST(ExtendedSeeds, CpuMatchesReference) {
  for (const std::string arch : {"ViT-B-32", "ViT-B-32-quickgelu"}) {
    for (uint64_t seed : {1u, 12345u}) {
      const ModelConfig cfg = arch_config(arch);
      auto w = synthetic_clip_weights(cfg, seed);
      auto ref = nn::make_backend("reference", cfg, w, {});
      auto cpu = nn::make_backend("cpu", cfg, w, {});
      const auto px = random_pixels(cfg, 3, static_cast<uint32_t>(seed));
      const auto ids = random_texts(cfg, static_cast<uint32_t>(seed));
      Outputs a = run(*ref, px, 3, ids), b = run(*cpu, px, 3, ids);
      const std::string what = arch + " seed " + std::to_string(seed);
      expect_rows_close(b.img, a.img, cfg.embed_dim, 0.99999, 2e-5f, what + " image");
      expect_rows_close(b.txt, a.txt, cfg.embed_dim, 0.99999, 2e-5f, what + " text");
    }
  }
}

}  // namespace
}  // namespace clipserve::test

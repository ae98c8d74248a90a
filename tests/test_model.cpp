// Forward pass tests: reference and oneDNN backends against each other (random weights) and
// against open_clip's goldens (synthetic weights, tiny and ViT-B-32).
#include <cmath>
#include <random>

#include "clipserve/error.h"
#include "model_testing.h"
#include "nn/backend.h"
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

}  // namespace
}  // namespace clipserve::test

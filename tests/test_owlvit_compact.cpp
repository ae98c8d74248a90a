// OWL-ViT tests on the compact copies in tests/data/owlvit (run on fresh clones without
// ../shared): preprocessing, forward (reference + oneDNN, bf16), post-processing,
// image-guided detection, the Detector, and --draw pictures.
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "clipserve/detect.h"
#include "clipserve/error.h"
#include "clipserve/image.h"
#include "core/compute_thread.h"
#include "core/file.h"
#include "core/npy.h"
#include "image/decode.h"
#include "model/model_dir.h"
#include "model/owlvit_format.h"
#include "model/torch_zip.h"
#include "model_testing.h"
#include "nn/backend.h"
#include "nn/clip_weights.h"
#include "nn/ref_kernels.h"
#include "owlvit/draw.h"
#include "owlvit/heads.h"
#include "owlvit/postprocess.h"
#include "owlvit_testing.h"
#include "testing.h"

namespace clipserve::test {
namespace {

namespace fs = std::filesystem;

TEST(OwlVitCompact, PreprocessingSha256) {
  const Golden g = compact_golden();
  const Json m = Json::parse(read_file_text(g.root + "/goldens.json"));
  PreprocessOptions opt;
  opt.size = 256;
  opt.squash_rgb_first = true;
  ASSERT_EQ(m["preprocess_256_sha256"].size(), 3u);
  for (const auto& [file, sha] : m["preprocess_256_sha256"].items()) {
    for (bool reference : {true, false}) {
      opt.reference = reference;
      const std::vector<float> t = preprocess_file(g.images + "/" + file, opt);
      EXPECT_EQ(digest_hex(std::string_view(reinterpret_cast<const char*>(t.data()), t.size() * 4),
                           EVP_sha256()),
                sha.get<std::string>())
          << file << " reference=" << reference;
    }
  }
}

// The text tower over all 16 positions (what transformers runs), with the plain kernels, pooled
// at the argmax (EOT) position and projected.
std::vector<float> text_tower_all_positions(const nn::ClipWeights& w,
                                            const std::vector<int32_t>& ids) {
  const nn::TextWeights& t = w.text;
  const int wd = t.shape.width, n = static_cast<int>(ids.size()), hid = t.shape.hidden;
  std::vector<float> x(static_cast<size_t>(n) * wd), h(x.size()), qkv(3 * x.size()), att(x.size()),
      mlp(static_cast<size_t>(n) * hid);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < wd; ++c)
      x[i * wd + c] = t.token_emb[ids[i] * wd + c] + t.pos_emb[i * wd + c];
  for (const nn::BlockWeights& b : t.blocks) {
    nn::ref::layer_norm(x.data(), n, wd, b.ln1_w, b.ln1_b, h.data());
    nn::ref::linear(h.data(), n, wd, b.in_proj_w, b.in_proj_b, 3 * wd, qkv.data());
    nn::ref::attention(qkv.data(), n, wd, t.shape.heads, /*causal=*/true, att.data());
    nn::ref::linear(att.data(), n, wd, b.out_proj_w, b.out_proj_b, wd, h.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
    nn::ref::layer_norm(x.data(), n, wd, b.ln2_w, b.ln2_b, h.data());
    nn::ref::linear(h.data(), n, wd, b.fc_w, b.fc_b, hid, mlp.data());
    nn::ref::gelu(mlp.data(), static_cast<long>(n) * hid, w.quick_gelu);
    nn::ref::linear(mlp.data(), n, hid, b.proj_w, b.proj_b, wd, h.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
  }
  const int eot = static_cast<int>(std::max_element(ids.begin(), ids.end()) - ids.begin());
  std::vector<float> pooled(wd), out(w.embed_dim);
  nn::ref::layer_norm(x.data() + eot * wd, 1, wd, t.ln_final_w, t.ln_final_b, pooled.data());
  for (int k = 0; k < w.embed_dim; ++k) {
    double acc = 0;
    for (int i = 0; i < wd; ++i)
      acc += double(pooled[i]) * t.proj[static_cast<long>(i) * w.embed_dim + k];
    out[k] = static_cast<float>(acc);
  }
  return out;
}

// The backends stop the causal text tower at the EOT position: the reference is bit-identical
// to the 16-position run, the oneDNN backend within float noise of it, and a query's output does
// not depend on the other queries packed beside it in a batch.
TEST(OwlVitCompact, TextTowerStopsAtEot) {
  const Golden g = compact_golden();
  auto m = load(g.model);
  const ModelConfig& cfg = m->loaded.config;
  const nn::ClipWeights w = nn::bind_clip_weights(cfg, *m->towers);
  const NpyArray a = read_npy(g.root + "/queries.q5.input_ids.npy");
  ASSERT_EQ(a.shape[1], 16);
  const auto v = a.to_i64();
  std::vector<std::vector<int32_t>> full(a.shape[0]);
  for (int64_t i = 0; i < a.shape[0]; ++i)
    for (int64_t k = 0; k < 16; ++k) full[i].push_back(static_cast<int32_t>(v[i * 16 + k]));
  const auto cut = query_ids(g.root + "/queries.q5.input_ids.npy");
  const int e = cfg.embed_dim, q = static_cast<int>(full.size());
  std::vector<float> want;
  for (const auto& ids : full) {
    const auto r = text_tower_all_positions(w, ids);
    want.insert(want.end(), r.begin(), r.end());
  }
  for (const std::string backend : {"reference", "cpu"}) {
    SCOPED_TRACE(backend);
    auto be = nn::make_backend(backend, cfg, m->towers, {});
    std::vector<float> got(static_cast<size_t>(q) * e), got_full(got.size());
    be->encode_texts(cut, got.data());
    be->encode_texts(full, got_full.data());
    EXPECT_EQ(got, got_full);
    if (backend == "reference") {
      EXPECT_EQ(got, want);
    } else {
      EXPECT_LE(max_abs_diff(got, want), 2e-6f * max_abs(want));
    }
    for (int i = 0; i < q; ++i) {
      std::vector<float> one(e);
      be->encode_texts({cut[i]}, one.data());
      EXPECT_EQ(one, std::vector<float>(got.begin() + i * e, got.begin() + (i + 1) * e)) << i;
    }
  }
}

TEST(OwlVitCompact, ClassLogitsFastMatchesReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  owlvit::ImageHeads h;
  h.grid = 7;
  h.text_width = 40;
  const int n = h.boxes(), t = h.text_width, q = 3;
  for (int i = 0; i < n * t; ++i) h.class_embeds.push_back(nd(rng) * 0.15f);
  for (int i = 0; i < n; ++i) {
    h.logit_shift.push_back(nd(rng));
    h.logit_scale.push_back(1.0f + std::abs(nd(rng)) * 5.0f);
  }
  std::vector<float> qe(q * t);
  for (auto& x : qe) x = nd(rng) * 0.15f;
  const uint8_t mask[q] = {1, 0, 1};
  for (const uint8_t* mk : {static_cast<const uint8_t*>(nullptr), mask}) {
    const auto want = owlvit::class_logits(h, qe.data(), q, mk, owlvit::HeadImpl::kReference);
    const auto got = owlvit::class_logits(h, qe.data(), q, mk, owlvit::HeadImpl::kFast);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LE(max_abs_diff(got, want), 1e-6f * max_abs(want));
    if (mk != nullptr) {
      EXPECT_EQ(got[1], -1e6f);
    }
  }
}

class OwlVitCompactBackends : public ::testing::TestWithParam<std::string> {};

TEST_P(OwlVitCompactBackends, ForwardPostprocessImageGuided) {
  const Golden g = compact_golden();
  auto m = load(g.model);  // the model.safetensors route, without position_ids
  const ModelConfig& cfg = m->loaded.config;
  auto be = nn::make_backend(GetParam(), cfg, m->towers, {});
  const owlvit::HeadImpl impl =
      GetParam() == "reference" ? owlvit::HeadImpl::kReference : owlvit::HeadImpl::kFast;
  const std::string gd = g.root + "/";
  expect_close(owlvit::box_bias(cfg.vision.grid()), gd + "box_bias.npy", 1e-6, "box_bias");
  const int tokens = cfg.vision.tokens(), d = cfg.vision.width, t = cfg.text.width;
  auto heads_of = [&](const std::string& file) {
    const auto px = pixels_of(g, file, cfg.vision.image_size);
    std::vector<float> hidden(static_cast<size_t>(tokens) * d);
    be->encode_image_tokens(px.data(), 1, hidden.data());
    return owlvit::run_image_heads(m->heads, hidden.data(), impl);
  };
  const Json goldens = Json::parse(read_file_text(gd + "goldens.json"));
  const std::string nail = "n03804744_nail.JPEG";
  const owlvit::ImageHeads h = heads_of(nail);
  expect_close(h.feature_map, gd + nail + ".image_embeds.npy", 2e-5, "image_embeds");
  expect_close(h.pred_boxes, gd + nail + ".pred_boxes.npy", 2e-5, "pred_boxes");
  expect_close(h.class_embeds, gd + nail + ".class_embeds.npy", 2e-5, "class_embeds");
  int runs = 0;
  for (const char* q : {"q2", "q5"}) {
    const auto ids = query_ids(gd + "queries." + q + ".input_ids.npy");
    const int nq = static_cast<int>(ids.size());
    std::vector<float> raw(static_cast<size_t>(nq) * t);
    be->encode_texts(ids, raw.data());
    const std::vector<float> qe = owlvit::normalize_text_queries(raw.data(), nq, t);
    expect_close(qe, gd + nail + "." + q + ".text_embeds.npy", 2e-5, "text_embeds");
    const std::vector<float> logits = owlvit::class_logits(h, qe.data(), nq, nullptr, impl);
    expect_close(logits, gd + nail + "." + q + ".logits.npy", 2e-5, "logits");
    const Json& run = goldens["object_detection"][nail + "/" + q];
    for (const auto& th : run["thresholds"]) {
      char name[32];
      std::snprintf(name, sizeof name, "%g", th.get<double>());
      owlvit::PostprocessOptions o;
      o.threshold = th.get<float>();
      o.image_width = run["target_size_hw"][1].get<int>();
      o.image_height = run["target_size_hw"][0].get<int>();
      expect_detections(owlvit::postprocess(logits.data(), h.pred_boxes.data(), h.boxes(), nq, o),
                        run["results"][name], 1e-2f, true, std::string(q) + " " + name);
      ++runs;
    }
  }
  EXPECT_EQ(runs, 4);
  // Image-guided: tench found by the tusker example.
  const Json& info = goldens["image_guided"];
  const owlvit::ImageHeads target = heads_of(info["target"].get<std::string>());
  const owlvit::ImageHeads query = heads_of(info["query"].get<std::string>());
  expect_close(target.pred_boxes, gd + "image_guided.target_pred_boxes.npy", 2e-5, "target boxes");
  const int best = owlvit::best_query_box(query);
  EXPECT_EQ(best, info["best_box_index"].get<int>());
  const float* chosen = query.class_raw.data() + static_cast<long>(best) * t;
  expect_close(std::vector<float>(chosen, chosen + t), gd + "image_guided.query_embeds.npy", 2e-5,
               "query_embeds");
  const std::vector<float> qe = owlvit::normalize_image_query(chosen, t);
  const std::vector<float> logits = owlvit::class_logits(target, qe.data(), 1, nullptr, impl);
  expect_close(logits, gd + "image_guided.logits.npy", 2e-5, "image-guided logits");
  const Json& pp = goldens["image_guided_postprocess"];
  for (float th : {0.6f, 0.9f}) {
    char key[64];
    std::snprintf(key, sizeof key, "threshold=%g,nms_threshold=0.3", th);
    expect_detections(owlvit::postprocess_image_guided(
                          logits.data(), target.pred_boxes.data(), target.boxes(), 1, th, 0.3f,
                          pp["target_size_hw"][1].get<int>(), pp["target_size_hw"][0].get<int>()),
                      pp["results"][key], 1e-2f, false, key);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, OwlVitCompactBackends, ::testing::Values("reference", "cpu"));

// Detector calls from any thread run the towers and heads on the compute thread: the callers
// open no OpenMP pools of their own (core/compute_thread.h).
TEST(OwlVitCompact, DetectorCallsShareOneOpenMpPool) {
  if (!compute_thread_enabled()) GTEST_SKIP() << "CLIPSERVE_COMPUTE_THREAD=off";
  const Golden g = compact_golden();
  DetectorOptions opt;
  opt.threads = 2;
  auto det = Detector::load(g.model, opt);
  const MappedFile img(g.images + "/n03804744_nail.JPEG");
  std::atomic<int> serial{0};
  auto call = [&] {
    // A new query each time (text tower + class head) on a cached image.
    det->detect(img.bytes(), {"query " + std::to_string(serial++)}, DetectParams{}, "nail");
  };
  call();
  EXPECT_EQ(test::threads_left_by_callers(3, call), 0);
}

TEST(OwlVitCompact, DetectorEndToEnd) {
  const Golden g = compact_golden();
  DetectorOptions opt;
  opt.max_batch = 2;
  auto det = Detector::load(g.model, opt);
  const Json goldens = Json::parse(read_file_text(g.root + "/goldens.json"));
  const Json& run = goldens["object_detection"]["n03804744_nail.JPEG/q2"];
  const MappedFile img(g.images + "/n03804744_nail.JPEG");
  DetectParams p;
  p.threshold = run["thresholds"][1].get<float>();
  char name[32];
  std::snprintf(name, sizeof name, "%g", run["thresholds"][1].get<double>());
  const DetectionResult r =
      det->detect(img.bytes(), {"a photo of a cat", "a photo of a dog"}, p, "nail");
  EXPECT_EQ(r.image_width, 183);
  EXPECT_EQ(r.image_height, 280);
  std::vector<owlvit::Detection> got;
  for (const auto& o : r.detections) got.push_back({0, o.label_index, o.score, o.box});
  expect_detections(got, run["results"][name], 1e-2f, true, "Detector nail q2");
  // Concurrent requests are batched and give the same numbers.
  std::vector<std::future<DetectionResult>> fs;
  const MappedFile tench(g.images + "/n01440764_tench.JPEG");
  for (int i = 0; i < 4; ++i) {
    fs.push_back(std::async(std::launch::async, [&, i] {
      return i % 2 ? det->detect(img.bytes(), {"a photo of a cat", "a photo of a dog"}, p, "nail")
                   : det->detect(tench.bytes(), {"a fish"}, p, "tench");
    }));
  }
  for (int i = 0; i < 4; ++i) {
    const DetectionResult x = fs[i].get();
    if (i % 2) {
      EXPECT_EQ(x.logits, r.logits);
    }
  }
}

// bf16 fast mode (oneDNN, AVX512-BF16; fp32 elsewhere): close to the fp32 goldens, not exact.
TEST(OwlVitCompact, Bf16CloseToGoldens) {
  const Golden g = compact_golden();
  auto m = load(g.model);
  const ModelConfig& cfg = m->loaded.config;
  nn::BackendOptions bo;
  bo.precision = "bf16";
  auto be = nn::make_backend("cpu", cfg, m->towers, bo);
  const std::string gd = g.root + "/", nail = "n03804744_nail.JPEG";
  const auto px = pixels_of(g, nail, cfg.vision.image_size);
  std::vector<float> hidden(static_cast<size_t>(cfg.vision.tokens()) * cfg.vision.width);
  be->encode_image_tokens(px.data(), 1, hidden.data());
  const owlvit::ImageHeads h =
      owlvit::run_image_heads(m->heads, hidden.data(), owlvit::HeadImpl::kFast);
  const std::vector<float> want = npy_f32(gd + nail + ".class_embeds.npy");
  const int t = cfg.text.width;
  double worst = 1;
  for (int i = 0; i < h.boxes(); ++i) {
    worst = std::min(worst, cosine(std::span<const float>(h.class_embeds.data() + i * t, t),
                                   std::span<const float>(want.data() + i * t, t)));
  }
  EXPECT_GE(worst, 0.999) << be->precision();
  const std::vector<float> boxes = npy_f32(gd + nail + ".pred_boxes.npy");
  EXPECT_LE(max_abs_diff(h.pred_boxes, boxes), 5e-3f) << be->precision();
  std::printf("bf16 (%s): worst class_embeds cosine %.6f, max |pred_boxes diff| %.2e\n",
              be->precision().c_str(), worst, max_abs_diff(h.pred_boxes, boxes));
}

TEST(OwlVitDraw, BoxesAndTagsOnThePicture) {
  const std::string src = data_dir() + "/owlvit/n03804744_nail.JPEG";  // L mode, 183 x 280
  const MappedFile f(src);
  const std::string out = temp_dir() + "/nail.png";
  // One box partly outside the image (transformers' boxes are unclipped).
  owlvit::draw_detections_png(f.bytes(), {{{20.0f, 40.0f, 120.0f, 300.0f}, 0, "a nail 0.42"}}, out,
                              "nail");
  const MappedFile pf(out);
  image::DecodeOptions dopt;
  const image::Image png = image::decode_image(pf.bytes(), dopt, out);
  ASSERT_EQ(png.mode, image::Mode::kRGB);
  ASSERT_EQ(png.width, 183);
  ASSERT_EQ(png.height, 280);
  const image::Image orig = image::decode_image(f.bytes(), dopt, src);
  auto px = [&](int x, int y) { return png.row(y) + 3 * x; };
  EXPECT_EQ(px(20, 100)[0], 230);  // left edge in label 0's colour
  EXPECT_EQ(px(20, 100)[1], 25);
  EXPECT_EQ(px(70, 100)[0], orig.row(100)[70]);  // inside the box: the image (gray)
  EXPECT_EQ(px(70, 100)[1], orig.row(100)[70]);
  EXPECT_EQ(px(5, 5)[2], orig.row(5)[5]);  // outside: untouched
  EXPECT_THROW(owlvit::draw_detections_png(f.bytes(), {}, "/nonexistent/dir/x.png", "nail"), Error);
}

// transformers-style hub names resolve through the Hugging Face cache (offline here).
TEST(OwlVitCompact, HubNameFromTheCache) {
  const std::string cache = temp_dir() + "/hub";
  const std::string commit(40, 'a');
  const std::string repo = cache + "/models--google--owlvit-base-patch32";
  fs::create_directories(repo + "/refs");
  fs::create_directories(repo + "/snapshots/" + commit);
  std::ofstream(repo + "/refs/main") << commit;
  for (const char* f : {"config.json", "preprocessor_config.json", "model.safetensors"})
    fs::copy_file(compact_model_dir() + "/" + f, repo + "/snapshots/" + commit + "/" + f);
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  setenv("HF_HUB_OFFLINE", "1", 1);
  DetectorOptions opt;
  opt.warmup = false;
  std::unique_ptr<Detector> det;
  EXPECT_NO_THROW(det = Detector::load("google/owlvit-base-patch32", opt));
  try {
    Detector::load("google/owlvit-base-patch16", opt);  // not cached: a clear error
    ADD_FAILURE() << "an uncached model loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("owlvit-base-patch16"), std::string::npos) << e.what();
  }
  unsetenv("HF_HUB_CACHE");
  unsetenv("HF_HUB_OFFLINE");
  ASSERT_TRUE(det);
  EXPECT_EQ(det->config().vision.image_size, 256);
  try {
    Detector::load("/no/such/dir", opt);
    ADD_FAILURE() << "a missing directory loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace clipserve::test

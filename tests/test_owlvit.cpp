// OWL-ViT detection on the ../shared goldens: checkpoint loading, OwlViTImageProcessor
// preprocessing, the vision tower's all-token output, heads and post-processing against
// transformers 4.30's goldens
// (../shared/fixtures/golden/owlvit, compact copies in tests/data/owlvit).
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "clipserve/detect.h"
#include "clipserve/error.h"
#include "clipserve/image.h"
#include "core/file.h"
#include "core/npy.h"
#include "image/decode.h"
#include "model/model_dir.h"
#include "model/owlvit_format.h"
#include "model/torch_zip.h"
#include "model_testing.h"
#include "nn/backend.h"
#include "nn/ref_kernels.h"
#include "owlvit/draw.h"
#include "owlvit/heads.h"
#include "owlvit/postprocess.h"
#include "owlvit_testing.h"
#include "testing.h"

namespace clipserve::test {
namespace {

namespace fs = std::filesystem;

// ---- the vision tower over all tokens (shared with CLIP) ----

TEST(ImageTokens, BackendsAgreeAndPoolToEncodeImages) {
  for (bool quick : {false, true}) {
    const ModelConfig cfg = small_config(quick);
    auto w = random_clip_weights(cfg, 7);
    auto ref = nn::make_backend("reference", cfg, w, {});
    auto cpu = nn::make_backend("cpu", cfg, w, {});
    const int n = 2, tokens = cfg.vision.tokens(), wd = cfg.vision.width;
    auto px = random_pixels(cfg, n, 7);
    std::vector<float> a(static_cast<size_t>(n) * tokens * wd), b(a.size());
    ref->encode_image_tokens(px.data(), n, a.data());
    cpu->encode_image_tokens(px.data(), n, b.data());
    EXPECT_LE(max_abs_diff(b, a), 2e-5f * max_abs(a));
    // encode_images is ln_post(token 0) @ proj of the same hidden state (CLIP unchanged).
    std::vector<float> emb(static_cast<size_t>(n) * cfg.embed_dim);
    ref->encode_images(px.data(), n, emb.data());
    const float* lnw = w->get("visual.ln_post.weight", {wd});
    const float* lnb = w->get("visual.ln_post.bias", {wd});
    const float* proj = w->get("visual.proj", {wd, cfg.embed_dim});
    for (int i = 0; i < n; ++i) {
      std::vector<float> pooled(wd);
      nn::ref::layer_norm(a.data() + static_cast<long>(i) * tokens * wd, 1, wd, lnw, lnb,
                          pooled.data());
      for (int e = 0; e < cfg.embed_dim; ++e) {
        double s = 0;
        for (int k = 0; k < wd; ++k) s += double(pooled[k]) * proj[k * cfg.embed_dim + e];
        EXPECT_NEAR(emb[i * cfg.embed_dim + e], s, 1e-5 * (1 + std::fabs(s)));
      }
    }
  }
}

TEST(OwlVitFormat, ConfigAndWeights) {
  auto g = shared_golden("patch32-768");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the OWL-ViT checkpoint";
  LoadedOwlVit m = load_owlvit(g->model);
  EXPECT_EQ(m.config.vision.image_size, 768);
  EXPECT_EQ(m.config.vision.patch_size, 32);
  EXPECT_EQ(m.config.vision.width, 64);
  EXPECT_EQ(m.config.text.context_length, 16);
  EXPECT_EQ(m.config.embed_dim, 32);
  EXPECT_TRUE(m.config.quick_gelu);
  EXPECT_EQ(m.config.preprocess.size, 768);
  EXPECT_EQ(m.config.preprocess.resize_mode, kResizeSquashRgbFirst);
  EXPECT_TRUE(m.weights.heads.contains("box_head.dense2.weight"));
  EXPECT_EQ(m.weights.heads.size(), 14u);
  // The CLIP loader points at the detection API instead of misreading the checkpoint.
  try {
    load_model_dir(g->model);
    ADD_FAILURE() << "load_model_dir accepted an OWL-ViT checkpoint";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("detect"), std::string::npos) << e.what();
  }
}

TEST(OwlVitFormat, WithoutPositionIdsAndUnknownTensor) {
  auto g = shared_golden("patch16-256");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the OWL-ViT checkpoint";
  const ModelConfig cfg = load_owlvit(g->model).config;
  auto original =
      std::make_shared<WeightMap>(load_torch_checkpoint(g->model + "/pytorch_model.bin"));
  // The torch loader skips integer buffers; a safetensors export keeps them: both load.
  auto copy = [&](bool position_ids, const std::string& extra) {
    WeightMap w("<copy>");
    w.keep_alive(original);
    for (const auto& n : original->names())
      w.add_view(n, original->at(n).shape, original->at(n).data);
    if (position_ids) {
      w.add_owned("owlvit.text_model.embeddings.position_ids", {1, 16}, std::vector<float>(16));
      w.add_owned("owlvit.vision_model.embeddings.position_ids", {1, 257}, std::vector<float>(257));
    }
    if (!extra.empty()) w.add_owned(extra, {1}, {0.0f});
    return w;
  };
  OwlVitWeights a = split_owlvit_weights(copy(true, ""), cfg);
  OwlVitWeights b = split_owlvit_weights(copy(false, ""), cfg);
  EXPECT_EQ(a.towers.names(), b.towers.names());
  EXPECT_EQ(a.towers.at("visual.ln_pre.weight").data, b.towers.at("visual.ln_pre.weight").data);
  try {
    split_owlvit_weights(copy(true, "class_head.extra"), cfg);
    ADD_FAILURE() << "an unknown tensor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("class_head.extra"), std::string::npos) << e.what();
  }
  try {
    split_owlvit_weights(copy(true, "objectness_head.dense0.weight"), cfg);
    ADD_FAILURE() << "an OWLv2 tensor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("objectness_head"), std::string::npos) << e.what();
  }
}

TEST(OwlVitFormat, ConfigErrors) {
  EXPECT_FALSE(is_owlvit_config("{\"model_type\": \"clip\"}"));
  EXPECT_FALSE(is_owlvit_config("not json"));
  EXPECT_TRUE(is_owlvit_config("{\"model_type\": \"owlvit\"}"));
  // projection_dim must equal the text width.
  EXPECT_THROW(
      parse_owlvit_config("{\"model_type\": \"owlvit\", \"projection_dim\": 64, "
                          "\"text_config\": {\"hidden_size\": 32, \"num_attention_heads\": 2}}",
                          "cfg"),
      Error);
  // Defaults are OwlViTConfig's (16 text positions, 768 px).
  const ModelConfig c = parse_owlvit_config("{\"model_type\": \"owlvit\"}", "cfg");
  EXPECT_EQ(c.text.context_length, 16);
  EXPECT_EQ(c.vision.image_size, 768);
}

// ---- preprocessing: OwlViTImageProcessor on Image.open(f).convert("RGB") ----

// Each visible golden image: our uint8 RGB (reference and default path) equals the PNG, and
// the float tensor's sha256 equals the processor's.
void check_preprocess_size(const Golden& g, int size) {
  const Json m = manifest(g.root);
  const Json& set = m["preprocess"][std::to_string(size)];
  ASSERT_FALSE(set.empty());
  PreprocessOptions opt;
  opt.size = size;
  opt.squash_rgb_first = true;
  int checked = 0;
  for (const auto& [file, e] : set.items()) {
    SCOPED_TRACE(file + " at " + std::to_string(size));
    const std::string png = g.root + "/" + e["png"].get<std::string>();
    const MappedFile pf(png);
    image::DecodeOptions dopt;
    const image::Image want = image::decode_image(pf.bytes(), dopt, png);
    ASSERT_EQ(want.mode, image::Mode::kRGB);
    ASSERT_EQ(want.width, size);
    const MappedFile src(g.images + "/" + file);
    for (bool reference : {true, false}) {
      opt.reference = reference;
      const std::vector<uint8_t> got = preprocess_image_rgb8(src.bytes(), opt, file);
      ASSERT_EQ(got.size(), static_cast<size_t>(size) * size * 3);
      EXPECT_EQ(0, std::memcmp(got.data(), want.bytes.data(), got.size()))
          << "reference=" << reference;
    }
    opt.reference = false;
    std::vector<float> t(static_cast<size_t>(3) * size * size);
    preprocess_image(src.bytes(), opt, t.data(), file);
    EXPECT_EQ(digest_hex(std::string_view(reinterpret_cast<const char*>(t.data()), t.size() * 4),
                         EVP_sha256()),
              e["pixel_values_sha256"].get<std::string>());
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(OwlVitPreprocess, GoldenImages768) {
  auto g = shared_golden("patch32-768");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the 768 px preprocessing set";
  check_preprocess_size(*g, 768);
}

TEST(OwlVitPreprocess, GoldenImages256) {
  auto g = shared_golden("patch16-256");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the 256 px preprocessing set";
  check_preprocess_size(*g, 256);
}

// ---- forward: towers + heads ----

class OwlVitForward : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(OwlVitForward, Goldens) {
  const auto& [model, backend] = GetParam();
  auto g = shared_golden(model);
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the OWL-ViT forward goldens";
  auto m = load(g->model);
  const ModelConfig& cfg = m->loaded.config;
  auto be = nn::make_backend(backend, cfg, m->towers, {});
  const owlvit::HeadImpl impl =
      backend == "reference" ? owlvit::HeadImpl::kReference : owlvit::HeadImpl::kFast;
  const std::string dir = g->root + "/" + model;
  expect_close(owlvit::box_bias(cfg.vision.grid()), dir + "/box_bias.npy", 1e-6, "box_bias");
  const int tokens = cfg.vision.tokens(), d = cfg.vision.width, t = cfg.text.width;
  for (const char* image :
       {"n01440764_tench.JPEG", "photo_rgba_2162x762.png", "n03804744_nail.JPEG"}) {
    SCOPED_TRACE(std::string(image) + " " + backend);
    const auto px = pixels_of(*g, image, cfg.vision.image_size);
    std::vector<float> hidden(static_cast<size_t>(tokens) * d);
    be->encode_image_tokens(px.data(), 1, hidden.data());
    const owlvit::ImageHeads h = owlvit::run_image_heads(m->heads, hidden.data(), impl);
    const std::string idir = dir + "/" + image;
    expect_close(h.feature_map, idir + "/image_embeds.npy", 2e-5, "image_embeds");
    expect_close(h.pred_boxes, idir + "/pred_boxes.npy", 2e-5, "pred_boxes");
    expect_close(h.class_embeds, idir + "/class_embeds.npy", 2e-5, "class_embeds");
    for (const char* q : {"q1", "q2", "q5"}) {
      const auto ids = query_ids(dir + "/queries/" + q + ".input_ids.npy");
      const int nq = static_cast<int>(ids.size());
      std::vector<float> raw(static_cast<size_t>(nq) * t);
      be->encode_texts(ids, raw.data());
      const std::vector<float> qe = owlvit::normalize_text_queries(raw.data(), nq, t);
      expect_close(qe, idir + "/" + q + ".text_embeds.npy", 2e-5, std::string(q) + " text_embeds");
      expect_close(owlvit::class_logits(h, qe.data(), nq, nullptr, impl),
                   idir + "/" + q + ".logits.npy", 2e-5, std::string(q) + " logits");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, OwlVitForward,
                         ::testing::Combine(::testing::Values("patch32-768", "patch16-256"),
                                            ::testing::Values("reference", "cpu")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// ---- post-processing ----

// Same boxes (patch order), labels; scores within 1e-5, pixel boxes within 1e-2.
struct Forward {
  std::unique_ptr<Model> m;
  std::unique_ptr<nn::Backend> be;
  owlvit::ImageHeads image(const Golden& g, const std::string& file) {
    const ModelConfig& cfg = m->loaded.config;
    const auto px = pixels_of(g, file, cfg.vision.image_size);
    std::vector<float> hidden(static_cast<size_t>(cfg.vision.tokens()) * cfg.vision.width);
    be->encode_image_tokens(px.data(), 1, hidden.data());
    return owlvit::run_image_heads(m->heads, hidden.data(), owlvit::HeadImpl::kFast);
  }
  std::vector<float> queries(const std::vector<std::vector<int32_t>>& ids) {
    const int t = m->loaded.config.text.width, nq = static_cast<int>(ids.size());
    std::vector<float> raw(static_cast<size_t>(nq) * t);
    be->encode_texts(ids, raw.data());
    return owlvit::normalize_text_queries(raw.data(), nq, t);
  }
};

Forward forward_of(const Golden& g) {
  Forward f;
  f.m = load(g.model);
  f.be = nn::make_backend("cpu", f.m->loaded.config, f.m->towers, {});
  return f;
}

class OwlVitGoldens : public ::testing::TestWithParam<std::string> {};

TEST_P(OwlVitGoldens, PostProcessing) {
  auto g = shared_golden(GetParam());
  if (!g)
    GTEST_SKIP() << "../shared/fixtures not found: skipping the OWL-ViT post-processing goldens";
  Forward f = forward_of(*g);
  const std::string dir = g->root + "/" + GetParam();
  const Json pp = Json::parse(read_file_text(dir + "/postprocess.json"));
  int runs = 0;
  for (const auto& [key, run] : pp["object_detection"].items()) {
    const std::string image = key.substr(0, key.find('/')), q = key.substr(key.find('/') + 1);
    const owlvit::ImageHeads h = f.image(*g, image);
    const std::vector<float> qe = f.queries(query_ids(dir + "/queries/" + q + ".input_ids.npy"));
    const int nq = static_cast<int>(qe.size()) / h.text_width;
    const std::vector<float> logits = owlvit::class_logits(h, qe.data(), nq);
    for (const auto& th : run["thresholds"]) {
      owlvit::PostprocessOptions o;
      o.threshold = th.get<float>();
      char name[32];
      std::snprintf(name, sizeof name, "%g", th.get<double>());
      const auto norm = owlvit::postprocess(logits.data(), h.pred_boxes.data(), h.boxes(), nq, o);
      const std::string nkey = std::string("normalized_") + name;
      if (run["results"].contains(nkey))
        expect_detections(norm, run["results"][nkey], 1e-5f, true, key + " normalized " + name);
      o.image_width = run["target_size_hw"][1].get<int>();
      o.image_height = run["target_size_hw"][0].get<int>();
      const auto px = owlvit::postprocess(logits.data(), h.pred_boxes.data(), h.boxes(), nq, o);
      expect_detections(px, run["results"][name], 1e-2f, true, key + " " + name);
      ++runs;
    }
  }
  EXPECT_EQ(runs, 18);
}

TEST_P(OwlVitGoldens, Batch) {
  auto g = shared_golden(GetParam());
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the OWL-ViT batch goldens";
  Forward f = forward_of(*g);
  const std::string dir = g->root + "/" + GetParam();
  const auto ids = query_ids(dir + "/batch/input_ids.npy");  // [4, 16]: 2 per image
  ASSERT_EQ(ids.size(), 4u);
  const std::vector<float> qe = f.queries(ids);
  const ModelConfig& cfg = f.m->loaded.config;
  // Both images in one backend call, as the engine batches them.
  const int tokens = cfg.vision.tokens(), d = cfg.vision.width, t = cfg.text.width;
  std::vector<float> px;
  for (const char* image : {"n01440764_tench.JPEG", "n03804744_nail.JPEG"}) {
    const auto p = pixels_of(*g, image, cfg.vision.image_size);
    px.insert(px.end(), p.begin(), p.end());
  }
  std::vector<float> hidden(static_cast<size_t>(2) * tokens * d);
  f.be->encode_image_tokens(px.data(), 2, hidden.data());
  std::vector<float> logits, boxes, embeds, cls, texts(qe);
  const Json pp = Json::parse(read_file_text(dir + "/postprocess.json"))["batch"];
  for (int b = 0; b < 2; ++b) {
    const owlvit::ImageHeads h = owlvit::run_image_heads(
        f.m->heads, hidden.data() + static_cast<long>(b) * tokens * d, owlvit::HeadImpl::kFast);
    const auto l = owlvit::class_logits(h, qe.data() + static_cast<long>(b) * 2 * t, 2, nullptr,
                                        owlvit::HeadImpl::kFast);
    logits.insert(logits.end(), l.begin(), l.end());
    boxes.insert(boxes.end(), h.pred_boxes.begin(), h.pred_boxes.end());
    embeds.insert(embeds.end(), h.feature_map.begin(), h.feature_map.end());
    cls.insert(cls.end(), h.class_embeds.begin(), h.class_embeds.end());
    owlvit::PostprocessOptions o;
    o.threshold = pp["threshold"].get<float>();
    o.image_height = pp["target_sizes_hw"][b][0].get<int>();
    o.image_width = pp["target_sizes_hw"][b][1].get<int>();
    expect_detections(owlvit::postprocess(l.data(), h.pred_boxes.data(), h.boxes(), 2, o),
                      pp["results"][b], 1e-2f, true, "batch image " + std::to_string(b));
  }
  expect_close(logits, dir + "/batch/logits.npy", 2e-5, "batch logits");
  expect_close(boxes, dir + "/batch/pred_boxes.npy", 2e-5, "batch pred_boxes");
  expect_close(embeds, dir + "/batch/image_embeds.npy", 2e-5, "batch image_embeds");
  expect_close(cls, dir + "/batch/class_embeds.npy", 2e-5, "batch class_embeds");
  expect_close(texts, dir + "/batch/text_embeds.npy", 2e-5, "batch text_embeds");
}

TEST_P(OwlVitGoldens, ImageGuided) {
  auto g = shared_golden(GetParam());
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the image-guided goldens";
  Forward f = forward_of(*g);
  const std::string dir = g->root + "/" + GetParam() + "/image_guided";
  const Json info = manifest(g->root)["models"][GetParam()]["image_guided"];
  const owlvit::ImageHeads target = f.image(*g, info["target"].get<std::string>());
  const owlvit::ImageHeads query = f.image(*g, info["query"].get<std::string>());
  expect_close(query.feature_map, dir + "/query_image_embeds.npy", 2e-5, "query_image_embeds");
  expect_close(query.pred_boxes, dir + "/query_pred_boxes.npy", 2e-5, "query_pred_boxes");
  expect_close(target.feature_map, dir + "/image_embeds.npy", 2e-5, "image_embeds");
  expect_close(target.pred_boxes, dir + "/target_pred_boxes.npy", 2e-5, "target_pred_boxes");
  expect_close(target.class_embeds, dir + "/class_embeds.npy", 2e-5, "class_embeds");
  const int best = owlvit::best_query_box(query);
  EXPECT_EQ(best, info["best_box_index"].get<int>());
  const int t = query.text_width;
  // query_embeds is the chosen box's unnormalized class_head.dense0 output.
  const float* chosen = query.class_raw.data() + static_cast<long>(best) * t;
  expect_close(std::vector<float>(chosen, chosen + t), dir + "/query_embeds.npy", 2e-5,
               "query_embeds");
  const std::vector<float> qe = owlvit::normalize_image_query(chosen, t);
  const std::vector<float> logits = owlvit::class_logits(target, qe.data(), 1);
  expect_close(logits, dir + "/logits.npy", 2e-5, "logits");
  const Json pp =
      Json::parse(read_file_text(g->root + "/" + GetParam() + "/postprocess.json"))["image_guided"];
  for (float th : {0.6f, 0.9f}) {
    char key[64];
    std::snprintf(key, sizeof key, "threshold=%g,nms_threshold=0.3", th);
    const auto got = owlvit::postprocess_image_guided(
        logits.data(), target.pred_boxes.data(), target.boxes(), 1, th, 0.3f,
        pp["target_size_hw"][1].get<int>(), pp["target_size_hw"][0].get<int>());
    expect_detections(got, pp["results"][key], 1e-2f, false, key);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, OwlVitGoldens, ::testing::Values("patch32-768", "patch16-256"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// ---- Detector: the public API end to end ----

TEST(Detector, TextQueriesCachesAndErrors) {
  auto g = shared_golden("patch32-768");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the Detector goldens";
  DetectorOptions opt;
  opt.max_batch = 2;
  auto det = Detector::load(g->model, opt);
  EXPECT_TRUE(det->ready());
  const Json pp = Json::parse(read_file_text(g->root + "/patch32-768/postprocess.json"));
  const Json& run = pp["object_detection"]["n01440764_tench.JPEG/q2"];
  const MappedFile img(g->images + "/n01440764_tench.JPEG");
  DetectParams p;
  p.threshold = 0.74f;
  const std::vector<std::string> q = {"a photo of a cat", "a photo of a dog"};
  DetectionResult r = det->detect(img.bytes(), q, p, "tench");
  EXPECT_EQ(r.image_width, 500);
  EXPECT_EQ(r.image_height, 375);
  EXPECT_FALSE(r.image_cached);
  EXPECT_EQ(r.queries_encoded, 2);
  std::vector<owlvit::Detection> got;
  for (const auto& d : r.detections) {
    got.push_back({0, d.label_index, d.score, d.box});
    EXPECT_EQ(d.label, q[d.label_index]);
  }
  expect_detections(got, run["results"]["0.74"], 1e-2f, true, "Detector q2 0.74");
  // Same image again: features from the cache, queries from the cache, same numbers.
  DetectionResult r2 = det->detect(img.bytes(), q, p, "tench");
  EXPECT_TRUE(r2.image_cached);
  EXPECT_EQ(r2.queries_encoded, 0);
  EXPECT_EQ(r2.logits, r.logits);
  // Options beyond transformers.
  p.top_k = 3;
  p.clip_boxes = true;
  DetectionResult r3 = det->detect(img.bytes(), q, p, "tench");
  ASSERT_EQ(r3.detections.size(), 3u);
  EXPECT_GE(r3.detections[0].score, r3.detections[1].score);
  for (const auto& d : r3.detections) {
    EXPECT_GE(d.box[0], 0.0f);
    EXPECT_LE(d.box[2], 500.0f);
  }
  // Errors name the input.
  p = DetectParams{};
  const std::string longq =
      "a large brown dog and a small white cat sitting on a wooden bench in the park";
  try {
    det->detect(img.bytes(), {"a cat", longq}, p, "tench");
    ADD_FAILURE() << "a query of more than 16 tokens was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("queries[1]"), std::string::npos) << e.what();
  }
  p.truncate_queries = true;
  EXPECT_EQ(det->detect(img.bytes(), {"a cat", longq}, p, "tench").truncated_queries,
            std::vector<int>{1});
  const std::vector<uint8_t> junk = {1, 2, 3, 4, 5};
  EXPECT_THROW(det->detect(junk, q, DetectParams{}, "junk.bin"), Error);
  EXPECT_THROW(det->detect(img.bytes(), {}, DetectParams{}, "tench"), Error);
}

TEST(Detector, ImageGuided) {
  auto g = shared_golden("patch16-256");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the Detector goldens";
  auto det = Detector::load(g->model);
  const Json info = manifest(g->root)["models"]["patch16-256"]["image_guided"];
  const Json pp =
      Json::parse(read_file_text(g->root + "/patch16-256/postprocess.json"))["image_guided"];
  const MappedFile target(g->images + "/" + info["target"].get<std::string>());
  const MappedFile example(g->images + "/" + info["query"].get<std::string>());
  DetectParams p;
  p.threshold = 0.6f;  // transformers 4.30's defaults for image-guided detection
  p.nms_iou = 0.3f;
  const DetectionResult r =
      det->detect_by_example(target.bytes(), example.bytes(), std::nullopt, p, "target");
  EXPECT_EQ(r.example_box_index, info["best_box_index"].get<int>());
  std::vector<owlvit::Detection> got;
  for (const auto& d : r.detections) got.push_back({0, 0, d.score, d.box});
  expect_detections(got, pp["results"]["threshold=0.6,nms_threshold=0.3"], 1e-2f, false,
                    "Detector image-guided 0.6");
}

// ---- CLI contract ----

TEST(OwlVitCli, DetectJsonlDumpAndPreprocess) {
  auto g = shared_golden("patch32-768");
  if (!g) GTEST_SKIP() << "../shared/fixtures not found: skipping the OWL-ViT CLI test";
  const std::string out = temp_dir();
  const std::string qf = out + "/queries.txt";
  {
    std::ofstream f(qf);
    f << "a photo of a cat\n\na photo of a dog\n";
  }
  const std::string img = g->images + "/n01440764_tench.JPEG";
  const auto [rc, text] = run_command(cli_path() + " detect --model " + g->model +
                                      " --queries-file " + qf + " --threshold 0.77 --dump " + out +
                                      " " + img + " " + out + "/missing.jpg 2>/dev/null");
  EXPECT_EQ(rc, 1);  // the missing file fails alone
  std::istringstream lines(text);
  std::string l1, l2;
  std::getline(lines, l1);
  std::getline(lines, l2);
  const Json a = Json::parse(l1), b = Json::parse(l2);
  EXPECT_EQ(a["file"], img);
  EXPECT_EQ(a["image_size"], Json::array({500, 375}));
  const Json want = Json::parse(read_file_text(
      g->root + "/patch32-768/postprocess.json"))["object_detection"]["n01440764_tench.JPEG/q2"]
                                                 ["results"]["0.77"];
  ASSERT_EQ(a["detections"].size(), want["scores"].size());
  for (size_t i = 0; i < want["scores"].size(); ++i) {
    EXPECT_NEAR(a["detections"][i]["score"].get<double>(), want["scores"][i].get<double>(), 1e-5);
    EXPECT_EQ(a["detections"][i]["label"], "a photo of a cat");
    for (int k = 0; k < 4; ++k)
      EXPECT_NEAR(a["detections"][i]["box"][k].get<double>(),
                  want["boxes_xyxy"][i][k].get<double>(), 1e-2);
  }
  EXPECT_TRUE(b.contains("error"));
  const NpyArray logits = read_npy(out + "/n01440764_tench.JPEG.logits.npy");
  EXPECT_EQ(logits.shape, (std::vector<int64_t>{576, 2}));
  expect_close(logits.to_f32(), g->root + "/patch32-768/n01440764_tench.JPEG/q2.logits.npy", 2e-5,
               "dumped logits");
  const NpyArray boxes = read_npy(out + "/n01440764_tench.JPEG.pred_boxes.npy");
  EXPECT_EQ(boxes.shape, (std::vector<int64_t>{576, 4}));
  // preprocess --model OWLVIT_DIR: OwlViTImageProcessor's tensor.
  const auto [rc2, text2] =
      run_command(cli_path() + " preprocess --model " + g->model + " --out " + out + " " + img);
  ASSERT_EQ(rc2, 0) << text2;
  const NpyArray t = read_npy(out + "/n01440764_tench.JPEG.npy");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 768, 768}));
  EXPECT_EQ(
      digest_hex(std::string_view(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size()),
                 EVP_sha256()),
      manifest(g->root)["preprocess"]["768"]["n01440764_tench.JPEG"]["pixel_values_sha256"]);
}

}  // namespace
}  // namespace clipserve::test

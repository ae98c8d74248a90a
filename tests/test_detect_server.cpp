// POST /detect over HTTP (routes_detect.cpp): JSON + base64, raw image bodies with query
// parameters, multipart forms with an example image; answers equal the Detector's own. On the
// compact OWL-ViT checkpoint in tests/data/owlvit, so it runs on a fresh clone.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "clipserve/detect.h"
#include "core/file.h"
#include "engine_testing.h"
#include "owlvit_testing.h"
#include "server/codec.h"
#include "server/server.h"
#include "server_testing.h"
#include "testing.h"

namespace clipserve {
namespace {

using json = nlohmann::json;

// The shared server fixture (server_testing.h: hash-encoder engine, free port), with a
// detector on the compact OWL-ViT checkpoint behind POST /detect.
class DetectServer : public ServerTest {
 protected:
  void SetUp() override {
    images_ = test::data_dir() + "/owlvit";
    DetectorOptions dopt;
    dopt.max_batch = 2;
    detector_ = Detector::load(test::compact_model_dir(), dopt);
    server::ServerOptions so;
    so.detector = detector_.get();
    start({}, so);
  }
  std::string image(const std::string& name) {
    const auto b = read_file_bytes(images_ + "/" + name);
    return std::string(b.begin(), b.end());
  }
  // The detections of a response equal the library's for the same request.
  void expect_same(const json& got, const DetectionResult& want) {
    ASSERT_EQ(got["detections"].size(), want.detections.size()) << got.dump();
    for (size_t i = 0; i < want.detections.size(); ++i) {
      EXPECT_EQ(got["detections"][i]["label"], want.detections[i].label);
      EXPECT_EQ(got["detections"][i]["score"].get<float>(), want.detections[i].score);
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(got["detections"][i]["box"][k].get<float>(), want.detections[i].box[k]);
    }
  }

  std::string images_;
  std::unique_ptr<Detector> detector_;
};

TEST_F(DetectServer, JsonRawAndMultipart) {
  const std::string tench = image("n01440764_tench.JPEG");
  const std::vector<uint8_t> tb(tench.begin(), tench.end());
  DetectParams p;
  p.threshold = 0.3f;
  const DetectionResult want = detector_->detect(tb, {"a fish", "a cat, sitting"}, p);
  ASSERT_FALSE(want.detections.empty());

  json req = {{"image", server::base64_encode(tb)},
              {"queries", {"a fish", "a cat, sitting"}},
              {"threshold", 0.3}};
  auto r = client().Post("/detect", req.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json a = json::parse(r->body);
  EXPECT_EQ(a["image_size"], json::array({500, 375}));
  EXPECT_TRUE(a["image_cached"].get<bool>());  // the library call above cached it
  expect_same(a, want);

  // Raw body: queries as a comma list, so the second query cannot hold a comma here.
  const DetectionResult want2 = detector_->detect(tb, {"a fish", "a cat"}, p);
  r = client().Post("/detect?queries=a%20fish,a%20cat&threshold=0.3", tench, "image/jpeg");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  expect_same(json::parse(r->body), want2);

  // Multipart with an example image: transformers' image-guided defaults.
  const std::string tusker = image("n01871265_tusker.JPEG");
  DetectParams g;
  g.threshold = 0.6f;
  g.nms_iou = 0.3f;
  const DetectionResult want3 = detector_->detect_by_example(
      tb, std::vector<uint8_t>(tusker.begin(), tusker.end()), std::nullopt, g);
  httplib::MultipartFormDataItems form = {{"image", tench, "tench.jpg", "image/jpeg"},
                                          {"example", tusker, "tusker.jpg", "image/jpeg"}};
  r = client().Post("/detect", form);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json c = json::parse(r->body);
  EXPECT_EQ(c["example_box_index"], want3.example_box_index);
  expect_same(c, want3);
}

TEST_F(DetectServer, JsonOptionsAsNumbers) {
  const std::string tench = image("n01440764_tench.JPEG");
  const std::vector<uint8_t> tb(tench.begin(), tench.end());
  DetectParams p;
  p.threshold = 0.25f;
  p.top_k = 3;
  p.sort_by_score = true;
  p.nms_iou = 0.5f;
  const DetectionResult want = detector_->detect(tb, {"a fish", "a nail"}, p);
  ASSERT_EQ(want.detections.size(), 3u);
  // JSON integers and fractions as a browser's JSON.stringify writes them.
  const std::string body = R"({"image": ")" + server::base64_encode(tb) +
                           R"(", "queries": ["a fish", "a nail"], "threshold": 0.25, "top_k": 3,)"
                           R"( "sort": true, "nms": 0.5})";
  auto r = client().Post("/detect", body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  expect_same(got, want);
  for (size_t i = 1; i < got["detections"].size(); ++i) {
    EXPECT_GE(got["detections"][i - 1]["score"].get<float>(),
              got["detections"][i]["score"].get<float>());
  }
  r = client().Post(
      "/detect",
      R"({"image": ")" + server::base64_encode(tb) + R"(", "queries": ["a"], "top_k": 2.5})",
      "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("top_k"), std::string::npos) << r->body;
}

TEST_F(DetectServer, Errors) {
  const std::string tench = image("n01440764_tench.JPEG");
  auto r = client().Post("/detect", tench, "image/jpeg");  // no queries
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = client().Post("/detect?queries=a%20cat", "not an image", "image/jpeg");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const std::string longq =
      "a large brown dog and a small white cat sitting on a wooden bench in the park";
  json req = {{"image", server::base64_encode(std::vector<uint8_t>(tench.begin(), tench.end()))},
              {"queries", {"a cat", longq}}};
  r = client().Post("/detect", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("queries[1]"), std::string::npos) << r->body;
  req["truncate"] = true;
  r = client().Post("/detect", req.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["truncated_queries"], json::array({1}));
  r = client().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("clipserve_detect_stage_seconds"), std::string::npos);
}

}  // namespace
}  // namespace clipserve

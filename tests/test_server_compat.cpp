// The drop-in APIs, each written from the peer's own client or protocol documents:
// Infinity-style image embeddings (modality "image", data URIs, the /embeddings and /models
// root aliases), OpenAI polish (GET /v1/models/{id}, created, OpenAI-shaped errors, model
// aliases), Immich's machine-learning API (GET /ping, POST /predict as Immich's
// machine-learning.repository.ts builds it), KServe v2 health/metadata/inference, and image
// URLs fetched only from allowed hosts.
#include <fstream>

#include "server_testing.h"

namespace clipserve {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string jpeg() { return read_text(test::data_dir() + "/image/rgb_420.jpg"); }  // 157 x 103

class CompatTest : public ServerTest {
 protected:
  void start_compat(server::ServerOptions sopt = {}) {
    sopt.model_names = {"ViT-B-32/openai", "my-clip"};
    EngineOptions eo;
    eo.model_id = "test-model";
    start(eo, sopt);
  }
  httplib::Result post_json(const std::string& path, const json& body) {
    return client().Post(path, body.dump(), "application/json");
  }
  std::vector<float> embed_image_native(const std::string& bytes) {
    auto r = post_json("/embed", {{"images", {b64(bytes)}}});
    return floats(body_of(r)["image_embeddings"][0]);
  }
  std::vector<float> embed_text_native(const std::string& text) {
    auto r = post_json("/embed", {{"texts", {text}}});
    return floats(body_of(r)["text_embeddings"][0]);
  }
};

TEST_F(CompatTest, InfinityImageModalityAndRootAliases) {
  start_compat();
  const std::string uri = "data:image/jpeg;base64," + b64(jpeg());
  for (const char* path : {"/v1/embeddings", "/embeddings"}) {
    auto r = post_json(path, {{"model", "test-model"}, {"input", {uri}}, {"modality", "image"}});
    ASSERT_EQ(r->status, 200) << r->body;
    auto j = body_of(r);
    EXPECT_EQ(floats(j["data"][0]["embedding"]), embed_image_native(jpeg())) << path;
  }
  // Without the modality the same string is a text, as OpenAI reads it.
  auto t = post_json("/v1/embeddings", {{"input", {uri}}});
  ASSERT_EQ(t->status, 200);
  EXPECT_EQ(floats(body_of(t)["data"][0]["embedding"]), embed_text_native(uri));
  auto bad = post_json("/v1/embeddings", {{"input", {"x"}}, {"modality", "audio"}});
  expect_error(bad, 400, "modality");
  auto models = client().Get("/models");
  ASSERT_EQ(models->status, 200);
  EXPECT_EQ(body_of(models)["data"][0]["id"], "test-model");
}

TEST_F(CompatTest, OpenAiModelsAndErrorShapes) {
  start_compat();
  auto list = body_of(client().Get("/v1/models"));
  const auto& m = list["data"][0];
  EXPECT_EQ(m["object"], "model");
  EXPECT_GT(m["created"].get<long>(), 1700000000L);  // a real timestamp
  for (const char* id : {"test-model", "ViT-B-32/openai", "my-clip"}) {
    auto r = client().Get(std::string("/v1/models/") + id);
    ASSERT_EQ(r->status, 200) << id;
    EXPECT_EQ(body_of(r)["id"], "test-model");
  }
  // The model may be named by any alias; an unknown one is OpenAI's model_not_found.
  EXPECT_EQ(post_json("/v1/embeddings", {{"model", "ViT-B-32/openai"}, {"input", "a"}})->status,
            200);
  auto nf = post_json("/v1/embeddings", {{"model", "gpt-4"}, {"input", "a"}});
  ASSERT_EQ(nf->status, 404);
  auto e = body_of(nf)["error"];
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_EQ(e["param"], "model");
  auto unknown = body_of(post_json("/v1/embeddings", {{"input", "a"}, {"normalise", false}}));
  EXPECT_EQ(unknown["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(unknown["error"]["code"].is_string());
  EXPECT_EQ(unknown["error"]["param"], "normalise");
  auto fmt = body_of(post_json("/v1/embeddings", {{"input", "a"}, {"encoding_format", 3}}));
  EXPECT_EQ(fmt["error"]["param"], "encoding_format");
  auto m404 = client().Get("/v1/models/nope");
  EXPECT_EQ(m404->status, 404);
  EXPECT_EQ(body_of(m404)["error"]["code"], "model_not_found");
  // The native API keeps its own error body.
  auto native = body_of(post_json("/embed", {{"texts", {"a"}}, {"bogus", 1}}));
  EXPECT_EQ(native["error"]["type"], "invalid_argument");
}

TEST_F(CompatTest, OpenAiAuthErrorIsInvalidApiKey) {
  server::ServerOptions so;
  so.api_key = "k";
  start_compat(so);
  auto r = post_json("/v1/embeddings", {{"input", "a"}});
  ASSERT_EQ(r->status, 401);
  EXPECT_EQ(body_of(r)["error"]["code"], "invalid_api_key");
}

// Immich's client: FormData with 'entries' = JSON.stringify(config) and 'image' = a Blob
// (multipart file part named "blob") or 'text' = the query.
TEST_F(CompatTest, ImmichPredictAsImmichSendsIt) {
  start_compat();
  auto ping = client().Get("/ping");
  ASSERT_EQ(ping->status, 200);
  EXPECT_EQ(ping->body, "pong");

  httplib::MultipartFormDataItems visual = {
      {"entries", R"({"clip":{"visual":{"modelName":"ViT-B-32__openai"}}})", "", ""},
      {"image", jpeg(), "blob", "application/octet-stream"}};
  auto r = client().Post("/predict", visual);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  ASSERT_TRUE(j["clip"].is_string());  // Immich keeps the embedding as a JSON string
  EXPECT_EQ(floats(json::parse(j["clip"].get<std::string>())), embed_image_native(jpeg()));
  EXPECT_EQ(j["imageWidth"], 157);
  EXPECT_EQ(j["imageHeight"], 103);

  httplib::MultipartFormDataItems textual = {
      {"entries",
       R"({"clip":{"textual":{"modelName":"ViT-B-32__openai","options":{"language":"en"}}}})", "",
       ""},
      {"text", "a photo of a dog", "", ""}};
  auto t = client().Post("/predict", textual);
  ASSERT_EQ(t->status, 200) << t->body;
  auto tj = body_of(t);
  EXPECT_EQ(floats(json::parse(tj["clip"].get<std::string>())),
            embed_text_native("a photo of a dog"));
  EXPECT_FALSE(tj.contains("imageWidth"));

  // Face detection is Immich's other task: a clear 4xx naming it.
  httplib::MultipartFormDataItems faces = {
      {"entries",
       R"({"facial-recognition":{"detection":{"modelName":"buffalo_l","options":{"minScore":0.7}},"recognition":{"modelName":"buffalo_l"}}})",
       "", ""},
      {"image", jpeg(), "blob", "application/octet-stream"}};
  expect_error(client().Post("/predict", faces), 422, "facial-recognition");
  httplib::MultipartFormDataItems other_model = {
      {"entries", R"({"clip":{"visual":{"modelName":"ViT-L-14__openai"}}})", "", ""},
      {"image", jpeg(), "blob", "application/octet-stream"}};
  expect_error(client().Post("/predict", other_model), 404, "ViT-L-14__openai");
  httplib::MultipartFormDataItems garbled = {{"entries", "{nope", "", ""}, {"text", "x", "", ""}};
  expect_error(client().Post("/predict", garbled), 422, "Invalid request format");
  httplib::MultipartFormDataItems no_image = {
      {"entries", R"({"clip":{"visual":{"modelName":"test-model"}}})", "", ""}};
  expect_error(client().Post("/predict", no_image), 400, "image");
}

TEST_F(CompatTest, KServeV2HealthMetadataAndInfer) {
  start_compat();
  EXPECT_EQ(body_of(client().Get("/v2/health/live"))["live"], true);
  EXPECT_EQ(body_of(client().Get("/v2/health/ready"))["ready"], true);
  EXPECT_EQ(body_of(client().Get("/v2"))["name"], "clipserve");
  auto ready = client().Get("/v2/models/test-model/ready");
  ASSERT_EQ(ready->status, 200);
  EXPECT_EQ(client().Get("/v2/models/my-clip/versions/1/ready")->status, 200);
  EXPECT_EQ(client().Get("/v2/models/nope/ready")->status, 404);
  EXPECT_EQ(client().Get("/v2/models/test-model/versions/7")->status, 404);
  auto meta = body_of(client().Get("/v2/models/test-model"));
  EXPECT_EQ(meta["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(meta["outputs"][0]["shape"][1], engine_->embed_dim());

  auto r = post_json("/v2/models/test-model/infer", {{"id", "42"},
                                                     {"inputs",
                                                      {{{"name", "TEXT"},
                                                        {"datatype", "BYTES"},
                                                        {"shape", {2}},
                                                        {"data", {"a dog", "a cat"}}}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  EXPECT_EQ(j["id"], "42");
  const auto& out = j["outputs"][0];
  EXPECT_EQ(out["shape"], json::array({2, engine_->embed_dim()}));
  const auto flat = floats(out["data"]);
  const auto cat = embed_text_native("a cat");
  EXPECT_EQ(std::vector<float>(flat.begin() + engine_->embed_dim(), flat.end()), cat);
  auto img = post_json(
      "/v2/models/test-model/infer",
      {{"inputs", {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"data", {b64(jpeg())}}}}}});
  ASSERT_EQ(img->status, 200) << img->body;
  EXPECT_EQ(floats(body_of(img)["outputs"][0]["data"]), embed_image_native(jpeg()));
  expect_error(
      post_json("/v2/models/test-model/infer",
                {{"inputs", {{{"name", "AUDIO"}, {"datatype", "BYTES"}, {"data", {"x"}}}}}}),
      400, "TEXT or IMAGE");
  // While draining, readiness goes false.
  server_->stop();
  thread_.join();
}

// Image URLs: refused by default; fetched from an allowed host; private addresses need listing.
TEST_F(CompatTest, ImageUrlsOnlyFromAllowedHosts) {
  httplib::Server origin;
  const std::string img = jpeg();
  origin.Get("/cat.jpg", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(img, "image/jpeg");
  });
  origin.Get("/away", [](const httplib::Request&, httplib::Response& r) {
    r.set_redirect("http://10.255.255.1/cat.jpg");
  });
  const int oport = origin.bind_to_any_port("127.0.0.1");
  std::thread ot([&] { origin.listen_after_bind(); });
  while (!origin.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string url = "http://127.0.0.1:" + std::to_string(oport);

  server::ServerOptions so;
  so.url_fetch.allow = {"127.0.0.1"};
  so.url_fetch.timeout_ms = 2000;
  start_compat(so);
  auto r = post_json("/v1/embeddings", {{"input", {url + "/cat.jpg"}}, {"modality", "image"}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(floats(body_of(r)["data"][0]["embedding"]), embed_image_native(img));
  auto n = post_json("/embed", {{"images", {url + "/cat.jpg"}}});
  ASSERT_EQ(n->status, 200) << n->body;
  expect_error(post_json("/v1/embeddings", {{"input", {url + "/away"}}, {"modality", "image"}}),
               400, "not in the server's --allow-url-host");
  expect_error(post_json("/v1/embeddings",
                         {{"input", {"http://localhost:" + std::to_string(oport) + "/cat.jpg"}},
                          {"modality", "image"}}),
               400, "not in the server's --allow-url-host");
  origin.stop();
  ot.join();
}

TEST_F(CompatTest, ImageUrlsRefusedWithoutAllowList) {
  start_compat();
  expect_error(post_json("/v1/embeddings",
                         {{"input", {"http://127.0.0.1:9/cat.jpg"}}, {"modality", "image"}}),
               400, "--allow-url-host");
}

}  // namespace
}  // namespace clipserve

// HTTP server tests: a real server on a free port, spoken to over HTTP with cpp-httplib's
// client. The engine runs on the hash-based test encoder (engine_testing.h), so results are
// checked against the library's own answers for the same inputs.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "clipserve/engine.h"
#include "clipserve/image.h"
#include "clipserve/tokenizer.h"
#include "engine_testing.h"
#include "server/codec.h"
#include "server/server.h"
#include "server_testing.h"

namespace clipserve {
namespace {

using json = nlohmann::json;
using test::HashEncoder;

TEST_F(ServerTest, ReadinessOnlyAfterWarmUp) {
  start({}, {}, /*warm=*/false);
  enc_->close_gate();
  std::thread warm([&] { engine_->warm_up(); });
  enc_->wait_calls(1);
  auto c = client();
  EXPECT_EQ(c.Get("/health/live")->status, 200);
  auto r = c.Get("/health/ready");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(body_of(r)["status"], "warming_up");
  expect_error(c.Post("/embed", R"({"texts":["a"]})", "application/json"), 503, "warming up");
  EXPECT_EQ(c.Get("/metrics")->status, 200);
  enc_->open_gate();
  warm.join();
  EXPECT_EQ(c.Get("/health/ready")->status, 200);
  EXPECT_EQ(c.Post("/embed", R"({"texts":["a"]})", "application/json")->status, 200);
}

TEST_F(ServerTest, ModelsListsTheServedModel) {
  EngineOptions o;
  o.model_id = "tiny-test";
  start(o);
  auto r = client().Get("/v1/models");
  ASSERT_EQ(r->status, 200);
  auto j = body_of(r);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "tiny-test");
  EXPECT_EQ(j["data"][0]["embed_dim"], 8);
}

TEST_F(ServerTest, OpenAiEmbeddingsForTextsAndImages) {
  EngineOptions o;
  o.model_id = "m";
  start(o);
  auto c = client();
  auto r =
      c.Post("/v1/embeddings", R"({"input":["a dog","a cat"],"model":"m"})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "m");
  ASSERT_EQ(j["data"].size(), 2u);
  auto want = engine_->embed_texts({"a dog", "a cat"});
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    auto got = floats(j["data"][i]["embedding"]);
    EXPECT_EQ(got, std::vector<float>(want.row(i), want.row(i) + 8));  // exact round trip
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], 14);
  EXPECT_EQ(j["usage"]["total_tokens"], 14);

  // A single string, base64 output (little-endian float32, as OpenAI sends it).
  r = c.Post("/v1/embeddings", R"({"input":"a cat","encoding_format":"base64"})",
             "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto bytes = server::base64_decode(body_of(r)["data"][0]["embedding"].get<std::string>(), "t");
  ASSERT_EQ(bytes.size(), 32u);
  std::vector<float> dec(8);
  std::memcpy(dec.data(), bytes.data(), 32);
  EXPECT_EQ(dec, std::vector<float>(want.row(1), want.row(1) + 8));

  // Images as {"image": <base64>} items, mixed with text, in input order.
  r = c.Post("/v1/embeddings",
             json({{"input",
                    {{{"image", b64("pic-bytes")}},
                     "a dog",
                     {{"image_url", {{"url", "data:image/png;base64," + b64("p2")}}}}}}})
                 .dump(),
             "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  auto wi = engine_->embed_images({img("pic-bytes"), img("p2")});
  EXPECT_EQ(floats(j["data"][0]["embedding"]), std::vector<float>(wi.row(0), wi.row(0) + 8));
  EXPECT_EQ(floats(j["data"][1]["embedding"]), std::vector<float>(want.row(0), want.row(0) + 8));
  EXPECT_EQ(floats(j["data"][2]["embedding"]), std::vector<float>(wi.row(1), wi.row(1) + 8));
}

TEST_F(ServerTest, OpenAiEmbeddingsErrors) {
  EngineOptions o;
  o.model_id = "m";
  start(o);
  auto c = client();
  auto post = [&](const std::string& b) { return c.Post("/v1/embeddings", b, "application/json"); };
  expect_error(post(R"({"input":"x","model":"gpt"})"), 404, "'gpt' is not served");
  expect_error(post(R"({"input":"x","encoding_format":"int8"})"), 400, "int8");
  expect_error(post(R"({"input":[1,2,3]})"), 400, "token-id");
  expect_error(post(R"({"model":"m"})"), 400, "missing 'input'");
  expect_error(post(R"({"input":"x","dimensions":3})"), 400, "dimensions");
  expect_error(post(R"({"input": [)"), 400, "invalid JSON");
  expect_error(post(R"({"input":["ok", 5]})"), 400, "input[1]");
  expect_error(post(R"({"input":[{"image":"!!!"}]})"), 400, "input[0]: invalid base64");
  expect_error(post(R"({"input":[{"image":")" + b64("BAD image") + R"("}]})"), 400, "input[0]");
  expect_error(post("{\"input\":[\"fine\", \"bad \xff\"]}"), 400, "invalid JSON");
  // JSON carries valid UTF-8 only; a multipart text field reaches the tokenizer with bad bytes.
  // (One bad input among good ones is answered per item: test_server_api.cpp.)
  expect_error(c.Post("/embed", httplib::MultipartFormDataItems{{"text", "bad \xff", "", ""}}), 400,
               "texts[0]");
  expect_error(post(R"({"input":[{"image":")" + b64("x") + R"("}, "fine", {"text": ""}, 7]})"), 400,
               "input[3]");
}

TEST_F(ServerTest, EmbedAcceptsJsonRawBodiesAndMultipart) {
  start();
  auto c = client();
  auto want_i = engine_->embed_images({img("jpeg-1"), img("jpeg-2")});
  auto want_t = engine_->embed_texts({"hello"});

  auto r = c.Post("/embed",
                  json({{"texts", {"hello"}}, {"images", {b64("jpeg-1"), b64("jpeg-2")}}}).dump(),
                  "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  EXPECT_EQ(j["dim"], 8);
  EXPECT_EQ(floats(j["text_embeddings"][0]), std::vector<float>(want_t.row(0), want_t.row(0) + 8));
  EXPECT_EQ(floats(j["image_embeddings"][1]), std::vector<float>(want_i.row(1), want_i.row(1) + 8));
  EXPECT_TRUE(r->has_header("Server-Timing"));
  EXPECT_FALSE(j.contains("timings"));

  r = c.Post("/embed?timings=1", "jpeg-2", "image/jpeg");
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  EXPECT_EQ(floats(j["image_embeddings"][0]), std::vector<float>(want_i.row(1), want_i.row(1) + 8));
  ASSERT_TRUE(j.contains("timings"));
  for (const char* k : {"parse_ms", "decode_ms", "preprocess_ms", "queue_ms", "encode_ms",
                        "postprocess_ms", "total_ms"}) {
    EXPECT_TRUE(j["timings"][k].is_number()) << k;
  }
  EXPECT_NE(r->get_header_value("Server-Timing").find("encode;dur="), std::string::npos);

  httplib::MultipartFormDataItems form{{"image", "jpeg-1", "a.jpg", "image/jpeg"},
                                       {"image", "jpeg-2", "b.jpg", "image/jpeg"},
                                       {"text", "hello", "", ""}};
  r = c.Post("/embed", form);
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  EXPECT_EQ(floats(j["image_embeddings"][0]), std::vector<float>(want_i.row(0), want_i.row(0) + 8));
  EXPECT_EQ(floats(j["image_embeddings"][1]), std::vector<float>(want_i.row(1), want_i.row(1) + 8));
  EXPECT_EQ(floats(j["text_embeddings"][0]), std::vector<float>(want_t.row(0), want_t.row(0) + 8));

  // Raw features on request.
  r = c.Post("/embed", R"({"texts":["hello"],"normalize":false})", "application/json");
  auto raw = engine_->embed_texts({"hello"}, false);
  EXPECT_EQ(floats(body_of(r)["text_embeddings"][0]),
            std::vector<float>(raw.row(0), raw.row(0) + 8));
}

TEST_F(ServerTest, EmbedErrorsNameTheInput) {
  start();
  auto c = client();
  expect_error(c.Post("/embed", json({{"images", {b64("BAD one")}}}).dump(), "application/json"),
               400, "images[0]");
  expect_error(c.Post("/embed", "BAD raw", "image/png"), 400, "body");
  expect_error(c.Post("/embed", "{}", "application/json"), 400, "no texts or images");
  expect_error(c.Post("/embed", R"({"images":"x"})", "application/json"), 400, "'images'");
  expect_error(c.Post("/embed", R"({"images":[3]})", "application/json"), 400, "images[0]");
  expect_error(c.Post("/embed", R"({"images":["https://example.com/a.jpg"]})", "application/json"),
               400, "not fetched");
  expect_error(c.Post("/embed", "", "image/jpeg"), 400, "empty");
  expect_error(c.Get("/nope"), 404, "no route");
}

TEST_F(ServerTest, BadRequestsDoNotAffectConcurrentGoodOnes) {
  start();
  std::vector<std::thread> ts;
  std::atomic<int> good_ok{0}, bad_400{0};
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      auto c = client();
      for (int i = 0; i < 10; ++i) {
        const bool bad = (t + i) % 2;
        auto r = c.Post("/embed", bad ? "BAD" : "good image", "image/jpeg");
        if (r && bad && r->status == 400) bad_400++;
        if (r && !bad && r->status == 200) good_ok++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(good_ok.load(), 40);
  EXPECT_EQ(bad_400.load(), 40);
}

TEST_F(ServerTest, ClassifyInlineLabelsJsonRawAndMultipart) {
  start();
  auto c = client();
  LabelQuery q{"", {"dog", "cat", "bird"}, {"a photo of a {}.", "art of the {}."}, 0};
  auto want = engine_->classify({img("photo-1")}, q);
  auto r = c.Post("/classify",
                  json({{"images", {b64("photo-1")}},
                        {"labels", {"dog", "cat", "bird"}},
                        {"templates", {"a photo of a {}.", "art of the {}."}}})
                      .dump(),
                  "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  ASSERT_EQ(j["results"].size(), 1u);
  const auto& labels = j["results"][0]["labels"];
  ASSERT_EQ(labels.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(labels[i]["label"], want.images[0][i].label);
    EXPECT_FLOAT_EQ(labels[i]["prob"].get<float>(), want.images[0][i].prob);
  }
  EXPECT_EQ(j["text_encoded"], 0);  // the library call above filled the cache

  r = c.Post(
      "/classify?labels=dog,cat,bird&template=a%20photo%20of%20a%20%7B%7D.&"
      "template=art%20of%20the%20%7B%7D.&top_k=2",
      "photo-1", "image/jpeg");
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  ASSERT_EQ(j["results"][0]["labels"].size(), 2u);
  EXPECT_EQ(j["results"][0]["labels"][0]["label"], want.images[0][0].label);

  httplib::MultipartFormDataItems form{{"image", "photo-1", "one.jpg", "image/jpeg"},
                                       {"image", "photo-2", "two.jpg", "image/jpeg"},
                                       {"labels", "dog,cat,bird", "", ""},
                                       {"template", "a photo of a {}.", "", ""},
                                       {"template", "art of the {}.", "", ""}};
  r = c.Post("/classify", form);
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["name"], "one.jpg");
  EXPECT_EQ(j["results"][0]["labels"][0]["label"], want.images[0][0].label);
  EXPECT_FLOAT_EQ(j["results"][0]["labels"][0]["prob"].get<float>(), want.images[0][0].prob);
}

TEST_F(ServerTest, ClassifyErrors) {
  start();
  auto c = client();
  auto post = [&](const json& b) { return c.Post("/classify", b.dump(), "application/json"); };
  expect_error(post({{"images", {b64("x")}}}), 400, "labels");
  expect_error(post({{"labels", {"a"}}}), 400, "no images");
  expect_error(post({{"images", {b64("x")}}, {"labelset", "missing"}}), 404, "'missing'");
  expect_error(post({{"images", {b64("x")}}, {"labels", {"a"}}, {"templates", {"no slot"}}}), 400,
               "placeholder");
  expect_error(post({{"images", {b64("BAD")}}, {"labels", {"a"}}}), 400, "images[0]");
  expect_error(post({{"images", {b64("x")}}, {"labels", {"a", ""}}}), 400, "labels[1]");
  expect_error(post({{"images", {b64("x")}}, {"labels", {"a"}}, {"top_k", -1}}), 400, "top_k");
}

TEST_F(ServerTest, LabelSetsLifecycleAndCachingVisibleInMetrics) {
  start();
  auto c = client();
  auto r = c.Put("/labelsets/pets", R"({"labels":["dog","cat"],"templates":"imagenet"})",
                 "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body_of(r)["templates"], 80);
  r = c.Put("/labelsets/pets", R"({"labels":["dog","cat","fish"]})", "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r)["replaced"], true);
  r = c.Get("/labelsets/pets");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(body_of(r)["labels"], json({"dog", "cat", "fish"}));
  EXPECT_EQ(body_of(r)["templates"], json({"a photo of a {}."}));
  EXPECT_EQ(body_of(c.Get("/labelsets"))["labelsets"], json({"pets"}));

  const std::string text_items = "clipserve_items_encoded_total{tower=\"text\"}";
  const double before = metric(metrics(), text_items);
  r = c.Post("/classify?labelset=pets", "img", "image/jpeg");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["results"][0]["labels"].size(), 3u);
  EXPECT_EQ(metric(metrics(), text_items), before);  // label set: no text encode

  // Inline labels: the first request encodes, the second is served from the cache.
  const std::string body = R"({"images":[")" + b64("img") + R"("],"labels":["owl","bat"]})";
  r = c.Post("/classify", body, "application/json");
  EXPECT_EQ(body_of(r)["text_encoded"], 2);
  std::string m = metrics();
  const double after_first = metric(m, text_items);
  const double hits_first = metric(m, "clipserve_label_cache_hits_total");
  EXPECT_EQ(after_first, before + 2);
  r = c.Post("/classify", body, "application/json");
  EXPECT_EQ(body_of(r)["text_encoded"], 0);
  m = metrics();
  EXPECT_EQ(metric(m, text_items), after_first);
  EXPECT_EQ(metric(m, "clipserve_label_cache_hits_total"), hits_first + 2);

  EXPECT_EQ(c.Delete("/labelsets/pets")->status, 200);
  expect_error(c.Delete("/labelsets/pets"), 404, "pets");
  expect_error(c.Get("/labelsets/pets"), 404, "pets");
  expect_error(c.Put("/labelsets/bad%20name", R"({"labels":["a"]})", "application/json"), 400,
               "label set name");
  expect_error(c.Put("/labelsets/x", R"({"templates":"simple"})", "application/json"), 400,
               "labels");
}

TEST_F(ServerTest, MetricsExposition) {
  start();
  auto c = client();
  c.Post("/embed", "pic", "image/jpeg");
  c.Post("/embed", "BAD", "image/jpeg");
  auto r = c.Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  const std::string& m = r->body;
  for (const char* s :
       {"clipserve_http_requests_total{endpoint=\"/embed\",code=\"200\"} 1",
        "clipserve_http_requests_total{endpoint=\"/embed\",code=\"400\"} 1",
        "clipserve_http_errors_total{endpoint=\"/embed\"} 1",
        "clipserve_http_request_seconds_count{endpoint=\"/embed\"} 2",
        "clipserve_stage_seconds_count{tower=\"image\",stage=\"queue\"}",
        "clipserve_batch_size_bucket{tower=\"image\",le=\"1\"}",
        "clipserve_queue_depth{tower=\"image\"} 0", "clipserve_label_cache_hits_total",
        "# TYPE clipserve_stage_seconds histogram"}) {
    EXPECT_NE(m.find(s), std::string::npos) << s;
  }
}

TEST_F(ServerTest, BodyLimitGives413) {
  server::ServerOptions so;
  so.max_body_bytes = 1024;
  start({}, so);
  auto c = client();
  expect_error(c.Post("/embed", std::string(4096, 'x'), "image/jpeg"), 413, "limit");
  EXPECT_EQ(c.Post("/embed", std::string(512, 'x'), "image/jpeg")->status, 200);
}

TEST_F(ServerTest, FullQueueGives429) {
  EngineOptions eo;
  eo.max_queue = 1;
  start(eo);
  enc_->close_gate();
  enc_->clear_calls();
  std::thread first([&] { EXPECT_EQ(client().Post("/embed", "one", "image/jpeg")->status, 200); });
  enc_->wait_calls(1);
  auto r = client().Post("/embed", "two", "image/jpeg");
  expect_error(r, 429, "queue is full");
  EXPECT_TRUE(r->has_header("Retry-After"));
  // The text tower has its own queue.
  std::thread text([&] {
    EXPECT_EQ(client().Post("/embed", R"({"texts":["t"]})", "application/json")->status, 200);
  });
  enc_->open_gate();
  first.join();
  text.join();
  EXPECT_EQ(client().Post("/embed", "two", "image/jpeg")->status, 200);
}

TEST_F(ServerTest, ApiKeyRequiredExceptForHealth) {
  server::ServerOptions so;
  so.api_key = "s3cret";
  start({}, so);
  auto c = client();
  expect_error(c.Post("/embed", "pic", "image/jpeg"), 401, "API key");
  expect_error(c.Get("/v1/models"), 401, "API key");
  EXPECT_EQ(c.Get("/health/live")->status, 200);
  EXPECT_EQ(c.Get("/health/ready")->status, 200);
  httplib::Headers h{{"Authorization", "Bearer s3cret"}};
  EXPECT_EQ(c.Post("/embed", h, "pic", "image/jpeg")->status, 200);
  httplib::Headers wrong{{"Authorization", "Bearer nope"}};
  EXPECT_EQ(c.Get("/v1/models", wrong)->status, 401);
}

TEST_F(ServerTest, StopDrainsRequestsInFlight) {
  start();
  enc_->close_gate();
  enc_->clear_calls();
  int status = 0;
  std::thread req([&] {
    auto r = client().Post("/embed", "slow", "image/jpeg");
    status = r ? r->status : -1;
  });
  enc_->wait_calls(1);  // the request is inside the encoder
  std::thread stopper([&] { server_->stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  enc_->open_gate();
  req.join();
  stopper.join();
  thread_.join();  // run() returned
  EXPECT_EQ(status, 200);
  EXPECT_FALSE(client().Get("/health/live"));  // no longer listening
}

std::vector<float> unit(std::vector<float> v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
  return v;
}

TEST_F(ServerTest, TinyModelResultsEqualTheLibrary) {
  start_real();
  auto enc = Encoder::load(test::tiny_model_dir(), {});
  const int dim = enc->embed_dim();
  const auto jpeg = test::read_bytes(test::data_dir() + "/engine/photo_640x425.jpg");
  std::vector<float> px(3 * 224 * 224), img(dim), txt(dim);
  preprocess_image(jpeg, PreprocessOptions::from(enc->config().preprocess), px.data(), "photo");
  enc->encode_images(px.data(), 1, img.data());
  enc->encode_texts({Tokenizer::get().encode("a diagram").ids}, txt.data());
  img = unit(img);
  txt = unit(txt);

  auto c = client();
  auto r = c.Post("/v1/embeddings", R"({"input":"a diagram","model":"tiny"})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_GE(test::cosine(floats(body_of(r)["data"][0]["embedding"]), txt), 0.99999);
  EXPECT_EQ(body_of(r)["usage"]["prompt_tokens"], 4);

  r = c.Post("/embed", std::string(jpeg.begin(), jpeg.end()), "image/jpeg");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_GE(test::cosine(floats(body_of(r)["image_embeddings"][0]), img), 0.99999);

  r = c.Post("/classify?labels=dog,cat", std::string(jpeg.begin(), jpeg.end()), "image/jpeg");
  ASSERT_EQ(r->status, 200) << r->body;
  auto want = engine_->classify({ImageInput::encoded(jpeg)}, LabelQuery{"", {"dog", "cat"}, {}, 0});
  const json j = body_of(r);
  const auto& got = j["results"][0]["labels"];
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i]["label"], want.images[0][i].label);
    EXPECT_NEAR(got[i]["prob"].get<float>(), want.images[0][i].prob, 1e-6);
  }
  expect_error(c.Post("/embed", "not a jpeg at all", "image/jpeg"), 400, "body");
}

// The real `clipserve serve` process: free port, readiness, a request, SIGTERM -> exit 0.
TEST(ServeCommand, ServesUntilSigtermThenExitsCleanly) {
  const std::string log = test::temp_dir() + "/serve.log";
  const std::string cmd = test::cli_path() + " serve --model " + test::tiny_model_dir() +
                          " --port 0 --model-id tiny-cli 2> " + log;
  pid_t pid = 0;
  const char* argv[] = {"/bin/sh", "-c", nullptr, nullptr};
  const std::string exec_cmd = "exec " + cmd;
  argv[2] = exec_cmd.c_str();
  ASSERT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  int port = 0;
  for (int i = 0; i < 600 && !port; ++i) {  // up to 60 s on a busy machine
    std::ifstream in(log);
    std::string text{std::istreambuf_iterator<char>(in), {}};
    const std::string key = "listening on http://127.0.0.1:";
    if (auto at = text.find(key);
        at != std::string::npos && text.find('\n', at) != std::string::npos) {
      port = std::atoi(text.c_str() + at + key.size());
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ASSERT_GT(port, 0) << "serve did not start";
  httplib::Client c("127.0.0.1", port);
  int ready = 0;
  for (int i = 0; i < 600 && ready != 200; ++i) {
    auto r = c.Get("/health/ready");
    ready = r ? r->status : 0;
    if (ready != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(ready, 200);
  auto r = c.Post("/v1/embeddings", R"({"input":"hello","model":"tiny-cli"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::ifstream in(log);
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  EXPECT_NE(text.find("draining"), std::string::npos) << text;
  EXPECT_NE(text.find("stopped"), std::string::npos) << text;
}

TEST(ClassifyCommand, JsonLinesInInputOrderAndFailuresReported) {
  const std::string photo = test::data_dir() + "/engine/photo_640x425.jpg";
  auto [rc, out] = test::run_command(test::cli_path() + " classify --model " +
                                     test::tiny_model_dir() + " --labels dog,cat,fish " + photo +
                                     " /nonexistent.jpg " + photo + " 2>/dev/null");
  EXPECT_EQ(rc, 1);  // one file failed
  std::vector<json> lines;
  std::istringstream is(out);
  for (std::string l; std::getline(is, l);) lines.push_back(json::parse(l));
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0]["file"], photo);
  EXPECT_EQ(lines[1]["file"], "/nonexistent.jpg");
  EXPECT_TRUE(lines[1].contains("error"));
  ASSERT_EQ(lines[0]["labels"].size(), 3u);
  EXPECT_GE(lines[0]["labels"][0]["prob"].get<double>(),
            lines[0]["labels"][1]["prob"].get<double>());
  EXPECT_EQ(lines[0]["labels"], lines[2]["labels"]);
  EXPECT_TRUE(lines[0]["timings"]["encode_ms"].is_number());
  // Same probabilities as the library.
  auto engine = Engine::load(test::tiny_model_dir(), {});
  auto want = engine->classify({ImageInput::encoded(test::read_bytes(photo))},
                               LabelQuery{"", {"dog", "cat", "fish"}, {}, 0});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(lines[0]["labels"][i]["label"], want.images[0][i].label);
    EXPECT_NEAR(lines[0]["labels"][i]["prob"].get<double>(), want.images[0][i].prob, 1e-6);
  }
  auto [rc2, out2] = test::run_command(test::cli_path() + " classify --model " +
                                       test::tiny_model_dir() + " " + photo + " 2>&1");
  EXPECT_EQ(rc2, 2) << out2;
  EXPECT_NE(out2.find("--labels"), std::string::npos);
}

}  // namespace
}  // namespace clipserve

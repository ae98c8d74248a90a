// HTTP API strictness tests: content types (415), Host allow-list, CORS and its preflight,
// nosniff, bearer scheme; unknown fields and unparseable parameters, truncation reports,
// per-item errors, label lists, request bounds.
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <set>
#include <string>

#include "clipserve/image.h"
#include "server_testing.h"

namespace clipserve {
namespace {

TEST_F(ServerTest, JsonEndpointsRequireApplicationJson) {
  start();
  auto c = client();
  const std::string body = R"({"texts":["a"]})";
  // What a cross-site form or fetch() without preflight can send.
  for (const char* ct : {"text/plain", "application/x-www-form-urlencoded"}) {
    expect_error(c.Post("/embed", body, ct), 415, "application/json");
    expect_error(c.Post("/v1/embeddings", R"({"input":"a"})", ct), 415, "application/json");
    expect_error(c.Post("/classify", R"({"images":["aW1n"],"labels":["a"]})", ct), 415,
                 "application/json");
    expect_error(c.Put("/labelsets/x", R"({"labels":["a"]})", ct), 415, "application/json");
  }
  EXPECT_EQ(c.Post("/embed", body, "application/json; charset=utf-8")->status, 200);
  EXPECT_EQ(c.Post("/embed", body, "Application/JSON")->status, 200);
}

TEST_F(ServerTest, HostHeaderMustNameThisServerOnLoopback) {
  start();
  auto c = client();
  httplib::Headers evil{{"Host", "rebound.example:8080"}};
  expect_error(c.Get("/v1/models", evil), 403, "rebound.example");
  expect_error(c.Post("/embed", evil, R"({"texts":["a"]})", "application/json"), 403, "Host");
  for (const char* h : {"localhost:8080", "127.0.0.1", "[::1]:9", "LOCALHOST"}) {
    EXPECT_EQ(c.Get("/v1/models", {{"Host", h}})->status, 200) << h;
  }
  TearDown();
  server_.reset();
  server::ServerOptions so;
  so.allowed_hosts = {"clip.internal"};
  start({}, so);
  EXPECT_EQ(client().Get("/v1/models", {{"Host", "clip.internal:80"}})->status, 200);
  EXPECT_EQ(client().Get("/v1/models", {{"Host", "other.internal"}})->status, 403);
}

TEST_F(ServerTest, CrossOriginRequestsRefusedUnlessAllowed) {
  start();
  auto c = client();
  httplib::Headers site{{"Origin", "https://any.example"}};
  expect_error(c.Post("/embed", site, R"({"texts":["a"]})", "application/json"), 403,
               "cross-origin");
  // A multipart form is a "simple" request a page can send without preflight: refused too.
  httplib::MultipartFormDataItems form{{"text", "a", "", ""}};
  expect_error(c.Post("/embed", site, form), 403, "cross-origin");
  EXPECT_EQ(c.Options("/embed", site)->status, 403);
  // Same origin is not cross-origin.
  const std::string self = "http://127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(c.Post("/embed", {{"Origin", self}}, R"({"texts":["a"]})", "application/json")->status,
            200);
  TearDown();
  server_.reset();

  server::ServerOptions so;
  so.cors_origins = {"https://app.example"};
  start({}, so);
  auto d = client();
  httplib::Headers pre{{"Origin", "https://app.example"},
                       {"Access-Control-Request-Method", "POST"},
                       {"Access-Control-Request-Headers", "content-type"}};
  auto r = d.Options("/embed", pre);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_NE(r->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos);
  EXPECT_NE(r->get_header_value("Access-Control-Allow-Headers").find("Content-Type"),
            std::string::npos);
  r = d.Post("/embed", {{"Origin", "https://app.example"}}, R"({"texts":["a"]})",
             "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(r->get_header_value("Vary"), "Origin");
  EXPECT_EQ(d.Options("/embed", {{"Origin", "https://other.example"}})->status, 403);
}

TEST_F(ServerTest, EveryResponseCarriesNosniff) {
  server::ServerOptions so;
  so.max_body_bytes = 64;
  so.api_key = "k";
  start({}, so);
  auto c = client();
  httplib::Headers auth{{"Authorization", "bearer k"}};  // the scheme is case-insensitive
  auto ok = c.Post("/embed", auth, R"({"texts":["a"]})", "application/json");
  EXPECT_EQ(ok->status, 200);
  auto missing = c.Get("/nope", auth);
  EXPECT_EQ(missing->status, 404);
  auto unauthorized = c.Get("/v1/models");
  EXPECT_EQ(unauthorized->status, 401);
  auto big = c.Post("/embed", auth, std::string(100, 'x'), "image/jpeg");
  EXPECT_EQ(big->status, 413);
  for (const auto* r : {&ok, &missing, &unauthorized, &big}) {
    EXPECT_EQ((*r)->get_header_value("X-Content-Type-Options"), "nosniff");
  }
}

TEST_F(ServerTest, UnknownFieldsAndUnparseableParametersAreNamed) {
  start();
  auto c = client();
  const std::string raw = "pic";
  expect_error(c.Post("/embed", R"({"texts":["a"],"normalise":false})", "application/json"), 400,
               "unknown field 'normalise'");
  expect_error(
      c.Post("/v1/embeddings", R"({"input":"a","encodingformat":"base64"})", "application/json"),
      400, "'encodingformat'");
  expect_error(c.Post("/embed?normalize=abc", raw, "image/jpeg"), 400, "'normalize'");
  expect_error(c.Post("/embed?normalise=0", raw, "image/jpeg"), 400, "'normalise'");
  expect_error(c.Post("/classify?labels=a,b&top_k=abc", raw, "image/jpeg"), 400, "'top_k'");
  expect_error(c.Post("/classify?labels=a&topk=1", raw, "image/jpeg"), 400, "'topk'");
  expect_error(c.Post("/embed", httplib::MultipartFormDataItems{{"txt", "a", "", ""}}), 400,
               "unknown form field 'txt'");
  expect_error(c.Put("/labelsets/x", R"({"labels":["a"],"template":"simple"})", "application/json"),
               400, "'template'");
  expect_error(c.Post("/embed", R"({"texts":["a"],"normalize":"no"})", "application/json"), 400,
               "'normalize'");
  // Small ones: {"text": []} is a 400 (was a 500), {"text": [a, b]} embeds both.
  expect_error(c.Post("/embed", R"({"text":[]})", "application/json"), 400, "no texts");
  auto r = c.Post("/embed", R"({"text":["a","b"]})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["text_embeddings"].size(), 2u);
  EXPECT_EQ(c.Post("/embed?normalize=FALSE", raw, "image/jpeg")->status, 200);
}

TEST_F(ServerTest, TruncatedTextsAreReportedAndStrictModeRefusesThem) {
  start();
  auto c = client();
  const int ctx = engine_->config().text.context_length;
  // The fake tokenizer gives one id per byte: ctx - 2 bytes fit exactly, more are cut.
  const std::string fits(ctx - 2, 'a'), cut(ctx + 40, 'a');
  auto r = c.Post("/embed", json({{"texts", {fits, cut}}}).dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  EXPECT_EQ(j["text_truncated"], json::array({false, true}));
  // open_clip's rule: the cut text is embedded as its first ctx - 2 tokens + end.
  EXPECT_EQ(j["text_embeddings"][0], j["text_embeddings"][1]);

  r = c.Post("/v1/embeddings", json({{"input", {fits, cut}}}).dump(), "application/json");
  j = body_of(r);
  EXPECT_FALSE(j["data"][0].contains("truncated"));
  EXPECT_EQ(j["data"][1]["truncated"], true);

  r = c.Post("/embed", json({{"texts", {fits, cut}}, {"strict", true}}).dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  EXPECT_TRUE(j["text_embeddings"][1].is_null());
  EXPECT_EQ(j["errors"][0]["input"], "texts[1]");
  expect_error(
      c.Post("/embed", json({{"texts", {cut}}, {"strict", true}}).dump(), "application/json"), 400,
      "strict");
  expect_error(c.Post("/v1/embeddings", json({{"input", {fits, cut}}, {"strict", true}}).dump(),
                      "application/json"),
               400, "input[1]");
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c)) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

TEST_F(ServerTest, LabelListsAcceptJsonArraysInQueryAndMultipart) {
  start();
  auto c = client();
  auto labels_of = [](const httplib::Result& r) {
    std::set<std::string> out;
    const json j = json::parse(r->body);
    for (const auto& l : j["results"][0]["labels"]) out.insert(l["label"].get<std::string>());
    return out;
  };
  auto r = c.Post("/classify?labels=" + url_encode(R"(["a, b","c"])"), "pic", "image/jpeg");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(labels_of(r), (std::set<std::string>{"a, b", "c"}));
  r = c.Post("/classify?labels=x,y&labels=z", "pic", "image/jpeg");  // repeated: accumulate
  EXPECT_EQ(labels_of(r), (std::set<std::string>{"x", "y", "z"}));
  httplib::MultipartFormDataItems form{{"image", "pic", "p.jpg", "image/jpeg"},
                                       {"labels", R"(["red, dark","blue"])", "", ""}};
  r = c.Post("/classify", form);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(labels_of(r), (std::set<std::string>{"red, dark", "blue"}));
  expect_error(c.Post("/classify?labels=" + url_encode("[\"a\""), "pic", "image/jpeg"), 400,
               "JSON array");
}

TEST_F(ServerTest, OneBadImageAmongGoodOnesIsReportedPerItem) {
  start();
  auto c = client();
  auto r = c.Post("/embed", json({{"images", {b64("one"), b64("BAD two"), b64("three")}}}).dump(),
                  "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_of(r);
  auto want = engine_->embed_images({img("one"), img("three")});
  EXPECT_EQ(floats(j["image_embeddings"][0]), std::vector<float>(want.row(0), want.row(0) + 8));
  EXPECT_TRUE(j["image_embeddings"][1].is_null());
  EXPECT_EQ(floats(j["image_embeddings"][2]), std::vector<float>(want.row(1), want.row(1) + 8));
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["input"], "images[1]");
  EXPECT_EQ(j["errors"][0]["error"]["code"], 400);

  r = c.Post(
      "/classify",
      json({{"images", {b64("one"), b64("BAD two"), b64("three")}}, {"labels", {"a", "b"}}}).dump(),
      "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  j = body_of(r);
  LabelQuery q;
  q.labels = {"a", "b"};
  auto wc = engine_->classify({img("one"), img("three")}, q);
  EXPECT_EQ(j["results"][0]["labels"][0]["label"], wc.images[0][0].label);
  EXPECT_NEAR(j["results"][0]["labels"][0]["prob"].get<double>(), wc.images[0][0].prob, 1e-6);
  EXPECT_NE(j["results"][1]["error"]["message"].get<std::string>().find("images[1]"),
            std::string::npos);
  EXPECT_FALSE(j["results"][1].contains("labels"));
  EXPECT_NEAR(j["results"][2]["labels"][0]["prob"].get<double>(), wc.images[1][0].prob, 1e-6);
  // Every input bad: the first error, with its status.
  expect_error(
      c.Post("/embed", json({{"images", {b64("BAD a"), b64("BAD b")}}}).dump(), "application/json"),
      400, "images[0]");
  // OpenAI's endpoint stays all-or-nothing.
  expect_error(c.Post("/v1/embeddings", json({{"input", {"fine", {{"image", b64("BAD")}}}}}).dump(),
                      "application/json"),
               400, "input[1]");
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_F(ServerTest, ExpandingRequestsAreRefusedBeforeAnyWork) {
  server::ServerOptions so;
  so.bounds.max_items = 4;
  so.bounds.max_label_sets = 1;
  start({}, so);
  auto c = client();
  // The 1 MB label x 1,000 templates request (1 GB of prompt text): refused at once.
  json big = {{"images", {b64("x")}},
              {"labels", {std::string(1 << 20, 'a')}},
              {"templates", std::vector<std::string>(1000, "{}")}};
  enc_->clear_calls();
  const long before = rss_kb();
  expect_error(c.Post("/classify", big.dump(), "application/json"), 413, "labels[0]");
  EXPECT_LT(rss_kb() - before, 64 * 1024) << "RSS grew by " << (rss_kb() - before) << " kB";
  EXPECT_TRUE(enc_->calls().empty());
  // Many small labels x many templates: the prompt count.
  json many = {{"images", {b64("x")}},
               {"labels", std::vector<std::string>(2000, "l")},
               {"templates", "imagenet"}};
  expect_error(c.Post("/classify", many.dump(), "application/json"), 413, "--max-prompts");
  expect_error(
      c.Post("/embed", json({{"texts", {"a", "b", "c", "d", "e"}}}).dump(), "application/json"),
      413, "--max-items");
  expect_error(
      c.Post("/embed", json({{"texts", {std::string(20000, 'a')}}}).dump(), "application/json"),
      413, "texts[0]");
  EXPECT_EQ(c.Put("/labelsets/one", R"({"labels":["a"]})", "application/json")->status, 201);
  expect_error(c.Put("/labelsets/two", R"({"labels":["a"]})", "application/json"), 413,
               "--max-label-sets");
  EXPECT_EQ(c.Put("/labelsets/one", R"({"labels":["b"]})", "application/json")->status, 200);
}

// PNG chunk: length, type, data, CRC (not checked by the size test below, so zero).
std::string png_chunk(const char* type, const std::string& data) {
  std::string c;
  const uint32_t n = static_cast<uint32_t>(data.size());
  c += static_cast<char>(n >> 24);
  c += static_cast<char>(n >> 16);
  c += static_cast<char>(n >> 8);
  c += static_cast<char>(n);
  c += type;
  c += data;
  c += std::string(4, '\0');
  return c;
}

TEST(ImageLimits, ServerPixelLimitAppliesToEveryImage) {
  ModelConfig cfg;
  cfg.preprocess.size = 8;
  const auto jpeg = test::read_bytes(test::data_dir() + "/engine/photo_640x425.jpg");
  std::vector<float> out(3 * 8 * 8);
  auto fe = Engine::default_frontends(cfg, 640 * 425 - 1);
  try {
    fe.preprocess(jpeg, out.data(), "photo.jpg", nullptr);
    FAIL() << "decoded over the limit";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTooLarge) << e.what();
  }
  Engine::default_frontends(cfg, 640 * 425).preprocess(jpeg, out.data(), "photo.jpg", nullptr);
}

TEST(ImageLimits, TinyFilesDeclaringHugeCanvasesAreRefusedBeforeAllocating) {
  // 68 bytes: a PNG header for 13000 x 13000 RGB and no pixel data worth the name.
  std::string ihdr = {0, 0, 0x32, (char)0xC8, 0, 0, 0x32, (char)0xC8, 8, 2, 0, 0, 0};
  const std::string png = "\x89PNG\r\n\x1a\n" + png_chunk("IHDR", ihdr) +
                          png_chunk("IDAT", std::string(8, 'x')) + png_chunk("IEND", "");
  PreprocessOptions opt;
  std::vector<float> out(3 * 224 * 224);
  const long before = rss_kb();
  try {
    preprocess_image({reinterpret_cast<const uint8_t*>(png.data()), png.size()}, opt, out.data(),
                     "huge.png");
    FAIL() << "decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cannot hold"), std::string::npos) << e.what();
  }
  EXPECT_LT(rss_kb() - before, 64 * 1024);
  // A lossless WebP header declaring 13000 x 13000: the pixel limit applies before libwebp
  // allocates its canvas.
  std::string webp =
      "RIFF" + std::string("\x1a\0\0\0", 4) + "WEBPVP8L" + std::string("\x0d\0\0\0", 4) + "\x2f";
  const uint32_t bits = (13000 - 1) | ((13000u - 1) << 14);
  for (int i = 0; i < 4; ++i) webp += static_cast<char>(bits >> (8 * i));
  webp += std::string(8, '\0');
  opt.max_pixels = 100'000'000;
  try {
    preprocess_image({reinterpret_cast<const uint8_t*>(webp.data()), webp.size()}, opt, out.data(),
                     "huge.webp");
    FAIL() << "decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTooLarge) << e.what();
  }
  EXPECT_LT(rss_kb() - before, 64 * 1024);
}

}  // namespace
}  // namespace clipserve

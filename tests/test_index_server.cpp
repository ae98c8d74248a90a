// Collections over HTTP (/indexes, Marqo-shaped contract) with a hash-encoder engine, and the
// `clipserve index` CLI on the synthetic tiny model.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine_testing.h"
#include "server/codec.h"
#include "server/routes_index.h"
#include "server/server.h"
#include "testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class IndexServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions eopt;
    eopt.preprocess_threads = 2;
    eopt.max_batch = 4;
    engine_ = Engine::create(std::make_unique<test::HashEncoder>(), test::fake_frontends(), eopt);
    engine_->warm_up();
    dir_ = test::temp_dir() + "/cols";
    start();
  }
  void start() {
    server::ServerOptions sopt;
    sopt.port = 0;
    sopt.http_threads = 8;
    server_ = std::make_unique<server::Server>(*engine_, sopt);
    routes_ = server::register_index_routes(server_->http(), server_->model_access(),
                                            server_->metrics(), {dir_, 64});
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  void stop() {
    server_->stop();
    thread_.join();
    routes_.reset();
    server_.reset();
  }
  void TearDown() override {
    if (server_) stop();
  }
  httplib::Result post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    return c.Post(path, body.dump(), "application/json");
  }
  json ok_json(const httplib::Result& r, int status = 200) {
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, status) << r->body;
    return json::parse(r->body);
  }
  void expect_error(const httplib::Result& r, int status, const std::string& needle) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    auto j = json::parse(r->body);
    EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << r->body;
  }
  static std::string b64(const std::string& s) {
    return server::base64_encode(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  std::vector<float> embed_text(const std::string& t) { return engine_->embed_texts({t}).data; }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<server::IndexRoutes> routes_;
  std::thread thread_;
  std::string dir_;
  int port_ = 0;
};

TEST_F(IndexServerTest, ContractCreateAddSearchGetDelete) {
  auto created = post("/indexes/photos", json::object());
  ASSERT_TRUE(created);
  EXPECT_TRUE(created->status == 200 || created->status == 201);
  expect_error(post("/indexes/photos", json::object()), 400, "already exists");
  auto add = ok_json(post("/indexes/photos/documents",
                          {{"documents",
                            {{{"_id", "img1"}, {"image", b64("pixels-1")}, {"year", 2020}},
                             {{"_id", "txt1"}, {"text", "a dog on the beach"}, {"tags", {"dog"}}},
                             {{"_id", "bad"}, {"image", b64("BAD image")}},
                             {{"_id", "nan"}, {"vector", {1, 2}}},
                             {{"text", "no id given"}, {"color", "red"}}}}}));
  EXPECT_TRUE(add["errors"].get<bool>());
  ASSERT_EQ(add["items"].size(), 5u);
  EXPECT_EQ(add["items"][0]["status"], 200);
  EXPECT_EQ(add["items"][1]["status"], 200);
  EXPECT_EQ(add["items"][2]["status"], 400);
  EXPECT_EQ(add["items"][2]["_id"], "bad");
  EXPECT_NE(add["items"][2]["error"].get<std::string>().find("documents[2]"), std::string::npos);
  EXPECT_EQ(add["items"][3]["status"], 400);
  EXPECT_NE(add["items"][3]["error"].get<std::string>().find("dimension"), std::string::npos);
  EXPECT_EQ(add["items"][4]["status"], 200);
  const std::string generated = add["items"][4]["_id"];
  // Text search: the document embedded by its text is the best match for its own text, and
  // _score is the cosine with the engine's own embedding.
  auto res = ok_json(post("/indexes/photos/search", {{"q", "a dog on the beach"}, {"limit", 2}}));
  ASSERT_EQ(res["hits"].size(), 2u);
  EXPECT_EQ(res["hits"][0]["_id"], "txt1");
  EXPECT_NEAR(res["hits"][0]["_score"].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(res["hits"][0]["tags"], json({"dog"}));
  EXPECT_GE(res["hits"][0]["_score"].get<double>(), res["hits"][1]["_score"].get<double>());
  // By image, by vector, with a filter, lexical, hybrid.
  res = ok_json(post("/indexes/photos/search", {{"image", b64("pixels-1")}, {"limit", 1}}));
  EXPECT_EQ(res["hits"][0]["_id"], "img1");
  res = ok_json(post("/indexes/photos/search", {{"vector", embed_text("no id given")}}));
  EXPECT_EQ(res["hits"][0]["_id"], generated);
  res = ok_json(post("/indexes/photos/search",
                     {{"q", "a dog on the beach"}, {"filter", "year:[2019 TO 2021]"}}));
  ASSERT_EQ(res["hits"].size(), 1u);
  EXPECT_EQ(res["hits"][0]["_id"], "img1");
  res = ok_json(post("/indexes/photos/search", {{"q", "beach"}, {"searchMethod", "LEXICAL"}}));
  ASSERT_EQ(res["hits"].size(), 1u);
  EXPECT_EQ(res["hits"][0]["_id"], "txt1");
  res = ok_json(post("/indexes/photos/search", {{"q", "beach"}, {"searchMethod", "HYBRID"}}));
  EXPECT_EQ(res["hits"].size(), 3u);
  EXPECT_EQ(res["hits"][0]["_id"], "txt1");
  // Get / delete.
  httplib::Client c("127.0.0.1", port_);
  auto got = ok_json(c.Get("/indexes/photos/documents/txt1"));
  EXPECT_EQ(got["text"], "a dog on the beach");
  EXPECT_EQ(c.Get("/indexes/photos/documents/none")->status, 404);
  EXPECT_EQ(c.Delete("/indexes/photos/documents/txt1")->status, 200);
  EXPECT_EQ(c.Get("/indexes/photos/documents/txt1")->status, 404);
  EXPECT_EQ(c.Delete("/indexes/photos/documents/txt1")->status, 404);
  auto del = ok_json(post("/indexes/photos/documents/delete-batch", json({"img1", "zz"})));
  EXPECT_EQ(del["deleted"], 1);
  auto stats = ok_json(c.Get("/indexes/photos/stats"));
  EXPECT_EQ(stats["numberOfDocuments"], 1);
  auto list = ok_json(c.Get("/indexes"));
  EXPECT_EQ(list["results"][0]["indexName"], "photos");
  EXPECT_NE(c.Get("/metrics")->body.find("clipserve_index_documents{index=\"photos\"} 1"),
            std::string::npos);
  // Persisted: a restarted server serves the same collection.
  stop();
  start();
  stats = ok_json(httplib::Client("127.0.0.1", port_).Get("/indexes/photos/stats"));
  EXPECT_EQ(stats["numberOfDocuments"], 1);
  EXPECT_EQ(httplib::Client("127.0.0.1", port_).Delete("/indexes/photos")->status, 200);
  EXPECT_FALSE(fs::exists(dir_ + "/photos"));
  EXPECT_EQ(httplib::Client("127.0.0.1", port_).Get("/indexes/photos/stats")->status, 404);
}

TEST_F(IndexServerTest, MultipartUploadTakesImagesAsFilePartsWithPerDocumentErrors) {
  ok_json(post("/indexes/m", {{"vectorStorage", "int8"}}), 201);
  httplib::Client c("127.0.0.1", port_);
  const json docs = {{{"_id", "a"}, {"image", "@p1"}, {"year", 1}},
                     {{"_id", "b"}, {"image", "@missing"}},
                     {{"_id", "c"}, {"image", "@p2"}},
                     {{"_id", "d"}, {"text", "hello there"}}};
  httplib::MultipartFormDataItems form{{"documents", docs.dump(), "", "application/json"},
                                       {"p1", "pixels-1", "a.jpg", "image/jpeg"},
                                       {"p2", "BAD image", "c.jpg", "image/jpeg"}};
  auto add = ok_json(c.Post("/indexes/m/documents", form));
  EXPECT_TRUE(add["errors"].get<bool>());
  ASSERT_EQ(add["items"].size(), 4u);
  EXPECT_EQ(add["items"][0]["status"], 200);
  EXPECT_EQ(add["items"][1]["status"], 400);
  EXPECT_NE(add["items"][1]["error"].get<std::string>().find("no multipart part named 'missing'"),
            std::string::npos);
  EXPECT_EQ(add["items"][2]["status"], 400);
  EXPECT_NE(add["items"][2]["error"].get<std::string>().find("documents[2]"), std::string::npos);
  EXPECT_EQ(add["items"][3]["status"], 200);
  // The file part was embedded like the same bytes sent as base64 (cosine 1 with itself).
  auto res = ok_json(post("/indexes/m/search", {{"image", b64("pixels-1")}, {"limit", 1}}));
  ASSERT_EQ(res["hits"].size(), 1u);
  EXPECT_EQ(res["hits"][0]["_id"], "a");
  EXPECT_NEAR(res["hits"][0]["_score"].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(ok_json(c.Get("/indexes/m/documents/a"))["year"], 1);
  // Whole-request errors write nothing: no documents part, an unreferenced file part (a
  // typo would otherwise drop an image silently), a documents part that is not JSON.
  expect_error(c.Post("/indexes/m/documents",
                      httplib::MultipartFormDataItems{{"p1", "pixels-1", "a.jpg", "image/jpeg"}}),
               400, "exactly one part named 'documents'");
  expect_error(
      c.Post("/indexes/m/documents",
             httplib::MultipartFormDataItems{
                 {"documents", json::array({{{"_id", "e"}, {"text", "x"}}}).dump(), "", ""},
                 {"stray", "pixels-2", "s.jpg", "image/jpeg"}}),
      400, "'stray' is not referenced");
  expect_error(c.Post("/indexes/m/documents",
                      httplib::MultipartFormDataItems{{"documents", "{not json", "", ""}}),
               400, "not valid JSON");
  EXPECT_EQ(ok_json(c.Get("/indexes/m/stats"))["numberOfDocuments"], 2);
  // Other content types stay refused.
  expect_error(c.Post("/indexes/m/documents", docs.dump(), "text/plain"), 415, "application/json");
  expect_error(post("/indexes/bad", {{"vectorStorage", "fp8"}}), 400, "vector_storage");
}

TEST_F(IndexServerTest, BadInputGetsAClear4xxAndWritesNothingBad) {
  ASSERT_EQ(post("/indexes/c", json::object())->status, 201);
  expect_error(post("/indexes/bad%20name!", json::object()), 400, "index name");
  expect_error(post("/indexes/c2", {{"nope", 1}}), 400, "unknown index setting 'nope'");
  expect_error(post("/indexes/missing/search", {{"q", "x"}}), 404, "does not exist");
  expect_error(post("/indexes/c/search", {{"q", "x"}, {"filter", "a:[1 TO"}}), 400, "filter:");
  expect_error(post("/indexes/c/search", {{"q", "x"}, {"bogus", true}}), 400, "bogus");
  expect_error(post("/indexes/c/search", {{"vector", {1, 2}}}), 400, "dimension");
  expect_error(post("/indexes/c/search", {{"q", "x"}, {"searchMethod", "FUZZY"}}), 400, "TENSOR");
  expect_error(post("/indexes/c/search", {{"q", "x"}, {"limit", -3}}), 400, "limit");
  expect_error(post("/indexes/c/search", json::object()), 400, "give 'q'");
  expect_error(post("/indexes/c/documents", {{"docs", json::array()}}), 400, "documents");
  json huge = json::array();
  for (int i = 0; i < 65; ++i) huge.push_back({{"text", "t"}});
  expect_error(post("/indexes/c/documents", {{"documents", huge}}), 413, "at most 64");
  httplib::Client c("127.0.0.1", port_);
  expect_error(c.Post("/indexes/c/documents", "{not json", "application/json"), 400, "JSON");
  // Per-document errors: NaN cannot travel in JSON, so a null/strings stand in for it.
  auto add = ok_json(
      post("/indexes/c/documents", {{"documents",
                                     {{{"_id", "dup"}, {"text", "one"}},
                                      {{"_id", "dup"}, {"text", "two"}},
                                      {{"_id", "v"}, {"vector", {1, 2, 3, 4, 5, 6, 7, "x"}}},
                                      {{"_id", "nested"}, {"text", "x"}, {"meta", {{"a", 1}}}},
                                      {{"_id", "reserved"}, {"text", "x"}, {"_score", 1}},
                                      {{"_id", "empty"}},
                                      {{"_id", 5}, {"text", "x"}},
                                      {{"_id", "url"}, {"image", "https://example.com/a.jpg"}},
                                      {{"_id", "good"}, {"text", "fine"}, {"n", 1.5}}}}}));
  EXPECT_TRUE(add["errors"].get<bool>());
  for (size_t i = 0; i + 1 < add["items"].size(); ++i) {
    EXPECT_EQ(add["items"][i]["status"], 400) << add["items"][i].dump();
    EXPECT_TRUE(add["items"][i]["error"].is_string());
  }
  EXPECT_EQ(add["items"].back()["status"], 200);
  auto stats = ok_json(c.Get("/indexes/c/stats"));
  EXPECT_EQ(stats["numberOfDocuments"], 1);
  EXPECT_EQ(c.Get("/indexes/c/documents/dup")->status, 404);
  // Invalid UTF-8 in the body is a JSON error, not a stored document.
  expect_error(c.Post("/indexes/c/documents",
                      std::string("{\"documents\":[{\"text\":\"caf\xc3\"}]}"), "application/json"),
               400, "JSON");
}

TEST(IndexCommand, AddSkipsUnchangedFilesSearchFindsThemAndStatsAgree) {
  const std::string dir = test::temp_dir();
  const std::string files = dir + "/files";
  fs::create_directories(files + "/sub");
  for (const char* f : {"gray.png", "palette.gif", "cmyk.jpg"}) {
    fs::copy(test::data_dir() + "/image/" + f, files + "/" + f);
  }
  fs::copy(test::data_dir() + "/image/lossy.webp", files + "/sub/lossy.webp");
  std::ofstream(files + "/sub/note.txt") << "a dog on the beach";
  std::ofstream(files + "/broken.jpg") << "not an image";
  const std::string cli = test::cli_path() + " index ";
  const std::string coll = " --collection " + dir + "/coll";
  auto [rc, out] = test::run_command(cli + "add" + coll + " --model " + test::tiny_model_dir() +
                                     " " + files + " 2>&1");
  EXPECT_EQ(rc != 0, true) << out;  // broken.jpg fails; the others are added
  EXPECT_NE(out.find("broken.jpg"), std::string::npos) << out;
  EXPECT_NE(out.find("5 added, 0 unchanged"), std::string::npos) << out;
  std::tie(rc, out) = test::run_command(cli + "add" + coll + " " + files + " 2>&1");
  EXPECT_NE(out.find("0 added, 5 unchanged"), std::string::npos) << out;
  std::tie(rc, out) =
      test::run_command(cli + "search" + coll + " --json --limit 1 --image " + files + "/gray.png");
  ASSERT_EQ(rc, 0) << out;
  auto hit = json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(hit["_id"], fs::absolute(files + "/gray.png").lexically_normal().string());
  EXPECT_NEAR(hit["_score"].get<double>(), 1.0, 1e-5);
  std::tie(rc, out) =
      test::run_command(cli + "search" + coll + " --json --limit 1 a dog on the beach");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("note.txt"), std::string::npos) << out;
  std::tie(rc, out) = test::run_command(cli + "search" + coll + " --json --filter ext:webp x");
  EXPECT_NE(out.find("lossy.webp"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  std::tie(rc, out) = test::run_command(cli + "search" + coll + " --filter 'ext:' x 2>&1");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("filter:"), std::string::npos) << out;
  std::tie(rc, out) = test::run_command(cli + "delete" + coll + " --filter ext:png 2>&1");
  EXPECT_NE(out.find("1 documents removed"), std::string::npos) << out;
  std::tie(rc, out) = test::run_command(cli + "stats" + coll + " --json");
  auto st = json::parse(out);
  EXPECT_EQ(st["documents"], 4);
  EXPECT_EQ(st["ann_elements"], 4);
  std::tie(rc, out) = test::run_command(cli + "export" + coll + " --vectors");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 4);
  EXPECT_EQ(json::parse(out.substr(0, out.find('\n')))["vector"].size(), 32u);
}

}  // namespace
}  // namespace clipserve

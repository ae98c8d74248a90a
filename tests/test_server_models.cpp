// Several models in one server (ModelSet): routing by the request's model name on every API,
// 404 listing the served models, per-model readiness, labelled metrics, per-model label sets
// and collections, and idle unloading with reload + warm-up on the next request.
#include <filesystem>
#include <fstream>

#include "engine/metrics.h"
#include "server/model_set.h"
#include "server/routes_index.h"
#include "server_testing.h"

namespace clipserve {
namespace {

class ModelsTest : public ::testing::Test {
 protected:
  // "alpha" (8-d, the default) and "beta" (16-d, alias "beta-alias"), sharing one registry.
  std::unique_ptr<Engine> make(const std::string& id, int dim, bool warm) {
    EngineOptions eo;
    eo.model_id = id;
    eo.max_batch = 4;
    eo.preprocess_threads = 1;
    eo.metrics = registry_;
    eo.metric_labels = {{"model", id}};
    auto enc = std::make_unique<test::HashEncoder>(dim);
    if (id == "beta") beta_enc_ = enc.get();
    auto e = Engine::create(std::move(enc), test::fake_frontends(), eo);
    if (warm) e->warm_up();
    return e;
  }
  void start(double beta_unload_after = 0, bool warm_beta = true) {
    models_ = std::make_unique<server::ModelSet>(*registry_);
    models_->add(make("alpha", 8, true), {});
    beta_ = make("beta", 16, warm_beta);
    server::ModelSpec spec;
    spec.names = {"beta-alias"};
    spec.unload_after_s = beta_unload_after;
    spec.reload = [this] {
      ++reloads_;
      return make("beta", 16, false);
    };
    models_->add(beta_, std::move(spec));
    server::ServerOptions so;
    so.port = 0;
    so.http_threads = 8;
    server_ = std::make_unique<server::Server>(*models_, *registry_, so);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Result post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c.Post(path, body.dump(), "application/json");
  }
  httplib::Result get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c.Get(path);
  }
  size_t dim_of(const httplib::Result& r) {
    EXPECT_TRUE(r);
    if (!r) return 0;
    EXPECT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    if (j.contains("data")) return j["data"][0]["embedding"].size();
    if (j.contains("text_embeddings")) return j["text_embeddings"][0].size();
    return j["image_embeddings"][0].size();
  }
  json beta_info() {
    const json list = json::parse(get("/v1/models")->body);
    for (const auto& m : list["data"]) {
      if (m["id"] == "beta") return m;
    }
    return nullptr;
  }

  std::shared_ptr<metrics::Registry> registry_ = std::make_shared<metrics::Registry>();
  std::unique_ptr<server::ModelSet> models_;
  std::shared_ptr<Engine> beta_;
  test::HashEncoder* beta_enc_ = nullptr;
  std::atomic<int> reloads_{0};
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(ModelsTest, EveryApiRoutesByTheModelName) {
  start();
  EXPECT_EQ(dim_of(post("/v1/embeddings", {{"model", "alpha"}, {"input", "a dog"}})), 8u);
  EXPECT_EQ(dim_of(post("/v1/embeddings", {{"model", "beta"}, {"input", "a dog"}})), 16u);
  EXPECT_EQ(dim_of(post("/embeddings", {{"model", "beta-alias"}, {"input", "a dog"}})), 16u);
  EXPECT_EQ(dim_of(post("/v1/embeddings", {{"input", "a dog"}})), 8u);  // the default
  EXPECT_EQ(dim_of(post("/embed", {{"texts", {"x"}}})), 8u);
  EXPECT_EQ(dim_of(post("/embed", {{"texts", {"x"}}, {"model", "beta"}})), 16u);
  EXPECT_EQ(dim_of(post("/embed?model=beta", {{"texts", {"x"}}})), 16u);
  auto c = post("/classify", {{"model", "beta"}, {"images", {"aW1n"}}, {"labels", {"a", "b"}}});
  ASSERT_EQ(c->status, 200) << c->body;
  EXPECT_EQ(json::parse(c->body)["model"], "beta");
  // KServe: the model is in the path.
  auto k = post("/v2/models/beta/infer",
                {{"inputs", {{{"name", "TEXT"}, {"datatype", "BYTES"}, {"data", {"x"}}}}}});
  ASSERT_EQ(k->status, 200) << k->body;
  EXPECT_EQ(json::parse(k->body)["outputs"][0]["shape"], json::array({1, 16}));
  EXPECT_EQ(json::parse(get("/v2/models/alpha")->body)["outputs"][0]["shape"],
            json::array({-1, 8}));
  // Immich names the model in entries, ARCH__TAG spelling included.
  httplib::Client cl("127.0.0.1", port_);
  httplib::MultipartFormDataItems items = {
      {"entries", R"({"clip":{"textual":{"modelName":"beta"}}})", "", ""},
      {"text", "a dog", "", ""}};
  auto im = cl.Post("/predict", items);
  ASSERT_EQ(im->status, 200) << im->body;
  EXPECT_EQ(json::parse(json::parse(im->body)["clip"].get<std::string>()).size(), 16u);
}

TEST_F(ModelsTest, UnknownModelIs404ListingWhatIsServed) {
  start();
  auto r = post("/v1/embeddings", {{"model", "gamma"}, {"input", "x"}});
  ASSERT_EQ(r->status, 404);
  const json e = json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_EQ(e["param"], "model");
  const std::string msg = e["message"];
  EXPECT_NE(msg.find("'gamma'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'alpha', 'beta'"), std::string::npos) << msg;
  for (const char* path : {"/v1/models/gamma", "/v2/models/gamma/ready", "/v2/models/gamma",
                           "/health/ready?model=gamma"}) {
    auto g = get(path);
    EXPECT_EQ(g->status, 404) << path;
    EXPECT_NE(g->body.find("'alpha', 'beta'"), std::string::npos) << path << g->body;
  }
  EXPECT_EQ(post("/embed?model=gamma", {{"texts", {"x"}}})->status, 404);
  EXPECT_EQ(
      post("/classify", {{"model", "gamma"}, {"images", {"aW1n"}}, {"labels", {"a"}}})->status,
      404);
}

TEST_F(ModelsTest, ModelsAreListedAndFoundByAnyName) {
  start();
  const json list = json::parse(get("/v1/models")->body)["data"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["id"], "alpha");
  EXPECT_EQ(list[1]["id"], "beta");
  EXPECT_EQ(list[1]["embed_dim"], 16);
  EXPECT_EQ(list[1]["aliases"], json::array({"beta", "beta-alias"}));
  auto one = get("/v1/models/beta-alias");
  ASSERT_EQ(one->status, 200);
  EXPECT_EQ(json::parse(one->body)["id"], "beta");
}

TEST_F(ModelsTest, ReadinessIsPerModelAndOverall) {
  start(0, /*warm_beta=*/false);
  EXPECT_EQ(get("/health/ready")->status, 503);
  EXPECT_EQ(get("/health/ready?model=alpha")->status, 200);
  EXPECT_EQ(get("/health/ready?model=beta")->status, 503);
  EXPECT_EQ(get("/v2/health/ready")->status, 503);
  EXPECT_EQ(get("/v2/models/alpha/ready")->status, 200);
  EXPECT_EQ(get("/v2/models/beta/ready")->status, 503);
  EXPECT_EQ(post("/v1/embeddings", {{"model", "beta"}, {"input", "x"}})->status, 503);
  EXPECT_EQ(post("/v1/embeddings", {{"model", "alpha"}, {"input", "x"}})->status, 200);
  beta_->warm_up();
  EXPECT_EQ(get("/health/ready")->status, 200);
  EXPECT_EQ(get("/v2/models/beta/ready")->status, 200);
  EXPECT_EQ(post("/v1/embeddings", {{"model", "beta"}, {"input", "x"}})->status, 200);
}

TEST_F(ModelsTest, MetricsAreLabelledPerModelInOneExposition) {
  start();
  post("/v1/embeddings", {{"model", "beta"}, {"input", {"x", "y", "z"}}});
  post("/v1/embeddings", {{"model", "alpha"}, {"input", "x"}});
  const std::string m = get("/metrics")->body;
  auto value = [&](const std::string& series) {
    const auto at = m.find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(m.substr(at + series.size() + 2));
  };
  // Warm-up items count too; the requests add 3 (beta) and 1 (alpha) on top.
  const double a = value(R"(clipserve_items_encoded_total{model="alpha",tower="text"})");
  const double b = value(R"(clipserve_items_encoded_total{model="beta",tower="text"})");
  ASSERT_GT(a, 0) << m;
  ASSERT_GT(b, 0) << m;
  EXPECT_EQ(value(R"(clipserve_model_loaded{model="beta"})"), 1);
  size_t helps = 0;
  for (size_t at = 0; (at = m.find("# HELP clipserve_items_encoded_total ", at)) != m.npos; ++at) {
    ++helps;
  }
  EXPECT_EQ(helps, 1u) << "one family, one HELP line";
  EXPECT_NE(m.find("clipserve_http_requests_total{"), std::string::npos);
}

TEST_F(ModelsTest, LabelSetsBelongToOneModel) {
  start();
  httplib::Client c("127.0.0.1", port_);
  auto put =
      c.Put("/labelsets/animals?model=beta", R"({"labels": ["cat", "dog"]})", "application/json");
  ASSERT_EQ(put->status, 201) << put->body;
  EXPECT_EQ(json::parse(get("/labelsets?model=beta")->body)["labelsets"], json::array({"animals"}));
  EXPECT_EQ(json::parse(get("/labelsets")->body)["labelsets"], json::array());
  auto ok = post("/classify", {{"model", "beta"}, {"images", {"aW1n"}}, {"labelset", "animals"}});
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto missing = post("/classify", {{"images", {"aW1n"}}, {"labelset", "animals"}});
  EXPECT_EQ(missing->status, 404) << missing->body;
}

TEST_F(ModelsTest, CollectionsEmbedWithTheirOwnModel) {
  start();
  const std::string dir = test::temp_dir() + "/collections";
  auto routes = server::register_index_routes(server_->http(), server_->model_access(),
                                              server_->metrics(), {dir, 64});
  ASSERT_EQ(post("/indexes/b", {{"model", "beta-alias"}})->status / 100, 2);
  ASSERT_EQ(post("/indexes/a", json::object())->status / 100, 2);
  auto list = json::parse(get("/indexes")->body)["results"];
  std::map<std::string, json> by;
  for (const auto& i : list) by[i["indexName"]] = i;
  EXPECT_EQ(by["b"]["model"], "beta");
  EXPECT_EQ(by["b"]["dim"], 16);
  EXPECT_EQ(by["a"]["model"], "alpha");
  EXPECT_EQ(by["a"]["dim"], 8);
  auto add = post("/indexes/b/documents", {{"documents", {{{"_id", "d1"}, {"text", "a dog"}}}}});
  ASSERT_EQ(add->status, 200) << add->body;
  auto hit = post("/indexes/b/search", {{"q", "a dog"}});
  ASSERT_EQ(hit->status, 200) << hit->body;
  EXPECT_EQ(json::parse(hit->body)["hits"][0]["_id"], "d1");
  EXPECT_NEAR(json::parse(hit->body)["hits"][0]["_score"].get<double>(), 1.0, 1e-5);
  EXPECT_EQ(post("/indexes/c", {{"model", "gamma"}})->status, 404);
}

TEST_F(ModelsTest, IdleModelIsUnloadedAndReloadedOnTheNextRequest) {
  start(/*beta_unload_after=*/0.2);
  const auto before = post("/v1/embeddings", {{"model", "beta"}, {"input", "a dog"}});
  ASSERT_EQ(before->status, 200);
  const int r0 = reloads_.load();  // 1 if it was already unloaded before that request (slow start)
  beta_.reset();                   // the test's own reference must not keep it loaded
  for (int i = 0; i < 200 && beta_info()["loaded"] != false; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  json info = beta_info();
  ASSERT_EQ(info["loaded"], false) << info;
  EXPECT_EQ(info["ready"], true) << "an unloaded model reloads on demand: still ready";
  EXPECT_EQ(get("/health/ready")->status, 200);
  EXPECT_NE(get("/metrics")->body.find("clipserve_model_loaded{model=\"beta\"} 0"),
            std::string::npos);
  // alpha has no unload_after: stays.
  EXPECT_EQ(json::parse(get("/v1/models")->body)["data"][0]["loaded"], true);

  auto again = post("/v1/embeddings", {{"model", "beta"}, {"input", "a dog"}, {"timings", true}});
  ASSERT_EQ(again->status, 200) << again->body;
  const json j = json::parse(again->body);
  EXPECT_EQ(j["data"][0]["embedding"], json::parse(before->body)["data"][0]["embedding"]);
  EXPECT_GT(j["timings"]["model_load_ms"].get<double>(), 0) << j["timings"];
  EXPECT_NE(again->get_header_value("Server-Timing").find("load;dur="), std::string::npos);
  EXPECT_EQ(reloads_.load(), r0 + 1);
  EXPECT_EQ(beta_info()["loaded"], true);
  EXPECT_EQ(beta_info()["loads"], r0 + 2);
  // A request to a loaded model shows no load wait.
  auto warm = post("/v1/embeddings", {{"model", "beta"}, {"input", "x"}, {"timings", true}});
  EXPECT_EQ(json::parse(warm->body)["timings"]["model_load_ms"], 0);
}

TEST_F(ModelsTest, AFailedReloadIsA503AndTheNextRequestRetries) {
  server::ModelSet set(*registry_);
  set.add(make("alpha", 8, true), {});
  std::atomic<int> attempts{0};
  server::ModelSpec spec;
  spec.unload_after_s = 1e-3;
  spec.reload = [&]() -> std::unique_ptr<Engine> {
    if (attempts.fetch_add(1) == 0) throw Error(ErrorCode::kIo, "model.safetensors: gone");
    return make("beta", 16, false);
  };
  set.add(make("beta", 16, true), std::move(spec));
  for (int i = 0; i < 500 && set.find("beta")->loaded; ++i) {  // the timer unloads it
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(set.find("beta")->loaded);
  try {
    set.acquire("beta");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("could not be reloaded: model.safetensors: gone"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(set.find("beta")->loaded);
  auto lease = set.acquire("beta");  // the next request tries again
  EXPECT_GT(lease.load_ms, 0);
  EXPECT_EQ(lease->embed_dim(), 16);
  EXPECT_EQ(attempts.load(), 2);
}

TEST_F(ModelsTest, AModelInUseIsNotUnloaded) {
  start(/*beta_unload_after=*/2.0);
  beta_.reset();
  const size_t calls = beta_enc_->calls().size();
  beta_enc_->close_gate();
  std::thread slow([this] {
    auto r = post("/v1/embeddings", {{"model", "beta"}, {"input", "held"}});
    EXPECT_EQ(r->status, 200);
  });
  beta_enc_->wait_calls(calls + 1);                              // the request is encoding
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // past unload_after
  EXPECT_EQ(models_->unload_idle(), 0);
  EXPECT_EQ(beta_info()["loaded"], true);
  beta_enc_->open_gate();
  slow.join();
  EXPECT_EQ(reloads_.load(), 0);
}

TEST_F(ModelsTest, IdsMustBeUniqueAndSharedNamesStayWithTheFirst) {
  server::ModelSet set(*registry_);
  set.add(make("alpha", 8, true), {{"shared-path"}, nullptr, 0});
  EXPECT_THROW(set.add(make("alpha", 8, true), {}), Error);
  set.add(make("beta", 16, true), {{"shared-path", "b"}, nullptr, 0});
  EXPECT_EQ(set.find("shared-path")->id, "alpha");
  EXPECT_EQ(set.find("b")->id, "beta");
  EXPECT_EQ(set.acquire("beta")->embed_dim(), 16);
  EXPECT_EQ(set.acquire("")->model_id(), "alpha");
  try {
    set.acquire("nope");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_STREQ(e.what(), "model 'nope' is not served here; this server serves 'alpha', 'beta'");
  }
}

TEST(ServeModelsFile, BadFilesAreClearErrors) {
  const std::string dir = test::temp_dir();
  auto run = [&](const std::string& content) {
    const std::string f = dir + "/models.json";
    std::ofstream(f) << content;
    return test::run_command(test::cli_path() + " serve --port 0 --models " + f + " 2>&1");
  };
  const std::pair<std::string, std::string> cases[] = {
      {"{not json", "not valid JSON"},
      {R"({"models": []})", "expected {\"models\""},
      {R"({"models": [{"id": "x"}]})", "needs \"model\""},
      {R"({"models": [{"model": "m", "max_batch": 0}]})", "max_batch must be an integer >= 1"},
      {R"({"models": [{"model": "m", "unload_after": -1}]})", "unload_after must be a number"},
      {R"({"models": [{"model": "m", "precison": "bf16"}]})", "unknown key 'precison'"},
  };
  for (const auto& [content, needle] : cases) {
    auto [rc, out] = run(content);
    EXPECT_NE(rc, 0) << content;
    EXPECT_NE(out.find(needle), std::string::npos) << content << " -> " << out;
  }
  auto [rc, out] = test::run_command(test::cli_path() +
                                     " serve --port 0 --model a --model-id x --model-id y 2>&1");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("more --model-id (2) than --model (1)"), std::string::npos) << out;
}

}  // namespace
}  // namespace clipserve

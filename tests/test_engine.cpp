// Engine tests on a hash-based test encoder: batching (immediate dispatch, coalescing,
// max_batch), overload, error isolation, classification math, label caching, label sets,
// warm-up readiness, timings and metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "clipserve/engine.h"
#include "clipserve/image.h"
#include "clipserve/tokenizer.h"
#include "core/compute_thread.h"
#include "engine/metrics.h"
#include "engine_testing.h"

namespace clipserve {
namespace {

using test::HashEncoder;

struct Fixture {
  HashEncoder* enc;  // owned by the engine
  std::unique_ptr<Engine> engine;
};

Fixture make_engine(EngineOptions opt = {}) {
  auto enc = std::make_unique<HashEncoder>();
  Fixture f{enc.get(), nullptr};
  opt.preprocess_threads = opt.preprocess_threads ? opt.preprocess_threads : 2;
  f.engine = Engine::create(std::move(enc), test::fake_frontends(), opt);
  return f;
}

std::vector<float> pixels_for(int seed) {
  std::vector<float> p(3 * 8 * 8);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<float>((seed * 31 + i) % 17);
  return p;
}

// std::string(a).append(b): GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
std::string cat(const char* a, int i) { return std::string(a).append(std::to_string(i)); }

ImageInput jpeg_like(const std::string& s) {
  return ImageInput::encoded(std::vector<uint8_t>(s.begin(), s.end()), s);
}

float norm(const float* v, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += double(v[i]) * v[i];
  return static_cast<float>(std::sqrt(s));
}

TEST(Engine, TextEmbeddingsAreRowsOfTheEncoderInOrderAndNormalized) {
  auto f = make_engine();
  auto raw = f.engine->embed_texts({"a dog", "a cat", "a dog"}, /*normalize=*/false);
  ASSERT_EQ(raw.n, 3);
  ASSERT_EQ(raw.dim, 8);
  // Direct call on the same encoder type gives the same raw rows.
  HashEncoder direct;
  std::vector<float> want(8);
  auto ids = test::fake_frontends().tokenize("a cat", 77);
  direct.encode_texts({ids}, want.data());
  for (int d = 0; d < 8; ++d) EXPECT_EQ(raw.row(1)[d], want[d]);
  for (int d = 0; d < 8; ++d) EXPECT_EQ(raw.row(0)[d], raw.row(2)[d]);
  EXPECT_EQ(raw.token_counts, (std::vector<int>{7, 7, 7}));

  auto unit = f.engine->embed_texts({"a dog", "a cat"});
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(norm(unit.row(i), 8), 1.0f, 1e-6);
  const float n0 = norm(raw.row(0), 8);
  for (int d = 0; d < 8; ++d) EXPECT_NEAR(unit.row(0)[d], raw.row(0)[d] / n0, 1e-6);
}

TEST(Engine, ImageInputsEncodedOrPreprocessedGiveTheSameRows) {
  auto f = make_engine();
  std::vector<float> px(192);
  test::fake_frontends().preprocess(std::span<const uint8_t>((const uint8_t*)"cat.jpg", 7),
                                    px.data(), "x", nullptr);
  auto e = f.engine->embed_images({jpeg_like("cat.jpg"), ImageInput::preprocessed(px, "t")});
  ASSERT_EQ(e.n, 2);
  for (int d = 0; d < 8; ++d) EXPECT_EQ(e.row(0)[d], e.row(1)[d]);
}

TEST(Engine, IdleTowerDispatchesAtOnceBusyTowerCoalesces) {
  EngineOptions opt;
  opt.max_batch = 16;
  opt.max_wait_us = 5'000'000;  // long: an immediate dispatch cannot be mistaken for a timeout
  auto f = make_engine(opt);
  f.enc->close_gate();
  auto first = f.engine->submit_images({ImageInput::preprocessed(pixels_for(0))});
  f.enc->wait_calls(1);  // dispatched alone although max_wait is 5 s
  std::vector<std::future<Embeddings>> rest;
  for (int i = 1; i <= 16; ++i) {
    rest.push_back(f.engine->submit_images({ImageInput::preprocessed(pixels_for(i))}));
  }
  f.enc->open_gate();
  EXPECT_LT(first.get().timings.queue_ms, 5000.0);
  for (auto& r : rest) r.get();
  // The 16 that arrived while busy ran as one full batch (no waiting: it filled up).
  EXPECT_EQ(f.enc->batch_sizes(true), (std::vector<int>{1, 16}));
  EXPECT_EQ(f.engine->counters().image_batches, 2u);
}

TEST(Engine, CoalescedBatchesRespectMaxBatchAndKeepRowsWithTheirRequests) {
  EngineOptions opt;
  opt.max_batch = 4;
  opt.max_wait_us = 0;
  auto f = make_engine(opt);
  f.enc->close_gate();
  auto first = f.engine->submit_texts({"t0"});
  f.enc->wait_calls(1);
  std::vector<std::future<Embeddings>> rest;
  for (int i = 1; i <= 10; ++i) rest.push_back(f.engine->submit_texts({cat("t", i)}));
  f.enc->open_gate();
  first.get();
  for (int i = 1; i <= 10; ++i) {
    auto got = rest[i - 1].get();
    auto want = f.engine->embed_texts({cat("t", i)});
    for (int d = 0; d < 8; ++d) EXPECT_EQ(got.row(0)[d], want.row(0)[d]) << i;
  }
  auto sizes = f.enc->batch_sizes(false);
  int total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_LE(sizes[i], 4);
    total += sizes[i];
  }
  EXPECT_EQ(total, 1 + 10 + 10);
  EXPECT_EQ(sizes[1], 4);  // coalesced while busy
}

TEST(Engine, CoalescingWaitsForMoreItemsUpToMaxWait) {
  EngineOptions opt;
  opt.max_batch = 8;
  opt.max_wait_us = 300'000;
  auto f = make_engine(opt);
  f.enc->close_gate();
  auto a = f.engine->submit_texts({"a"});
  f.enc->wait_calls(1);
  auto b = f.engine->submit_texts({"b"});  // arrives while busy: starts the coalescing window
  f.enc->open_gate();
  auto c = f.engine->submit_texts({"c"});  // arrives inside the window: joins b's batch
  a.get();
  b.get();
  c.get();
  EXPECT_EQ(f.enc->batch_sizes(false), (std::vector<int>{1, 2}));
}

// Front-ends whose preprocessing of names starting with "hold" blocks until release().
struct HeldFrontends {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  EngineFrontends fe = test::fake_frontends([this](const std::string& name) {
    if (name.rfind("hold", 0) != 0 && name.rfind("BAD-hold", 0) != 0) return;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return released; });
  });
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
    }
    cv.notify_all();
  }
};

TEST(Engine, IdleTowerWaitsForImagesStillBeingPreprocessed) {
  // "hold.jpg" stays in preprocessing until released; "fast.jpg" is queued meanwhile and
  // waits for it (the tower is busy preprocessing) instead of running alone.
  HeldFrontends held;
  auto enc = std::make_unique<HashEncoder>();
  HashEncoder* e = enc.get();
  EngineOptions opt;
  opt.max_wait_us = 60'000'000;
  opt.preprocess_threads = 2;
  auto engine = Engine::create(std::move(enc), held.fe, opt);
  auto slow = engine->submit_images({jpeg_like("hold.jpg")});
  auto fast = engine->submit_images({jpeg_like("fast.jpg")});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(e->calls().empty());  // fast.jpg did not run alone
  held.release();
  // Far below max_wait: the batch left as soon as nothing more was being preprocessed.
  ASSERT_EQ(slow.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  fast.get();
  EXPECT_EQ(e->batch_sizes(true), (std::vector<int>{2}));
}

TEST(Engine, FailedPreprocessingClosesTheCoalescingWindow) {
  HeldFrontends held;
  EngineOptions opt;
  opt.max_wait_us = 60'000'000;
  opt.preprocess_threads = 2;
  auto engine = Engine::create(std::make_unique<HashEncoder>(), held.fe, opt);
  auto bad = engine->submit_images({jpeg_like("BAD-hold.jpg")});
  auto ok = engine->submit_images({jpeg_like("ok.jpg")});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  held.release();  // BAD-hold.jpg now fails: nothing is left upstream, ok.jpg must go
  ASSERT_EQ(ok.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(ok.get().n, 1);
  EXPECT_THROW(bad.get(), Error);
}

TEST(Engine, FullQueueRejectsWithOverloadedAndRecovers) {
  EngineOptions opt;
  opt.max_queue = 4;
  auto f = make_engine(opt);
  f.enc->close_gate();
  std::vector<std::future<Embeddings>> ok;
  for (int i = 0; i < 4; ++i) ok.push_back(f.engine->submit_texts({cat("q", i)}));
  EXPECT_EQ(f.engine->queue_depth_texts(), 4);
  try {
    f.engine->submit_texts({"one too many"});
    FAIL() << "expected kOverloaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOverloaded);
    EXPECT_NE(std::string(e.what()).find("text queue is full"), std::string::npos);
  }
  // The image tower has its own queue.
  auto img = f.engine->submit_images({ImageInput::preprocessed(pixels_for(1))});
  EXPECT_EQ(f.engine->counters().overloaded, 1u);
  f.enc->open_gate();
  for (auto& r : ok) r.get();
  img.get();
  EXPECT_EQ(f.engine->queue_depth_texts(), 0);
  // A request larger than the whole queue still gets in when the queue is empty.
  std::vector<std::string> many(10, "x");
  EXPECT_EQ(f.engine->embed_texts(many).n, 10);
  EXPECT_NE(f.engine->metrics_text().find("clipserve_overloaded_total{tower=\"text\"} 1"),
            std::string::npos);
}

TEST(Engine, BadImageFailsOnlyItsRequestAndNamesTheInput) {
  auto f = make_engine();
  auto good = f.engine->submit_images({jpeg_like("good.jpg")});
  auto bad = f.engine->submit_images({jpeg_like("fine.jpg"), jpeg_like("BAD-upload.png")});
  try {
    bad.get();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("BAD-upload.png"), std::string::npos) << e.what();
  }
  EXPECT_EQ(good.get().n, 1);
  EXPECT_EQ(f.engine->queue_depth_images(), 0);
}

TEST(Engine, BadArgumentsThrowAtSubmissionNamingTheInput) {
  auto f = make_engine();
  try {
    f.engine->submit_texts({"fine", std::string("bad \xff text")});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("texts[1]"), std::string::npos) << e.what();
  }
  try {
    f.engine->submit_images({ImageInput::preprocessed(std::vector<float>(10), "t.npy")});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.npy"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.engine->submit_texts({}), Error);
  EXPECT_THROW(f.engine->submit_images({}), Error);
  EXPECT_THROW(f.engine->submit_images({ImageInput::encoded({}, "empty.jpg")}), Error);
  EXPECT_EQ(f.engine->queue_depth_texts(), 0);
}

TEST(Engine, ClassifyIsOpenClipZeroShotMath) {
  auto f = make_engine();
  const std::vector<std::string> labels{"dog", "cat", "red car"};
  const std::vector<std::string> templates{"a photo of a {}.", "a drawing of the {}."};
  auto img = jpeg_like("picture.jpg");
  LabelQuery q{"", labels, templates, 0};
  auto res = f.engine->classify({img, jpeg_like("other.jpg")}, q);
  ASSERT_EQ(res.images.size(), 2u);
  EXPECT_EQ(res.text_encoded, 6);

  // Independent computation from the engine's own embeddings.
  auto x = f.engine->embed_images({img});
  std::vector<double> logits;
  for (const auto& l : labels) {
    std::vector<std::string> prompts;
    for (const auto& t : templates) prompts.push_back(Engine::apply_template(t, l));
    auto p = f.engine->embed_texts(prompts);  // unit rows
    std::vector<double> w(8, 0.0);
    for (int t = 0; t < 2; ++t)
      for (int d = 0; d < 8; ++d) w[d] += p.row(t)[d] / 2.0;
    double n = 0;
    for (double v : w) n += v * v;
    double cos = 0;
    for (int d = 0; d < 8; ++d) cos += x.row(0)[d] * w[d] / std::sqrt(n);
    logits.push_back(100.0 * cos);
  }
  double mx = *std::max_element(logits.begin(), logits.end()), sum = 0;
  for (double v : logits) sum += std::exp(v - mx);
  double total = 0;
  for (const auto& s : res.images[0]) {
    const size_t l = std::find(labels.begin(), labels.end(), s.label) - labels.begin();
    ASSERT_LT(l, labels.size());
    EXPECT_NEAR(s.prob, std::exp(logits[l] - mx) / sum, 1e-5) << s.label;
    EXPECT_NEAR(s.cosine, logits[l] / 100.0, 1e-5) << s.label;
    total += s.prob;
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
  for (size_t i = 1; i < res.images[0].size(); ++i) {
    EXPECT_GE(res.images[0][i - 1].prob, res.images[0][i].prob);
  }
  q.top_k = 1;
  EXPECT_EQ(f.engine->classify({img}, q).images[0].size(), 1u);
}

TEST(Engine, InlineLabelFeaturesAreCachedByModelTemplateAndText) {
  auto f = make_engine();
  LabelQuery q{"", {"dog", "cat"}, {"a photo of a {}."}, 0};
  auto first = f.engine->classify({jpeg_like("a.jpg")}, q);
  EXPECT_EQ(first.text_encoded, 2);
  const auto before = f.engine->counters();
  auto second = f.engine->classify({jpeg_like("a.jpg")}, q);
  EXPECT_EQ(second.text_encoded, 0);
  const auto after = f.engine->counters();
  EXPECT_EQ(after.text_items, before.text_items);  // no text encode at all
  EXPECT_EQ(after.label_cache_hits, before.label_cache_hits + 2);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(first.images[0][i].prob, second.images[0][i].prob);
  // A new template or label misses only for the new prompts.
  q.labels = {"dog", "bird"};
  EXPECT_EQ(f.engine->classify({jpeg_like("a.jpg")}, q).text_encoded, 1);
  q.templates = {"itap of a {}."};
  EXPECT_EQ(f.engine->classify({jpeg_like("a.jpg")}, q).text_encoded, 2);
}

TEST(Engine, LabelCacheEvictsLeastRecentlyUsed) {
  EngineOptions opt;
  opt.label_cache_entries = 2;
  auto f = make_engine(opt);
  LabelQuery q{"", {"a", "b"}, {}, 0};
  EXPECT_EQ(f.engine->classify({jpeg_like("i")}, q).text_encoded, 2);
  q.labels = {"c"};
  EXPECT_EQ(f.engine->classify({jpeg_like("i")}, q).text_encoded, 1);  // evicts "a"
  q.labels = {"b", "c"};
  EXPECT_EQ(f.engine->classify({jpeg_like("i")}, q).text_encoded, 0);
  q.labels = {"a"};
  EXPECT_EQ(f.engine->classify({jpeg_like("i")}, q).text_encoded, 1);
}

TEST(Engine, NamedLabelSetsAreComputedOnceAndReplaceable) {
  auto f = make_engine();
  EXPECT_FALSE(f.engine->put_label_set("pets", {"dog", "cat"}, Engine::simple_templates()));
  const auto items = f.engine->counters().text_items;
  LabelQuery named{"pets", {}, {}, 0};
  auto a = f.engine->classify({jpeg_like("x.jpg")}, named);
  EXPECT_EQ(f.engine->counters().text_items, items);
  EXPECT_EQ(a.text_encoded, 0);
  LabelQuery inl{"", {"dog", "cat"}, {"a photo of a {}."}, 0};
  auto b = f.engine->classify({jpeg_like("x.jpg")}, inl);
  ASSERT_EQ(a.images[0].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(a.images[0][i].label, b.images[0][i].label);
    EXPECT_EQ(a.images[0][i].prob, b.images[0][i].prob);
  }
  auto info = f.engine->get_label_set("pets");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->labels, (std::vector<std::string>{"dog", "cat"}));
  EXPECT_TRUE(f.engine->put_label_set("pets", {"fish"}, {}));
  EXPECT_EQ(f.engine->classify({jpeg_like("x.jpg")}, named).images[0][0].label, "fish");
  EXPECT_EQ(f.engine->label_set_names(), (std::vector<std::string>{"pets"}));
  EXPECT_TRUE(f.engine->delete_label_set("pets"));
  EXPECT_FALSE(f.engine->delete_label_set("pets"));
  try {
    f.engine->classify({jpeg_like("x.jpg")}, named);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  EXPECT_THROW(f.engine->put_label_set("bad", {"x"}, {"no placeholder"}), Error);
  EXPECT_THROW(f.engine->put_label_set("bad", {}, {}), Error);
}

TEST(Engine, WarmUpRunsEveryBucketBeforeReady) {
  EngineOptions opt;
  opt.max_batch = 8;
  opt.warmup_text_lengths = {8, 77};
  auto f = make_engine(opt);
  EXPECT_FALSE(f.engine->ready());
  f.engine->warm_up();
  EXPECT_TRUE(f.engine->ready());
  EXPECT_EQ(f.enc->batch_sizes(true), (std::vector<int>{1, 2, 4, 8}));
  std::vector<std::pair<int, int>> text;
  for (const auto& c : f.enc->calls()) {
    if (!c.image) text.push_back({c.n, c.longest});
  }
  EXPECT_EQ(text, (std::vector<std::pair<int, int>>{
                      {1, 8}, {2, 8}, {4, 8}, {8, 8}, {1, 77}, {2, 77}, {4, 77}, {8, 77}}));
  EXPECT_NE(f.engine->metrics_text().find("clipserve_ready 1"), std::string::npos);
}

TEST(Engine, WarmUpCanRunConcurrentlyWithReadinessChecks) {
  auto f = make_engine();
  f.enc->close_gate();
  std::thread t([&] { f.engine->warm_up(); });
  f.enc->wait_calls(1);
  EXPECT_FALSE(f.engine->ready());
  f.enc->open_gate();
  t.join();
  EXPECT_TRUE(f.engine->ready());
}

TEST(Engine, StageTimingsAreFilled) {
  auto f = make_engine();
  f.enc->set_delay_ms(20);
  auto e = f.engine->embed_images({jpeg_like("a.jpg"), jpeg_like("b.jpg")});
  EXPECT_GE(e.timings.encode_ms, 19.0);
  EXPECT_GE(e.timings.total_ms, e.timings.encode_ms);
  EXPECT_GE(e.timings.batches, 1);
  EXPECT_GT(e.timings.decode_ms, 0.0);  // the fake front-end reports it
  const std::string m = f.engine->metrics_text();
  EXPECT_NE(m.find("clipserve_stage_seconds_count{tower=\"image\",stage=\"encode\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("clipserve_batch_size_sum{tower=\"image\"} 2\n"), std::string::npos) << m;
}

TEST(Engine, ConcurrentClientsGetTheirOwnResults) {
  EngineOptions opt;
  opt.max_batch = 8;
  opt.max_wait_us = 500;
  auto f = make_engine(opt);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string s = cat("client ", t).append(cat(" item ", i));
        auto a = f.engine->embed_texts({s}, false);
        auto b = f.engine->embed_images({jpeg_like(s)}, false);
        std::vector<float> wt(8), wi(8), px(192);
        HashEncoder ref;
        ref.encode_texts({test::fake_frontends().tokenize(s, 77)}, wt.data());
        test::fake_frontends().preprocess(
            std::span<const uint8_t>((const uint8_t*)s.data(), s.size()), px.data(), "", nullptr);
        ref.encode_images(px.data(), 1, wi.data());
        if (!std::equal(wt.begin(), wt.end(), a.data.begin())) mismatches++;
        if (!std::equal(wi.begin(), wi.end(), b.data.begin())) mismatches++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(f.engine->counters().text_items, 160u);
}

TEST(Engine, TemplatesAreOpenClips) {
  EXPECT_EQ(Engine::imagenet_templates().size(), 80u);
  EXPECT_EQ(Engine::imagenet_templates().front(), "a bad photo of a {}.");
  EXPECT_EQ(Engine::imagenet_templates().back(), "a tattoo of the {}.");
  EXPECT_EQ(Engine::simple_templates(), (std::vector<std::string>{"a photo of a {}."}));
  EXPECT_EQ(Engine::apply_template("a {} in a video game.", "dog"), "a dog in a video game.");
  EXPECT_THROW(Engine::apply_template("nothing", "dog"), Error);
}

TEST(Metrics, RendersPrometheusText) {
  metrics::Registry r;
  r.counter("x_total", "help x", {{"a", "1"}}).inc(3);
  r.gauge("g", "help g").set(-2);
  auto& h = r.histogram("h_seconds", "help h", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const std::string s = r.render();
  EXPECT_NE(s.find("# TYPE x_total counter\nx_total{a=\"1\"} 3\n"), std::string::npos) << s;
  EXPECT_NE(s.find("g -2\n"), std::string::npos);
  EXPECT_NE(s.find("h_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << s;
  EXPECT_NE(s.find("h_seconds_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(s.find("h_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(s.find("h_seconds_count 3\n"), std::string::npos);
}

// --- The real synthetic tiny model: engine results equal the library's own pieces. ---

std::vector<float> unit(std::vector<float> v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(s));
  return v;
}

TEST(EngineTinyModel, EmbeddingsMatchTheLibrary) {
  const std::string dir = test::tiny_model_dir();
  EngineOptions opt;
  opt.max_batch = 4;
  auto engine = Engine::load(dir, opt);
  ASSERT_TRUE(engine->ready());
  EXPECT_EQ(engine->model_id(), "tiny");
  auto enc = Encoder::load(dir, {});
  const int dim = enc->embed_dim();

  const auto jpeg = test::read_bytes(test::data_dir() + "/engine/photo_640x425.jpg");
  ASSERT_GT(jpeg.size(), 1000u);
  std::vector<float> px(3 * 224 * 224), want_i(dim);
  preprocess_image(jpeg, PreprocessOptions::from(enc->config().preprocess), px.data(), "photo");
  enc->encode_images(px.data(), 1, want_i.data());
  std::vector<float> want_t(dim);
  enc->encode_texts({Tokenizer::get().encode("a photo of a dog.").ids}, want_t.data());

  // Eight concurrent single-image requests (batched by the engine) and texts.
  std::vector<std::future<Embeddings>> imgs;
  for (int i = 0; i < 8; ++i) imgs.push_back(engine->submit_images({ImageInput::encoded(jpeg)}));
  auto t = engine->embed_texts({"a photo of a dog."});
  for (auto& f : imgs) {
    auto e = f.get();
    EXPECT_GE(test::cosine({e.row(0), size_t(dim)}, unit(want_i)), 0.99999);
  }
  EXPECT_GE(test::cosine({t.row(0), size_t(dim)}, unit(want_t)), 0.99999);
  auto raw = engine->embed_images({ImageInput::preprocessed(px)}, /*normalize=*/false);
  EXPECT_LE(test::max_abs_diff({raw.row(0), size_t(dim)}, want_i), 1e-5f);
}

// Encoder calls from any thread run on the compute thread (core/compute_thread.h): callers
// never open OpenMP pools of their own, which would make libgomp stop spinning between
// parallel regions (a text query 2-3x slower).
TEST(EngineTinyModel, EncoderCallsShareOneOpenMpPool) {
  if (!compute_thread_enabled()) GTEST_SKIP() << "CLIPSERVE_COMPUTE_THREAD=off";
  EncoderOptions eo;
  eo.threads = 2;
  auto enc = Encoder::load(test::tiny_model_dir(), eo);
  const int s = enc->config().vision.image_size, dim = enc->embed_dim();
  const auto ids = Tokenizer::get().encode("a photo of a dog.").ids;
  auto call = [&] {
    std::vector<float> px(3L * s * s, 0.1f), out(2 * dim);
    enc->encode_images(px.data(), 1, out.data());
    enc->encode_texts({ids, ids}, out.data());
  };
  call();  // the compute thread and its pool exist from here on
  EXPECT_EQ(test::threads_left_by_callers(3, call), 0);
}

TEST(EngineTinyModel, ClassifyMatchesOpenClipRecipeOnLibraryFeatures) {
  const std::string dir = test::tiny_model_dir();
  auto engine = Engine::load(dir, {});
  auto enc = Encoder::load(dir, {});
  const int dim = enc->embed_dim();
  const auto jpeg = test::read_bytes(test::data_dir() + "/engine/photo_640x425.jpg");
  const std::vector<std::string> labels{"dog", "cat", "mountain"};
  const auto& templates = Engine::imagenet_templates();
  LabelQuery q{"", labels, templates, 0};
  auto res = engine->classify({ImageInput::encoded(jpeg)}, q);
  EXPECT_EQ(res.text_encoded, 240);

  std::vector<float> px(3 * 224 * 224), x(dim);
  preprocess_image(jpeg, PreprocessOptions::from(enc->config().preprocess), px.data(), "photo");
  enc->encode_images(px.data(), 1, x.data());
  x = unit(x);
  std::vector<double> logits;
  for (const auto& l : labels) {
    std::vector<double> w(dim, 0.0);
    for (const auto& t : templates) {
      std::vector<float> f(dim);
      enc->encode_texts({Tokenizer::get().encode(Engine::apply_template(t, l)).ids}, f.data());
      f = unit(f);
      for (int d = 0; d < dim; ++d) w[d] += f[d] / templates.size();
    }
    double n = 0, c = 0;
    for (double v : w) n += v * v;
    for (int d = 0; d < dim; ++d) c += x[d] * w[d] / std::sqrt(n);
    logits.push_back(enc->logit_scale() * c);
  }
  double mx = *std::max_element(logits.begin(), logits.end()), sum = 0;
  for (double v : logits) sum += std::exp(v - mx);
  for (const auto& s : res.images[0]) {
    const size_t l = std::find(labels.begin(), labels.end(), s.label) - labels.begin();
    ASSERT_LT(l, labels.size());
    EXPECT_NEAR(s.prob, std::exp(logits[l] - mx) / sum, 1e-4) << s.label;
  }
}

}  // namespace
}  // namespace clipserve

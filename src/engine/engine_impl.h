// Engine internals shared by engine.cpp (admission, batching, embeddings, warm-up) and
// engine_classify.cpp (label features, zero-shot classification, label sets).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "clipserve/engine.h"
#include "core/check.h"
#include "engine/batcher.h"
#include "engine/lru_cache.h"
#include "engine/metrics.h"
#include "engine/thread_pool.h"
#include "engine/warmup_image.h"

namespace clipserve {

namespace engine_internal {

using engine::Clock;

inline double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

inline void l2_normalize(float* v, int dim) {
  double s = 0;
  for (int i = 0; i < dim; ++i) s += static_cast<double>(v[i]) * v[i];
  const double n = std::sqrt(s);
  // open_clip's F.normalize clamps the norm at eps = 1e-12. A true division (not a multiply
  // by the reciprocal), as `clipserve embed` computes it: both give identical rows.
  const double d = std::max(n, 1e-12);
  for (int i = 0; i < dim; ++i) v[i] = static_cast<float>(v[i] / d);
}

enum class Tower { kImage, kText };
inline const char* tower_name(Tower t) { return t == Tower::kImage ? "image" : "text"; }

// One request's items travelling through a tower: inputs, outputs, error and timings.
struct Job {
  Tower tower = Tower::kImage;
  Clock::time_point start;
  int n = 0;
  int dim = 0;
  bool normalize = true;
  std::vector<ImageInput> images;         // image jobs: inputs (bytes freed after decoding)
  std::vector<float> pixels;              // image jobs: n x 3 x S x S
  std::vector<std::vector<int32_t>> ids;  // text jobs
  std::vector<uint8_t> truncated;         // text jobs: the text had more tokens than fit
  std::vector<float> out;                 // n x dim
  std::atomic<int> remaining{0};

  std::mutex mu;  // guards everything below
  std::exception_ptr error;
  StageTimings t;
  Clock::time_point last_preprocessed;
  uint64_t last_batch = 0;
  // Called once, by whichever thread finishes the last item, with the job complete.
  std::function<void(Job&)> on_done;
};

struct ImageItem {
  std::shared_ptr<Job> job;
  int index;
};
using TextItem = ImageItem;

// Label features of a registered set or an inline query: L x dim, unit rows.
struct LabelFeatures {
  std::vector<std::string> labels;
  std::vector<std::string> templates;
  std::vector<float> weights;
};

}  // namespace engine_internal

using namespace engine_internal;  // internal header: engine*.cpp only

struct Engine::Impl {
  EngineOptions opt;
  std::unique_ptr<Encoder> encoder;
  EngineFrontends fe;
  ModelConfig cfg;
  std::string model_id;
  int dim = 0;
  size_t image_elems = 0;
  int context_length = 77;
  float logit_scale = 1;
  std::atomic<bool> ready{false};

  std::mutex encoder_mu;  // the Encoder is not thread-safe: one batch at a time
  std::atomic<uint64_t> batch_counter{0};
  std::atomic<int> admitted_images{0}, admitted_texts{0};
  std::atomic<int> preprocessing_images{0};  // posted to the pool, not yet queued

  std::shared_ptr<metrics::Registry> reg_owner;  // opt.metrics, or the engine's own
  metrics::Registry& reg;
  metrics::Counter *image_items, *text_items, *image_batches, *text_batches, *cache_hits,
      *cache_misses, *overloaded_images, *overloaded_texts, *request_errors;
  metrics::Histogram *image_batch_size, *text_batch_size;
  metrics::Gauge *queue_images, *queue_texts, *ready_gauge;
  std::map<std::string, metrics::Histogram*> stage_hist;  // "tower/stage"

  engine::LruCache<std::vector<float>> label_cache;
  mutable std::shared_mutex sets_mu;
  std::map<std::string, std::shared_ptr<const LabelFeatures>> label_sets;

  // Declared last: destroyed first, so queued work finishes while the rest still exists.
  std::unique_ptr<engine::ThreadPool> pool;
  std::unique_ptr<engine::Batcher<ImageItem>> image_batcher;
  std::unique_ptr<engine::Batcher<TextItem>> text_batcher;

  Impl(std::unique_ptr<Encoder> enc, EngineFrontends f, const EngineOptions& o)
      : opt(o),
        encoder(std::move(enc)),
        fe(std::move(f)),
        reg_owner(o.metrics ? o.metrics : std::make_shared<metrics::Registry>()),
        reg(*reg_owner),
        label_cache(o.label_cache_entries) {
    CS_CHECK_ARG(encoder != nullptr, "Engine needs an encoder");
    CS_CHECK_ARG(fe.tokenize && fe.preprocess, "Engine needs tokenize and preprocess front-ends");
    CS_CHECK_ARG(opt.max_batch >= 1, "max_batch must be >= 1, got ", opt.max_batch);
    CS_CHECK_ARG(opt.max_queue >= 1, "max_queue must be >= 1, got ", opt.max_queue);
    cfg = encoder->config();
    dim = encoder->embed_dim();
    const int s = cfg.vision.image_size;
    image_elems = static_cast<size_t>(3) * s * s;
    context_length = cfg.text.context_length;
    logit_scale = encoder->logit_scale();
    model_id = opt.model_id.empty() ? cfg.name : opt.model_id;

    // Every series carries opt.metric_labels (a server hosting several models names each).
    auto L = [this](metrics::Labels l) {
      l.insert(l.begin(), opt.metric_labels.begin(), opt.metric_labels.end());
      return l;
    };
    image_items =
        &reg.counter("clipserve_items_encoded_total", "Inputs encoded", L({{"tower", "image"}}));
    text_items =
        &reg.counter("clipserve_items_encoded_total", "Inputs encoded", L({{"tower", "text"}}));
    image_batches = &reg.counter("clipserve_batches_total", "Batches run", L({{"tower", "image"}}));
    text_batches = &reg.counter("clipserve_batches_total", "Batches run", L({{"tower", "text"}}));
    cache_hits = &reg.counter("clipserve_label_cache_hits_total",
                              "Label prompt features found in the cache", L({}));
    cache_misses = &reg.counter("clipserve_label_cache_misses_total",
                                "Label prompt features that had to be encoded", L({}));
    overloaded_images =
        &reg.counter("clipserve_overloaded_total", "Requests rejected because the queue was full",
                     L({{"tower", "image"}}));
    overloaded_texts =
        &reg.counter("clipserve_overloaded_total", "Requests rejected because the queue was full",
                     L({{"tower", "text"}}));
    request_errors = &reg.counter("clipserve_engine_request_errors_total",
                                  "Engine requests that failed after admission", L({}));
    const auto bb = metrics::power_of_two_buckets(opt.max_batch);
    image_batch_size =
        &reg.histogram("clipserve_batch_size", "Items per batch", bb, L({{"tower", "image"}}));
    text_batch_size =
        &reg.histogram("clipserve_batch_size", "Items per batch", bb, L({{"tower", "text"}}));
    queue_images = &reg.gauge("clipserve_queue_depth", "Items admitted and not yet finished",
                              L({{"tower", "image"}}));
    queue_texts = &reg.gauge("clipserve_queue_depth", "Items admitted and not yet finished",
                             L({{"tower", "text"}}));
    ready_gauge = &reg.gauge("clipserve_ready", "1 once warm-up has finished", L({}));
    ready_gauge->set(0);  // a shared registry may hold the gauge of an unloaded predecessor
    for (const char* tower : {"image", "text", "classify"}) {
      for (const char* stage :
           {"decode", "preprocess", "queue", "encode", "postprocess", "total"}) {
        stage_hist[std::string(tower) + "/" + stage] =
            &reg.histogram("clipserve_stage_seconds", "Per-request time spent in each stage",
                           metrics::latency_buckets(), L({{"tower", tower}, {"stage", stage}}));
      }
    }

    pool = std::make_unique<engine::ThreadPool>(opt.preprocess_threads);
    image_batcher = std::make_unique<engine::Batcher<ImageItem>>(
        opt.max_batch, opt.max_wait_us,
        [this](auto& batch, Clock::time_point started) {
          run_batch(Tower::kImage, batch, started);
        },
        [this] { return preprocessing_images.load(); });
    text_batcher = std::make_unique<engine::Batcher<TextItem>>(
        opt.max_batch, opt.max_wait_us, [this](auto& batch, Clock::time_point started) {
          run_batch(Tower::kText, batch, started);
        });
  }

  ~Impl() {
    // Batchers drain their queues; the pool must finish first since it feeds the image queue.
    pool.reset();
    image_batcher.reset();
    text_batcher.reset();
  }

  std::atomic<int>& admitted(Tower t) {
    return t == Tower::kImage ? admitted_images : admitted_texts;
  }
  metrics::Gauge& queue_gauge(Tower t) { return t == Tower::kImage ? *queue_images : *queue_texts; }

  // Reserves queue room for n items; a request larger than the queue gets in when it is empty.
  void admit(Tower t, int n, bool force) {
    auto& a = admitted(t);
    int cur = a.load();
    do {
      if (!force && cur > 0 && cur + n > opt.max_queue) {
        (t == Tower::kImage ? overloaded_images : overloaded_texts)->inc();
        CS_THROW(kOverloaded, "the ", tower_name(t), " queue is full (", cur, " of ", opt.max_queue,
                 " items waiting, request has ", n, "); retry later");
      }
    } while (!a.compare_exchange_weak(cur, cur + n));
    queue_gauge(t).add(n);
  }
  void release(Tower t, int n) {
    admitted(t).fetch_sub(n);
    queue_gauge(t).add(-n);
  }

  void observe(Tower t, const char* stage, double ms) { observe(tower_name(t), stage, ms); }
  void observe(const char* tower, const char* stage, double ms) {
    stage_hist.at(std::string(tower) + "/" + stage)->observe(ms / 1000.0);
  }

  // The last item of a job: normalize, time, and hand over.
  void finish_item(const std::shared_ptr<Job>& job) {
    release(job->tower, 1);
    if (job->remaining.fetch_sub(1) != 1) return;
    const auto post_start = Clock::now();
    bool failed;
    {
      std::lock_guard<std::mutex> lock(job->mu);
      failed = job->error != nullptr;
      if (job->tower == Tower::kImage) {
        job->t.preprocess_ms = ms_between(job->start, job->last_preprocessed);
      }
    }
    if (!failed && job->normalize) {
      for (int i = 0; i < job->n; ++i)
        l2_normalize(job->out.data() + size_t(i) * job->dim, job->dim);
    }
    job->t.postprocess_ms = ms_between(post_start, Clock::now());
    job->t.total_ms = ms_between(job->start, Clock::now());
    if (failed) {
      request_errors->inc();
    } else {
      const Tower t = job->tower;
      observe(t, "decode", job->t.decode_ms);
      observe(t, "preprocess", job->t.preprocess_ms);
      observe(t, "queue", job->t.queue_ms);
      observe(t, "encode", job->t.encode_ms);
      observe(t, "postprocess", job->t.postprocess_ms);
      observe(t, "total", job->t.total_ms);
    }
    job->on_done(*job);
  }

  void fail_item(const std::shared_ptr<Job>& job, std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(job->mu);
      if (!job->error) job->error = e;
    }
    finish_item(job);
  }

  template <typename Batch>
  void run_batch(Tower tower, Batch& batch, Clock::time_point started) {
    const int n = static_cast<int>(batch.size());
    std::vector<float> out(static_cast<size_t>(n) * dim);
    std::exception_ptr error;
    Clock::time_point enc_start, enc_end;
    try {
      if (tower == Tower::kImage) {
        std::vector<float> pixels(image_elems * n);
        for (int i = 0; i < n; ++i) {
          const auto& it = batch[i].item;
          std::memcpy(pixels.data() + image_elems * i,
                      it.job->pixels.data() + image_elems * it.index, image_elems * sizeof(float));
        }
        std::lock_guard<std::mutex> lock(encoder_mu);
        enc_start = Clock::now();
        encoder->encode_images(pixels.data(), n, out.data());
        enc_end = Clock::now();
      } else {
        std::vector<std::vector<int32_t>> ids(n);
        for (int i = 0; i < n; ++i) ids[i] = batch[i].item.job->ids[batch[i].item.index];
        std::lock_guard<std::mutex> lock(encoder_mu);
        enc_start = Clock::now();
        encoder->encode_texts(ids, out.data());
        enc_end = Clock::now();
      }
    } catch (...) {
      error = std::current_exception();
      enc_start = enc_end = Clock::now();
    }
    const uint64_t batch_id = ++batch_counter;
    const double enc_ms = ms_between(enc_start, enc_end);
    if (!error) {
      (tower == Tower::kImage ? image_items : text_items)->inc(n);
      (tower == Tower::kImage ? image_batches : text_batches)->inc();
      (tower == Tower::kImage ? image_batch_size : text_batch_size)->observe(n);
    }
    for (int i = 0; i < n; ++i) {
      auto& job = batch[i].item.job;
      const int idx = batch[i].item.index;
      {
        std::lock_guard<std::mutex> lock(job->mu);
        job->t.queue_ms = std::max(job->t.queue_ms, ms_between(batch[i].enqueued, started));
        if (job->last_batch != batch_id) {
          job->last_batch = batch_id;
          job->t.encode_ms += enc_ms;
          job->t.batches++;
          job->t.max_batch = std::max(job->t.max_batch, n);
        }
      }
      if (error) {
        fail_item(job, error);
      } else {
        std::memcpy(job->out.data() + size_t(idx) * dim, out.data() + size_t(i) * dim,
                    dim * sizeof(float));
        finish_item(job);
      }
    }
  }

  // Starts an image job; on_done runs when every item is encoded or failed.
  void start_images(std::vector<ImageInput> images, bool normalize, bool force,
                    std::function<void(Job&)> on_done) {
    const int n = static_cast<int>(images.size());
    CS_CHECK_ARG(n > 0, "no images given");
    for (int i = 0; i < n; ++i) {
      const auto& im = images[i];
      const std::string name = im.name.empty() ? "images[" + std::to_string(i) + "]" : im.name;
      if (!im.pixels.empty()) {
        CS_CHECK_ARG(im.pixels.size() == image_elems, name, ": preprocessed tensor has ",
                     im.pixels.size(), " floats, the model needs 3 x ", cfg.vision.image_size,
                     " x ", cfg.vision.image_size, " = ", image_elems);
      } else {
        CS_CHECK_ARG(!im.bytes.empty(), name, ": empty image");
      }
    }
    auto job = std::make_shared<Job>();
    job->tower = Tower::kImage;
    job->start = Clock::now();
    job->last_preprocessed = job->start;
    job->n = n;
    job->dim = dim;
    job->normalize = normalize;
    job->images = std::move(images);
    job->pixels.resize(image_elems * n);
    job->out.resize(static_cast<size_t>(n) * dim);
    job->remaining = n;
    job->on_done = std::move(on_done);
    admit(Tower::kImage, n, force);
    for (int i = 0; i < n; ++i) {
      if (!job->images[i].pixels.empty()) {
        std::memcpy(job->pixels.data() + image_elems * i, job->images[i].pixels.data(),
                    image_elems * sizeof(float));
        job->images[i].pixels = {};
        image_batcher->push(ImageItem{job, i});
        continue;
      }
      preprocessing_images++;
      pool->post([this, job, i] {
        auto& im = job->images[i];
        const std::string name = im.name.empty() ? "images[" + std::to_string(i) + "]" : im.name;
        double decode_ms = 0;
        try {
          fe.preprocess(im.bytes, job->pixels.data() + image_elems * i, name, &decode_ms);
        } catch (...) {
          preprocessing_images--;
          image_batcher->notify();  // a batch may be waiting for this item
          fail_item(job, std::current_exception());
          return;
        }
        im.bytes = {};
        bool sibling_failed;
        {
          std::lock_guard<std::mutex> lock(job->mu);
          job->t.decode_ms = std::max(job->t.decode_ms, decode_ms);
          job->last_preprocessed = std::max(job->last_preprocessed, Clock::now());
          sibling_failed = job->error != nullptr;
        }
        if (sibling_failed) {  // the request fails anyway: spare the encoder
          preprocessing_images--;
          image_batcher->notify();
          finish_item(job);
          return;
        }
        // Queue first, then stop counting it upstream: a waiting batch never misses it.
        image_batcher->push(ImageItem{job, i});
        preprocessing_images--;
        image_batcher->notify();
      });
    }
  }

  void start_texts(const std::vector<std::string>& texts, bool normalize, bool force,
                   std::function<void(Job&)> on_done) {
    const int n = static_cast<int>(texts.size());
    CS_CHECK_ARG(n > 0, "no texts given");
    auto job = std::make_shared<Job>();
    job->tower = Tower::kText;
    job->start = Clock::now();
    job->n = n;
    job->dim = dim;
    job->normalize = normalize;
    job->ids.resize(n);
    job->truncated.assign(n, 0);
    for (int i = 0; i < n; ++i) {
      try {
        // One id more than fits tells a text that was cut from one that just fits; the cut
        // keeps open_clip's rule (first context_length ids, the last one the end token).
        job->ids[i] = fe.tokenize(texts[i], context_length + 1);
      } catch (const Error& e) {
        throw Error(e.code(), "texts[" + std::to_string(i) + "]: " + e.what());
      }
      if (static_cast<int>(job->ids[i].size()) > context_length) {
        const int32_t end = job->ids[i].back();
        job->ids[i].resize(context_length);
        job->ids[i].back() = end;
        job->truncated[i] = 1;
      }
      CS_CHECK_ARG(!job->ids[i].empty() && static_cast<int>(job->ids[i].size()) <= context_length,
                   "texts[", i, "]: tokenizer returned ", job->ids[i].size(), " ids");
    }
    job->t.preprocess_ms = ms_between(job->start, Clock::now());
    job->out.resize(static_cast<size_t>(n) * dim);
    job->remaining = n;
    job->on_done = std::move(on_done);
    admit(Tower::kText, n, force);
    for (int i = 0; i < n; ++i) text_batcher->push(TextItem{job, i});
  }

  std::string cache_key(const std::string& tmpl, const std::string& label) const {
    // '\x1f' (unit separator) cannot collide with the printable parts of a key.
    return model_id + '\x1f' + tmpl + '\x1f' + label;
  }

  // Averages the templates' unit prompt features per label and re-normalizes (open_clip's
  // zero_shot_classifier). prompt_feats: (label-major) L x T x dim.
  std::vector<float> class_weights(const std::vector<float>& prompt_feats, int L, int T) const {
    std::vector<float> w(static_cast<size_t>(L) * dim, 0.0f);
    for (int l = 0; l < L; ++l) {
      float* row = w.data() + size_t(l) * dim;
      for (int t = 0; t < T; ++t) {
        const float* p = prompt_feats.data() + (size_t(l) * T + t) * dim;
        for (int d = 0; d < dim; ++d) row[d] += p[d];
      }
      for (int d = 0; d < dim; ++d) row[d] /= static_cast<float>(T);
      l2_normalize(row, dim);
    }
    return w;
  }

  // Resolves inline labels through the cache; calls done(features) once all are known,
  // encoding the misses as one text request. Returns the number of prompts encoded.
  int resolve_labels(std::vector<std::string> labels, std::vector<std::string> templates,
                     bool force,
                     std::function<void(std::shared_ptr<const LabelFeatures>, std::exception_ptr,
                                        const StageTimings*)>
                         done) {
    CS_CHECK_ARG(!labels.empty(), "no labels given");
    if (templates.empty()) templates = Engine::simple_templates();
    for (size_t i = 0; i < labels.size(); ++i) {
      CS_CHECK_ARG(!labels[i].empty(), "labels[", i, "] is empty");
    }
    const int L = static_cast<int>(labels.size()), T = static_cast<int>(templates.size());
    auto feats = std::make_shared<std::vector<float>>(static_cast<size_t>(L) * T * dim);
    std::vector<std::string> miss_prompts, miss_keys;
    std::vector<size_t> miss_slots;
    for (int l = 0; l < L; ++l) {
      for (int t = 0; t < T; ++t) {
        std::string prompt = Engine::apply_template(templates[t], labels[l]);
        std::string key = cache_key(templates[t], labels[l]);
        const size_t slot = size_t(l) * T + t;
        if (auto hit = label_cache.get(key); hit && static_cast<int>(hit->size()) == dim) {
          std::memcpy(feats->data() + slot * dim, hit->data(), dim * sizeof(float));
          cache_hits->inc();
        } else {
          miss_prompts.push_back(std::move(prompt));
          miss_keys.push_back(std::move(key));
          miss_slots.push_back(slot);
          cache_misses->inc();
        }
      }
    }
    auto out = std::make_shared<LabelFeatures>();
    out->labels = std::move(labels);
    out->templates = std::move(templates);
    if (miss_prompts.empty()) {
      out->weights = class_weights(*feats, L, T);
      done(out, nullptr, nullptr);
      return 0;
    }
    const int encoded = static_cast<int>(miss_prompts.size());
    start_texts(miss_prompts, /*normalize=*/true, force,
                [this, feats, out, L, T, miss_keys = std::move(miss_keys),
                 miss_slots = std::move(miss_slots), done = std::move(done)](Job& job) {
                  if (job.error) {
                    done(nullptr, job.error, &job.t);
                    return;
                  }
                  for (size_t m = 0; m < miss_slots.size(); ++m) {
                    const float* f = job.out.data() + m * dim;
                    std::memcpy(feats->data() + miss_slots[m] * dim, f, dim * sizeof(float));
                    label_cache.put(miss_keys[m], std::vector<float>(f, f + dim));
                  }
                  out->weights = class_weights(*feats, L, T);
                  done(out, nullptr, &job.t);
                });
    return encoded;
  }

  std::vector<std::vector<LabelScore>> score(const std::vector<float>& img, int n,
                                             const LabelFeatures& lf, int top_k) const {
    const int L = static_cast<int>(lf.labels.size());
    std::vector<std::vector<LabelScore>> res(n);
    for (int i = 0; i < n; ++i) {
      const float* x = img.data() + size_t(i) * dim;
      std::vector<double> logits(L);
      std::vector<float> cos(L);
      double mx = -INFINITY;
      for (int l = 0; l < L; ++l) {
        const float* w = lf.weights.data() + size_t(l) * dim;
        float c = 0;
        for (int d = 0; d < dim; ++d) c += x[d] * w[d];
        cos[l] = c;
        logits[l] = static_cast<double>(logit_scale * c);
        mx = std::max(mx, logits[l]);
      }
      double sum = 0;
      for (int l = 0; l < L; ++l) sum += (logits[l] = std::exp(logits[l] - mx));
      auto& r = res[i];
      r.reserve(L);
      for (int l = 0; l < L; ++l) {
        r.push_back(LabelScore{lf.labels[l], static_cast<float>(logits[l] / sum), cos[l]});
      }
      std::stable_sort(r.begin(), r.end(),
                       [](const LabelScore& a, const LabelScore& b) { return a.prob > b.prob; });
      if (top_k > 0 && top_k < L) r.resize(top_k);
    }
    return res;
  }
};

}  // namespace clipserve

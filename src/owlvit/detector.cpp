// Detector (include/clipserve/detect.h): OWL-ViT towers on one backend behind the engine's
// batcher, the heads per image, query and image-feature caches, warm-up, post-processing.
// Every backend and head call runs on the process's compute thread (core/compute_thread.h).

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>

#include "clipserve/detect.h"
#include "clipserve/image.h"
#include "clipserve/tokenizer.h"
#include "core/check.h"
#include "core/compute_thread.h"
#include "core/digest.h"
#include "engine/batcher.h"
#include "engine/lru_cache.h"
#include "engine/warmup_image.h"
#include "model/owlvit_format.h"
#include "nn/backend.h"
#include "owlvit/heads.h"
#include "owlvit/postprocess.h"

namespace clipserve {

namespace {

using engine::Clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// An image's query-independent outputs, shared by the cache and the requests using them.
struct CachedImage {
  owlvit::ImageHeads heads;
  int width = 0, height = 0;
};

struct ImageJob {
  std::vector<float> pixels;
  std::promise<std::shared_ptr<owlvit::ImageHeads>> done;
  double* queue_ms = nullptr;
  double* encode_ms = nullptr;
  int* batch = nullptr;
};

}  // namespace

struct Detector::Impl {
  DetectorOptions opt;
  LoadedOwlVit model;
  std::shared_ptr<const WeightMap> towers;  // aliases model.weights.towers
  owlvit::HeadWeights heads;
  owlvit::HeadImpl head_impl = owlvit::HeadImpl::kFast;
  std::unique_ptr<nn::Backend> backend;
  PreprocessOptions pre;
  std::string model_id;
  engine::LruCache<std::shared_ptr<const CachedImage>> images;
  engine::LruCache<std::shared_ptr<const std::vector<float>>> queries;  // normalized, T floats
  std::atomic<bool> ready{false};
  std::atomic<uint64_t> images_encoded{0}, image_batches{0}, image_hits{0}, image_misses{0},
      query_hits{0}, query_misses{0};
  std::unique_ptr<engine::Batcher<std::shared_ptr<ImageJob>>> batcher;  // last: uses the above

  Impl(const std::string& name, const DetectorOptions& o)
      : opt(o), images(o.image_cache_entries), queries(o.query_cache_entries) {
    CS_CHECK_ARG(o.max_batch >= 1 && o.max_batch <= 64, "max_batch must be in 1..64, got ",
                 o.max_batch);
    model = load_owlvit(name);
    towers = std::shared_ptr<const WeightMap>(std::shared_ptr<void>(), &model.weights.towers);
    heads = owlvit::bind_head_weights(model.config, model.weights.towers, model.weights.heads);
    nn::BackendOptions bo;
    bo.precision = o.precision;
    bo.threads = o.threads;
    run_on_compute_thread([&] { backend = nn::make_backend(o.backend, model.config, towers, bo); });
    head_impl = o.backend == "reference" ? owlvit::HeadImpl::kReference : owlvit::HeadImpl::kFast;
    pre = PreprocessOptions::from(model.config.preprocess);
    pre.size = model.config.vision.image_size;
    model_id = o.model_id.empty() ? name : o.model_id;
    batcher = std::make_unique<engine::Batcher<std::shared_ptr<ImageJob>>>(
        o.max_batch, o.max_wait_us,
        [this](std::vector<engine::Batcher<std::shared_ptr<ImageJob>>::Entry>& b,
               Clock::time_point started) { run_images(b, started); });
  }

  // Worker thread: the vision tower over the batch, then the heads per image.
  void run_images(std::vector<engine::Batcher<std::shared_ptr<ImageJob>>::Entry>& batch,
                  Clock::time_point started) {
    const int n = static_cast<int>(batch.size());
    const ModelConfig& cfg = model.config;
    const long px = 3L * cfg.vision.image_size * cfg.vision.image_size;
    const long tok = static_cast<long>(cfg.vision.tokens()) * cfg.vision.width;
    try {
      std::vector<float> pixels(px * n), hidden(tok * n);
      for (int i = 0; i < n; ++i)
        std::copy(batch[i].item->pixels.begin(), batch[i].item->pixels.end(),
                  pixels.begin() + i * px);
      std::vector<std::shared_ptr<owlvit::ImageHeads>> out(n);
      Clock::time_point run_start = started;
      run_on_compute_thread([&] {
        run_start = Clock::now();  // waiting for the compute thread counts as queueing
        backend->encode_image_tokens(pixels.data(), n, hidden.data());
        for (int i = 0; i < n; ++i) {
          out[i] = std::make_shared<owlvit::ImageHeads>(
              owlvit::run_image_heads(heads, hidden.data() + i * tok, head_impl));
        }
      });
      for (int i = 0; i < n; ++i) {
        auto& h = out[i];
        ImageJob& job = *batch[i].item;
        *job.queue_ms =
            std::chrono::duration<double, std::milli>(run_start - batch[i].enqueued).count();
        *job.encode_ms = ms_since(run_start);
        *job.batch = n;
        job.done.set_value(std::move(h));
      }
      images_encoded += n;
      ++image_batches;
    } catch (...) {
      for (auto& e : batch) {
        try {
          e.item->done.set_exception(std::current_exception());
        } catch (const std::future_error&) {
        }
      }
    }
  }

  std::shared_ptr<owlvit::ImageHeads> encode_image(std::vector<float> pixels, StageTimings& t) {
    auto job = std::make_shared<ImageJob>();
    job->pixels = std::move(pixels);
    double q = 0, e = 0;
    int b = 0;
    job->queue_ms = &q;
    job->encode_ms = &e;
    job->batch = &b;
    auto f = job->done.get_future();
    batcher->push(job);
    auto h = f.get();
    t.queue_ms += q;
    t.encode_ms += e;
    t.batches += 1;
    t.max_batch = std::max(t.max_batch, b);
    return h;
  }

  // The image's cached outputs, or preprocess + encode (caching them).
  std::shared_ptr<const CachedImage> image_of(std::span<const uint8_t> bytes,
                                              const std::string& name, StageTimings& t,
                                              bool* cached) {
    CS_CHECK_ARG(!bytes.empty(), name, ": empty image");
    const std::string key = sha256_hex(bytes);
    if (auto hit = images.get(key)) {
      ++image_hits;
      *cached = true;
      return *hit;
    }
    ++image_misses;
    *cached = false;
    const auto t0 = Clock::now();
    std::vector<float> pixels(3L * pre.size * pre.size);
    int w = 0, h = 0;
    preprocess_image(bytes, pre, pixels.data(), name, &w, &h);
    t.preprocess_ms += ms_since(t0);
    auto c = std::make_shared<CachedImage>();
    c->heads = *encode_image(std::move(pixels), t);
    c->width = w;
    c->height = h;
    images.put(key, c);
    return c;
  }

  // Normalized query embeddings (Q x T) through the cache; the misses run as one text batch
  // on the worker thread.
  std::vector<float> query_embeddings(const std::vector<std::string>& texts, bool truncate,
                                      StageTimings& t, int* encoded, std::vector<int>* truncated) {
    const int ctx = model.config.text.context_length, tw = model.config.text.width;
    std::vector<float> out(texts.size() * tw);
    std::vector<std::vector<int32_t>> ids;
    std::vector<size_t> missing;
    const auto t0 = Clock::now();
    for (size_t i = 0; i < texts.size(); ++i) {
      CS_CHECK_ARG(!texts[i].empty(), "queries[", i, "] is empty");
      const std::string key = std::string(truncate ? "t:" : "f:") + texts[i];
      Tokens tok = Tokenizer::get().encode(texts[i], ctx);
      if (tok.truncated) {
        CS_CHECK_ARG(truncate, "queries[", i, "] '", texts[i], "' is longer than ", ctx,
                     " tokens (start and end included), the most OWL-ViT's text tower takes; "
                     "shorten it or ask for truncation");
        truncated->push_back(static_cast<int>(i));
      }
      if (auto hit = queries.get(key)) {
        ++query_hits;
        std::copy((*hit)->begin(), (*hit)->end(), out.begin() + i * tw);
        continue;
      }
      ++query_misses;
      ids.push_back(std::move(tok.ids));
      missing.push_back(i);
    }
    t.preprocess_ms += ms_since(t0);
    *encoded = static_cast<int>(missing.size());
    if (missing.empty()) return out;
    std::vector<float> raw(missing.size() * tw);
    const auto t1 = Clock::now();
    // Texts first on the compute thread: a query waits for the running call only.
    run_on_compute_thread([&] { backend->encode_texts(ids, raw.data()); }, ComputePriority::kHigh);
    t.encode_ms += ms_since(t1);
    const std::vector<float> qe =
        owlvit::normalize_text_queries(raw.data(), static_cast<int>(missing.size()), tw);
    for (size_t k = 0; k < missing.size(); ++k) {
      auto v = std::make_shared<std::vector<float>>(qe.begin() + k * tw, qe.begin() + (k + 1) * tw);
      std::copy(v->begin(), v->end(), out.begin() + missing[k] * tw);
      queries.put(std::string(truncate ? "t:" : "f:") + texts[missing[k]], v);
    }
    return out;
  }

  static void check_params(const DetectParams& p) {
    CS_CHECK_ARG(p.threshold == p.threshold, "threshold is NaN");
    CS_CHECK_ARG(p.nms_iou >= 0 && p.nms_iou <= 1, "nms IoU must be in [0, 1], got ", p.nms_iou);
    CS_CHECK_ARG(p.top_k >= 0, "top_k must be >= 0, got ", p.top_k);
  }
};

Detector::Detector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Detector::~Detector() = default;

std::unique_ptr<Detector> Detector::load(const std::string& model, const DetectorOptions& opt) {
  std::unique_ptr<Detector> d(new Detector(std::make_unique<Impl>(model, opt)));
  if (opt.warmup) d->warm_up();
  d->impl_->ready = true;
  return d;
}

void Detector::warm_up() {
  Impl& m = *impl_;
  const ModelConfig& cfg = m.model.config;
  const long px = 3L * cfg.vision.image_size * cfg.vision.image_size;
  const long tok = static_cast<long>(cfg.vision.tokens()) * cfg.vision.width;
  // The request path's first-use costs: the tokenizer's tables and a JPEG decoded and resized
  // at the model's size (the first request paid ~40 ms for them).
  (void)Tokenizer::get().encode("warm up", cfg.text.context_length);
  try {
    std::vector<float> scratch(px);
    preprocess_image(engine::warmup_jpeg(), m.pre, scratch.data(), "warm-up");
  } catch (...) {
  }
  // One compute-thread call per shape, so other models' queries can run in between.
  // Every batch size the batcher can form, with the heads (their GEMMs too).
  for (int n = 1; n <= m.opt.max_batch; ++n) {
    run_on_compute_thread([&] {
      std::vector<float> pixels(px * n, 0.0f), hidden(tok * n);
      m.backend->encode_image_tokens(pixels.data(), n, hidden.data());
      owlvit::ImageHeads h = owlvit::run_image_heads(m.heads, hidden.data(), m.head_impl);
      std::vector<float> q(cfg.text.width, 0.1f);
      owlvit::class_logits(h, q.data(), 1, nullptr, m.head_impl);
    });
  }
  // Text batches: the cpu backend pads the packed rows to a multiple of 8, so one batch per
  // multiple of 8 up to 32 queries of the full 16 tokens covers every shape.
  const int ctx = cfg.text.context_length;
  for (int total = 8; total <= 32 * ctx; total += 8) {
    std::vector<std::vector<int32_t>> ids;
    for (int left = total; left > 0;) {
      const int len = std::min(left, ctx);
      std::vector<int32_t> r(len, 320);
      r.front() = Tokenizer::kStartToken;
      if (len >= 2) r.back() = Tokenizer::kEndToken;
      left -= len;
      ids.push_back(std::move(r));
    }
    std::vector<float> out(ids.size() * cfg.embed_dim);
    run_on_compute_thread([&] { m.backend->encode_texts(ids, out.data()); });
  }
  m.ready = true;
}

bool Detector::ready() const { return impl_->ready; }
const ModelConfig& Detector::config() const { return impl_->model.config; }
const std::string& Detector::model_id() const { return impl_->model_id; }
std::string Detector::backend_name() const { return impl_->backend->name(); }
std::string Detector::precision() const { return impl_->backend->precision(); }

DetectorCounters Detector::counters() const {
  const Impl& m = *impl_;
  return {m.images_encoded, m.image_batches, m.image_hits,
          m.image_misses,   m.query_hits,    m.query_misses};
}

namespace {

void fill_result(DetectionResult& r, const CachedImage& img, std::vector<float> logits, int q,
                 const std::vector<owlvit::Detection>& dets,
                 const std::vector<std::string>& labels) {
  r.image_width = img.width;
  r.image_height = img.height;
  r.boxes = img.heads.boxes();
  r.queries = q;
  r.logits = std::move(logits);
  r.pred_boxes = img.heads.pred_boxes;
  for (const owlvit::Detection& d : dets) {
    DetectedObject o;
    o.label_index = d.label;
    o.label = d.label < static_cast<int>(labels.size()) ? labels[d.label] : std::string();
    o.score = d.score;
    o.box = d.box;
    r.detections.push_back(std::move(o));
  }
}

}  // namespace

DetectionResult Detector::detect(std::span<const uint8_t> image,
                                 const std::vector<std::string>& queries,
                                 const DetectParams& params, const std::string& name) {
  const auto t0 = Clock::now();
  Impl& m = *impl_;
  Impl::check_params(params);
  CS_CHECK_ARG(!queries.empty(), "no queries: give at least one text");
  DetectionResult r;
  const std::vector<float> qe = m.query_embeddings(queries, params.truncate_queries, r.timings,
                                                   &r.queries_encoded, &r.truncated_queries);
  auto img = m.image_of(image, name, r.timings, &r.image_cached);
  const auto t1 = Clock::now();
  const int q = static_cast<int>(queries.size());
  std::vector<float> logits;
  run_on_compute_thread(
      [&] { logits = owlvit::class_logits(img->heads, qe.data(), q, nullptr, m.head_impl); },
      ComputePriority::kHigh);
  owlvit::PostprocessOptions po;
  po.threshold = params.threshold;
  po.image_width = img->width;
  po.image_height = img->height;
  po.clip_boxes = params.clip_boxes;
  po.nms_iou = params.nms_iou;
  po.sort_by_score = params.sort_by_score;
  po.top_k = params.top_k;
  const auto dets =
      owlvit::postprocess(logits.data(), img->heads.pred_boxes.data(), img->heads.boxes(), q, po);
  fill_result(r, *img, std::move(logits), q, dets, queries);
  r.timings.postprocess_ms = ms_since(t1);
  r.timings.total_ms = ms_since(t0);
  return r;
}

DetectionResult Detector::detect_by_example(std::span<const uint8_t> image,
                                            std::span<const uint8_t> example,
                                            std::optional<std::array<float, 4>> example_box,
                                            const DetectParams& params, const std::string& name) {
  const auto t0 = Clock::now();
  Impl& m = *impl_;
  Impl::check_params(params);
  DetectionResult r;
  bool cached = false;
  auto ex = m.image_of(example, name + " (example)", r.timings, &cached);
  std::array<float, 4> target{0.0f, 0.0f, 1.0f, 1.0f};
  if (example_box) {
    const auto& b = *example_box;
    CS_CHECK_ARG(b[2] > b[0] && b[3] > b[1], "example box must have x1 > x0 and y1 > y0");
    const float w = static_cast<float>(ex->width), h = static_cast<float>(ex->height);
    target = {b[0] / w, b[1] / h, b[2] / w, b[3] / h};
  }
  r.example_box_index = owlvit::best_query_box(ex->heads, target);
  const int tw = ex->heads.text_width;
  const std::vector<float> qe = owlvit::normalize_image_query(
      ex->heads.class_raw.data() + static_cast<long>(r.example_box_index) * tw, tw);
  auto img = m.image_of(image, name, r.timings, &r.image_cached);
  const auto t1 = Clock::now();
  std::vector<float> logits;
  run_on_compute_thread(
      [&] { logits = owlvit::class_logits(img->heads, qe.data(), 1, nullptr, m.head_impl); },
      ComputePriority::kHigh);
  std::vector<owlvit::Detection> dets;
  if (params.image_guided_alpha) {
    dets = owlvit::postprocess_image_guided(
        logits.data(), img->heads.pred_boxes.data(), img->heads.boxes(), 1, params.threshold,
        params.nms_iou > 0 ? params.nms_iou : 1.0f, img->width, img->height);
    if (params.clip_boxes) {
      for (auto& d : dets) {
        d.box = {std::clamp(d.box[0], 0.0f, float(img->width)),
                 std::clamp(d.box[1], 0.0f, float(img->height)),
                 std::clamp(d.box[2], 0.0f, float(img->width)),
                 std::clamp(d.box[3], 0.0f, float(img->height))};
      }
    }
    if (params.sort_by_score || params.top_k > 0) {
      std::stable_sort(dets.begin(), dets.end(),
                       [](const auto& a, const auto& b) { return a.score > b.score; });
      if (params.top_k > 0 && static_cast<int>(dets.size()) > params.top_k)
        dets.resize(params.top_k);
    }
  } else {
    owlvit::PostprocessOptions po;
    po.threshold = params.threshold;
    po.image_width = img->width;
    po.image_height = img->height;
    po.clip_boxes = params.clip_boxes;
    po.nms_iou = params.nms_iou;
    po.sort_by_score = params.sort_by_score;
    po.top_k = params.top_k;
    dets =
        owlvit::postprocess(logits.data(), img->heads.pred_boxes.data(), img->heads.boxes(), 1, po);
  }
  fill_result(r, *img, std::move(logits), 1, dets, {});
  r.timings.postprocess_ms = ms_since(t1);
  r.timings.total_ms = ms_since(t0);
  return r;
}

}  // namespace clipserve

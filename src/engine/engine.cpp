// Engine: request admission, per-tower dynamic batching, the image preprocessing pool,
// warm-up, embeddings and stage timings (classification: engine_classify.cpp).
#include "clipserve/engine.h"

#include "engine/engine_impl.h"

namespace clipserve {

namespace {

// Fulfils a promise from a finished embedding job.
void deliver(std::promise<Embeddings>& p, Job& job) {
  if (job.error) {
    p.set_exception(job.error);
    return;
  }
  Embeddings e;
  e.n = job.n;
  e.dim = job.dim;
  e.data = std::move(job.out);
  for (const auto& ids : job.ids) e.token_counts.push_back(static_cast<int>(ids.size()));
  e.truncated = std::move(job.truncated);
  e.timings = job.t;
  p.set_value(std::move(e));
}

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() {
  if (impl_) impl_->ready_gauge->set(0);
}

std::unique_ptr<Engine> Engine::create(std::unique_ptr<Encoder> encoder, EngineFrontends frontends,
                                       const EngineOptions& opt) {
  return std::unique_ptr<Engine>(
      new Engine(std::make_unique<Impl>(std::move(encoder), std::move(frontends), opt)));
}

void Engine::warm_up() {
  auto& m = *impl_;
  if (!m.opt.warmup) {
    m.ready = true;
    m.ready_gauge->set(1);
    return;
  }
  std::vector<int> sizes = m.opt.warmup_batch_sizes;
  if (sizes.empty()) {
    for (int b = 1; b < m.opt.max_batch; b *= 2) sizes.push_back(b);
    sizes.push_back(m.opt.max_batch);
  }
  std::vector<int> lengths = m.opt.warmup_text_lengths;
  if (lengths.empty()) {
    for (int l : {8, 16, 32, 64}) {
      if (l < m.context_length) lengths.push_back(l);
    }
    lengths.push_back(m.context_length);
  }
  // The front-ends too: the tokenizer loads its vocabulary on first use, and every
  // preprocessing thread decodes and resizes one JPEG (failures do not matter here).
  (void)m.fe.tokenize("warm up", m.context_length);
  {
    const int tasks = 2 * m.pool->size();
    std::vector<std::promise<void>> done(tasks);
    std::vector<float> scratch(m.image_elems * tasks);
    for (int i = 0; i < tasks; ++i) {
      m.pool->post([&, i] {
        try {
          double decode_ms = 0;
          m.fe.preprocess(engine::warmup_jpeg(), scratch.data() + m.image_elems * i, "warm-up",
                          &decode_ms);
        } catch (...) {
        }
        done[i].set_value();
      });
    }
    for (auto& d : done) d.get_future().wait();
  }
  for (int n : sizes) CS_CHECK_ARG(n >= 1, "warm-up batch size must be >= 1, got ", n);
  for (int len : lengths) {
    CS_CHECK_ARG(len >= 2 && len <= m.context_length, "warm-up text length ", len, " outside 2..",
                 m.context_length);
  }
  const int max_n = *std::max_element(sizes.begin(), sizes.end());
  // On the towers' own worker threads: the threads (and OpenMP teams, scratch buffers) that
  // run real batches are the ones warmed up.
  m.image_batcher->call([&] {
    std::vector<float> pixels(m.image_elems * max_n, 0.0f), out(size_t(max_n) * m.dim);
    std::lock_guard<std::mutex> lock(m.encoder_mu);
    for (int n : sizes) m.encoder->encode_images(pixels.data(), n, out.data());
  });
  m.text_batcher->call([&] {
    std::vector<float> out(size_t(max_n) * m.dim);
    const int32_t filler = std::min<int32_t>(320, m.cfg.text.vocab_size - 1);
    std::lock_guard<std::mutex> lock(m.encoder_mu);
    for (int len : lengths) {
      std::vector<int32_t> ids(len, filler);
      ids.front() = std::min<int32_t>(49406, m.cfg.text.vocab_size - 2);
      ids.back() = std::min<int32_t>(49407, m.cfg.text.vocab_size - 1);
      for (int n : sizes) {
        m.encoder->encode_texts(std::vector<std::vector<int32_t>>(n, ids), out.data());
      }
    }
  });
  m.ready = true;
  m.ready_gauge->set(1);
}

bool Engine::ready() const { return impl_->ready.load(); }

std::future<Embeddings> Engine::submit_images(std::vector<ImageInput> images, bool normalize) {
  auto p = std::make_shared<std::promise<Embeddings>>();
  auto f = p->get_future();
  impl_->start_images(std::move(images), normalize, false, [p](Job& job) { deliver(*p, job); });
  return f;
}

std::future<Embeddings> Engine::submit_texts(std::vector<std::string> texts, bool normalize) {
  auto p = std::make_shared<std::promise<Embeddings>>();
  auto f = p->get_future();
  impl_->start_texts(texts, normalize, false, [p](Job& job) { deliver(*p, job); });
  return f;
}

Embeddings Engine::embed_images(std::vector<ImageInput> images, bool normalize) {
  return submit_images(std::move(images), normalize).get();
}

Embeddings Engine::embed_texts(std::vector<std::string> texts, bool normalize) {
  return submit_texts(std::move(texts), normalize).get();
}

const ModelConfig& Engine::config() const { return impl_->cfg; }
const std::string& Engine::model_id() const { return impl_->model_id; }
int Engine::embed_dim() const { return impl_->dim; }
float Engine::logit_scale() const { return impl_->logit_scale; }
int Engine::queue_depth_images() const { return impl_->admitted_images.load(); }
int Engine::queue_depth_texts() const { return impl_->admitted_texts.load(); }

EngineCounters Engine::counters() const {
  const auto& m = *impl_;
  EngineCounters c;
  c.image_items = m.image_items->value();
  c.text_items = m.text_items->value();
  c.image_batches = m.image_batches->value();
  c.text_batches = m.text_batches->value();
  c.label_cache_hits = m.cache_hits->value();
  c.label_cache_misses = m.cache_misses->value();
  c.overloaded = m.overloaded_images->value() + m.overloaded_texts->value();
  return c;
}

metrics::Registry& Engine::metrics() { return impl_->reg; }
std::string Engine::metrics_text() const { return impl_->reg.render(); }

}  // namespace clipserve
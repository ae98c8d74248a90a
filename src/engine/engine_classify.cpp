// Engine: zero-shot classification (image embeddings joined with cached label features)
// and registered label sets.
#include "clipserve/engine.h"
#include "engine/engine_impl.h"

namespace clipserve {

namespace {

// Joins the image embeddings and the label features of one classify request.
struct ClassifyState {
  std::promise<Classification> promise;
  std::mutex mu;
  int pending = 2;
  std::exception_ptr error;
  std::shared_ptr<const LabelFeatures> labels;
  std::vector<float> image_feats;
  int n = 0;
  int top_k = 0;
  int text_encoded = 0;
  StageTimings image_t, text_t;
  Clock::time_point start;
};

}  // namespace

std::future<Classification> Engine::submit_classify(std::vector<ImageInput> images,
                                                    const LabelQuery& query) {
  auto& m = *impl_;
  auto st = std::make_shared<ClassifyState>();
  st->start = Clock::now();
  st->top_k = query.top_k;
  CS_CHECK_ARG(query.top_k >= 0, "top_k must be >= 0, got ", query.top_k);
  auto fut = st->promise.get_future();

  auto finish = [&m, st]() {
    // Called with st->mu held by the last of the two parts.
    if (st->error) {
      st->promise.set_exception(st->error);
      return;
    }
    const auto post_start = Clock::now();
    Classification c;
    c.images = m.score(st->image_feats, st->n, *st->labels, st->top_k);
    c.text_encoded = st->text_encoded;
    c.timings = st->image_t;
    c.timings.encode_ms += st->text_t.encode_ms;
    c.timings.queue_ms = std::max(c.timings.queue_ms, st->text_t.queue_ms);
    c.timings.preprocess_ms += st->text_t.preprocess_ms;
    c.timings.postprocess_ms += ms_between(post_start, Clock::now());
    c.timings.total_ms = ms_between(st->start, Clock::now());
    m.observe("classify", "postprocess", c.timings.postprocess_ms);
    m.observe("classify", "total", c.timings.total_ms);
    st->promise.set_value(std::move(c));
  };
  auto part_done = [st, finish]() {
    std::lock_guard<std::mutex> lock(st->mu);
    if (--st->pending == 0) finish();
  };

  // Label features first: an unknown set or bad label fails before any image work starts.
  std::shared_ptr<const LabelFeatures> named;
  if (!query.label_set.empty()) {
    std::shared_lock<std::shared_mutex> lock(m.sets_mu);
    auto it = m.label_sets.find(query.label_set);
    if (it == m.label_sets.end()) {
      CS_THROW(kNotFound, "label set '", query.label_set, "' is not registered");
    }
    named = it->second;
  }
  CS_CHECK_ARG(!images.empty(), "no images given");
  if (named) {
    st->labels = named;
    st->pending = 1;
  } else {
    st->text_encoded =
        m.resolve_labels(query.labels, query.templates, false,
                         [st, part_done](std::shared_ptr<const LabelFeatures> lf,
                                         std::exception_ptr e, const StageTimings* t) {
                           {
                             std::lock_guard<std::mutex> lock(st->mu);
                             if (e && !st->error) st->error = e;
                             st->labels = std::move(lf);
                             if (t) st->text_t = *t;
                           }
                           part_done();
                         });
  }
  try {
    m.start_images(std::move(images), true, false, [st, part_done](Job& job) {
      {
        std::lock_guard<std::mutex> lock(st->mu);
        if (job.error && !st->error) st->error = job.error;
        st->image_feats = std::move(job.out);
        st->n = job.n;
        st->image_t = job.t;
      }
      part_done();
    });
  } catch (...) {
    // The label part may still be running and holds st; record the failure for it and
    // rethrow so the caller sees the error at submission.
    std::lock_guard<std::mutex> lock(st->mu);
    st->error = std::current_exception();
    if (st->pending == 2) st->pending = 1;  // the image part will never report
    throw;
  }
  return fut;
}

Classification Engine::classify(std::vector<ImageInput> images, const LabelQuery& query) {
  return submit_classify(std::move(images), query).get();
}

bool Engine::put_label_set(const std::string& name, std::vector<std::string> labels,
                           std::vector<std::string> templates) {
  auto& m = *impl_;
  CS_CHECK_ARG(!name.empty(), "label set name is empty");
  std::promise<std::shared_ptr<const LabelFeatures>> p;
  auto f = p.get_future();
  m.resolve_labels(
      std::move(labels), std::move(templates), /*force=*/true,
      [&p](std::shared_ptr<const LabelFeatures> lf, std::exception_ptr e, const StageTimings*) {
        if (e) {
          p.set_exception(e);
        } else {
          p.set_value(std::move(lf));
        }
      });
  auto lf = f.get();
  std::unique_lock<std::shared_mutex> lock(m.sets_mu);
  const bool replaced = m.label_sets.count(name) > 0;
  m.label_sets[name] = std::move(lf);
  return replaced;
}

std::optional<LabelSetInfo> Engine::get_label_set(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(impl_->sets_mu);
  auto it = impl_->label_sets.find(name);
  if (it == impl_->label_sets.end()) return std::nullopt;
  return LabelSetInfo{name, it->second->labels, it->second->templates};
}

bool Engine::delete_label_set(const std::string& name) {
  std::unique_lock<std::shared_mutex> lock(impl_->sets_mu);
  return impl_->label_sets.erase(name) > 0;
}

std::vector<std::string> Engine::label_set_names() const {
  std::shared_lock<std::shared_mutex> lock(impl_->sets_mu);
  std::vector<std::string> names;
  for (const auto& [k, v] : impl_->label_sets) names.push_back(k);
  return names;
}

}  // namespace clipserve

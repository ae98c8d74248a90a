// The embedding models one server hosts: name lookup, per-model readiness, idle unload and
// reload with warm-up on the next request.
#include "server/model_set.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>

#include "core/check.h"
#include "engine/metrics.h"
#include "server/http_util.h"

namespace clipserve::server {

using SteadyClock = std::chrono::steady_clock;

struct ModelSet::Entry {
  ModelSpec spec;  // spec.names: id first, unique
  mutable std::mutex mu;
  std::shared_ptr<Engine> engine;  // null while unloaded
  ModelConfig config;
  int embed_dim = 0;
  std::atomic<int> loads{1};
  bool was_ready = false;
  SteadyClock::time_point last_used = SteadyClock::now();
  metrics::Gauge* loaded_gauge = nullptr;
  metrics::Counter* loads_total = nullptr;
};

std::string immich_to_slash(const std::string& name) {
  std::string slash;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name.compare(i, 2, "__") == 0) {
      slash.push_back('/');
      ++i;
    } else {
      slash.push_back(name[i]);
    }
  }
  return slash;
}

ModelSet::ModelSet(metrics::Registry& registry) : reg_(registry) {}

ModelSet::~ModelSet() {
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

void ModelSet::add(std::shared_ptr<Engine> engine, ModelSpec spec) {
  CS_CHECK_ARG(engine != nullptr, "ModelSet::add needs an engine");
  auto e = std::make_unique<Entry>();
  std::vector<std::string> names = {engine->model_id()};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto taken = [&](const std::string& n) {
      for (const auto& other : entries_) {
        for (const auto& m : other->spec.names) {
          if (m == n) return true;
        }
      }
      return false;
    };
    CS_CHECK_ARG(!taken(names[0]), "two served models are both named '", names[0],
                 "' (give one another --model-id)");
    // A further name another model already has stays with that one (two ids, one path).
    for (auto& n : spec.names) {
      if (!n.empty() && !taken(n) && std::find(names.begin(), names.end(), n) == names.end()) {
        names.push_back(std::move(n));
      }
    }
  }
  spec.names = std::move(names);
  e->config = engine->config();
  e->embed_dim = engine->embed_dim();
  e->engine = std::move(engine);
  e->spec = std::move(spec);
  if (!e->spec.reload) e->spec.unload_after_s = 0;
  const metrics::Labels labels = {{"model", e->spec.names[0]}};
  e->loaded_gauge = &reg_.gauge("clipserve_model_loaded", "1 while the model is in memory", labels);
  e->loaded_gauge->set(1);
  e->loads_total =
      &reg_.counter("clipserve_model_loads_total", "Times the model was loaded", labels);
  e->loads_total->inc();
  const bool unloads = e->spec.unload_after_s > 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(std::move(e));
  }
  if (unloads && !timer_.joinable()) timer_ = std::thread([this] { timer_loop(); });
}

ModelSet::Entry* ModelSet::lookup(const std::string& requested) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.empty()) return nullptr;
  if (requested.empty()) return entries_[0].get();
  const std::string slash = immich_to_slash(requested);
  for (const auto& e : entries_) {
    for (const auto& n : e->spec.names) {
      if (n == requested || n == slash) return e.get();
    }
  }
  return nullptr;
}

std::string ModelSet::not_served(const std::string& requested) const {
  std::string served;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) {
      served += std::string(served.empty() ? "" : ", ") + "'" + e->spec.names[0] + "'";
    }
  }
  return "model '" + requested + "' is not served here; this server serves " + served;
}

ModelSet::Lease ModelSet::acquire(const std::string& requested) {
  Entry* e = lookup(requested);
  if (e == nullptr) throw Error(ErrorCode::kNotFound, not_served(requested));
  const auto t0 = SteadyClock::now();
  const int loads_before = e->loads.load();
  std::lock_guard<std::mutex> lock(e->mu);
  e->last_used = SteadyClock::now();
  if (!e->engine) {
    // Reload and warm up on this request's thread; requests for this model wait here. A
    // failure (files gone, out of memory) is this request's 503; the next one tries again.
    std::unique_ptr<Engine> fresh;
    try {
      fresh = e->spec.reload();
      fresh->warm_up();
    } catch (const std::exception& ex) {
      throw Error(ErrorCode::kUnavailable,
                  "model '" + e->spec.names[0] + "' could not be reloaded: " + ex.what());
    }
    e->engine = std::move(fresh);
    e->loads.fetch_add(1);
    e->loads_total->inc();
    e->loaded_gauge->set(1);
    e->last_used = SteadyClock::now();
  }
  Lease lease{e->engine, 0};
  // A request that waited for a reload (its own or another's) sees the wait.
  if (e->loads.load() != loads_before) {
    lease.load_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  }
  return lease;
}

std::vector<ModelSet::Info> ModelSet::list() const {
  std::vector<Entry*> es;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) es.push_back(e.get());
  }
  std::vector<Info> out;
  for (Entry* e : es) {
    std::lock_guard<std::mutex> lock(e->mu);
    Info i;
    i.id = e->spec.names[0];
    i.names = e->spec.names;
    i.loaded = e->engine != nullptr;
    if (i.loaded && e->engine->ready()) e->was_ready = true;
    i.ready = i.loaded ? e->engine->ready() : e->was_ready;
    i.config = e->config;
    i.embed_dim = e->embed_dim;
    i.loads = e->loads.load();
    out.push_back(std::move(i));
  }
  return out;
}

std::optional<ModelSet::Info> ModelSet::find(const std::string& requested) const {
  Entry* e = lookup(requested);
  if (e == nullptr) return std::nullopt;
  for (auto& i : list()) {
    if (i.id == e->spec.names[0]) return i;
  }
  return std::nullopt;
}

bool ModelSet::ready() const {
  const auto all = list();
  return !all.empty() && std::all_of(all.begin(), all.end(), [](const Info& i) { return i.ready; });
}

size_t ModelSet::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

std::vector<std::shared_ptr<Engine>> ModelSet::loaded() const {
  std::vector<Entry*> es;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) es.push_back(e.get());
  }
  std::vector<std::shared_ptr<Engine>> out;
  for (Entry* e : es) {
    std::lock_guard<std::mutex> lock(e->mu);
    if (e->engine) out.push_back(e->engine);
  }
  return out;
}

int ModelSet::unload_idle() {
  std::vector<Entry*> es;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) es.push_back(e.get());
  }
  int n = 0;
  const auto now = SteadyClock::now();
  for (Entry* e : es) {
    std::shared_ptr<Engine> gone;
    {
      std::lock_guard<std::mutex> lock(e->mu);
      if (!e->engine || e->spec.unload_after_s <= 0 || !e->engine->ready()) continue;
      // use_count 1: no request holds it (acquire copies it under this same mutex).
      if (e->engine.use_count() != 1) continue;
      if (std::chrono::duration<double>(now - e->last_used).count() < e->spec.unload_after_s) {
        continue;
      }
      e->was_ready = true;
      gone = std::move(e->engine);
      e->loaded_gauge->set(0);
    }
    gone.reset();  // outside the lock: joins the engine's threads
    ++n;
  }
  if (n > 0) malloc_trim(0);  // give the freed weights back to the system
  return n;
}

void ModelSet::timer_loop() {
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (!stopping_) {
    double shortest = 1;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& e : entries_) {
        if (e->spec.unload_after_s > 0) shortest = std::min(shortest, e->spec.unload_after_s / 4);
      }
    }
    timer_cv_.wait_for(lock, std::chrono::duration<double>(std::max(0.02, shortest)));
    if (stopping_) break;
    lock.unlock();
    unload_idle();
    lock.lock();
  }
}

void ModelAccess::require_serving() const {
  if (draining && draining()) CS_THROW(kUnavailable, "the server is shutting down");
}

ModelSet::Lease ModelAccess::resolve(const std::string& requested) const {
  require_serving();
  auto lease = models->acquire(requested);
  t_ctx.model_load_ms += lease.load_ms;
  if (!lease->ready()) CS_THROW(kUnavailable, "the model is warming up; retry shortly");
  return lease;
}

}  // namespace clipserve::server

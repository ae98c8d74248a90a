// The embedding models one server hosts: lookup by any of their names, per-model engines,
// readiness, and optional idle unloading with reload (and warm-up) on the next request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clipserve/engine.h"
#include "clipserve/model_config.h"

namespace clipserve::metrics {
class Registry;
}

namespace clipserve::server {

/// One hosted model.
struct ModelSpec {
  /// Names a client may use (the first is the id listed in /v1/models; the engine's
  /// model_id() is added in front when it differs). Immich's "ARCH__TAG" matches "ARCH/TAG".
  /// Ids must be unique; a further name an earlier model already has stays with that one.
  std::vector<std::string> names;
  /// Builds the engine again after an idle unload (not warmed up: the set warms it). Null:
  /// the model is never unloaded.
  std::function<std::unique_ptr<Engine>()> reload;
  /// Unload after this many seconds without a request (0 = never).
  double unload_after_s = 0;
};

/// Thread-safety: every method may be called from any thread. An engine handed out by
/// acquire() stays alive until the last Lease of it is gone, even if it is unloaded meanwhile.
class ModelSet {
 public:
  /// `registry`: where the set's own gauges go (the server's metrics registry).
  explicit ModelSet(metrics::Registry& registry);
  ~ModelSet();
  ModelSet(const ModelSet&) = delete;
  ModelSet& operator=(const ModelSet&) = delete;

  /// Adds a loaded engine (ready or warming up). The first model added is the default one.
  void add(std::shared_ptr<Engine> engine, ModelSpec spec);

  struct Lease {
    std::shared_ptr<Engine> engine;
    double load_ms = 0;  ///< time this request waited for a reload (0 when it was loaded)
    Engine* operator->() const { return engine.get(); }
    Engine& operator*() const { return *engine; }
  };
  /// The engine for a requested name ("" = the default model), reloading it first when it
  /// was unloaded. Unknown name: Error(kNotFound) "model 'X' is not served here; this server
  /// serves 'A', 'B'".
  Lease acquire(const std::string& requested);

  struct Info {
    std::string id;
    std::vector<std::string> names;  ///< id first
    bool loaded = false;
    bool ready = false;  ///< loaded and warmed up, or unloaded after having been ready
    ModelConfig config;
    int embed_dim = 0;
    int loads = 0;  ///< times loaded (1 + reloads)
  };
  /// Without loading anything.
  std::vector<Info> list() const;
  std::optional<Info> find(const std::string& requested) const;
  /// True when every model is ready (an idle-unloaded model counts: it reloads on demand).
  bool ready() const;
  /// The "not served here" message for `requested`.
  std::string not_served(const std::string& requested) const;
  size_t size() const;
  /// The loaded engines right now (for label sets and metrics that span models).
  std::vector<std::shared_ptr<Engine>> loaded() const;

  /// Unloads models idle longer than their unload_after_s (also run by the set's own timer
  /// thread, started by add() when a model has unload_after_s > 0). Returns how many.
  int unload_idle();

 private:
  struct Entry;
  Entry* lookup(const std::string& requested) const;
  void update_gauges(Entry& e);
  void timer_loop();

  metrics::Registry& reg_;
  mutable std::mutex mu_;  // guards entries_ (the vector); each entry has its own mutex
  std::vector<std::unique_ptr<Entry>> entries_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;
  std::thread timer_;
};

/// How routes reach the served models.
struct ModelAccess {
  ModelSet* models = nullptr;
  std::function<bool()> draining;
  /// 503 while the server drains (call first, before parsing the request).
  void require_serving() const;
  /// The engine for the request's model name ("" = the default model): 404 naming the
  /// served models, 503 while it warms up; a reload's wait goes to t_ctx.model_load_ms.
  ModelSet::Lease resolve(const std::string& requested) const;
};
/// "ARCH__TAG" (Immich's spelling) -> "ARCH/TAG".
std::string immich_to_slash(const std::string& name);

}  // namespace clipserve::server

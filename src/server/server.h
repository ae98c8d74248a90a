// The HTTP/JSON server over an Engine (cpp-httplib, HTTP/1.1 keep-alive): embeddings (OpenAI
// compatible and native), zero-shot classification, label sets, health, models and metrics.
// docs/server.md is the API reference.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clipserve/engine.h"
#include "server/model_set.h"
#include "server/url_fetch.h"

namespace httplib {
class Server;
}

namespace clipserve {
class Detector;
}

namespace clipserve::server {

class Router;
class ConnectionLayer;

/// Bounds a request may expand to, checked before any work (413 naming the limit).
struct RequestBounds {
  size_t max_items = 256;               ///< texts + images in one request
  size_t max_text_bytes = 16384;        ///< one text, label or template
  size_t max_prompts = 100000;          ///< labels x templates of one request or label set
  size_t max_prompt_bytes = 16u << 20;  ///< bytes of all those prompts together
  size_t max_label_sets = 1000;         ///< registered label sets
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    ///< 0 = any free port (bind() returns it)
  size_t max_body_bytes = 32u << 20;  ///< larger bodies get 413
  std::string api_key;    ///< when set, every endpoint but /health/* needs "Bearer <key>"
  int http_threads = 64;  ///< requests handled at once (idle or slow connections hold none)
  int keep_alive_max_requests = 10000;
  int max_connections = 1024;           ///< open connections; beyond, 503 and close
  int listen_backlog = 1024;            ///< listen() backlog
  double request_timeout_s = 30;        ///< a whole request (headers + body) must arrive in this
  double idle_timeout_s = 5;            ///< keep-alive connection without a request: closed
  double write_timeout_s = 30;          ///< sending one response
  double shutdown_timeout_s = 10;       ///< stop(): requests in flight may run this long
  size_t max_header_bytes = 64u << 10;  ///< request line + headers (-> 431)
  size_t max_headers = 100;             ///< header lines (-> 431)
  /// Host header names accepted (without port; "*" = any). Bound to a loopback address, the
  /// loopback names are always accepted and others only when listed here (DNS rebinding);
  /// bound elsewhere, any Host is accepted unless names are listed.
  std::vector<std::string> allowed_hosts;
  /// Origins allowed cross-origin (exact "scheme://host:port", or "*"). A request carrying
  /// another Origin gets 403; none are allowed by default.
  std::vector<std::string> cors_origins;
  RequestBounds bounds;
  /// More names clients may use for the model of Server(Engine&, ...) (the --model argument,
  /// --model-id); the engine's model_id() is always one. Immich's "ARCH__TAG" matches
  /// "ARCH/TAG". A ModelSet carries its own names.
  std::vector<std::string> model_names;
  /// Image URLs in requests: fetched only from these hosts (off when `allow` is empty).
  UrlFetchOptions url_fetch;
  Detector* detector = nullptr;  ///< when set, POST /detect serves it (routes_detect.h)

  static std::vector<std::string> default_allowed_hosts(const std::string& bind_host);
};

/// Thread-safety: bind() then run() from one thread; stop() from any thread (a signal
/// watcher) makes run() return after the requests in flight have been answered.
class Server {
 public:
  /// Serves one engine (metrics go to engine.metrics()).
  Server(Engine& engine, ServerOptions opt);
  /// Serves several models, chosen by each request's model name (the first is the default);
  /// every metric goes to `metrics` (give the engines the same registry, labelled per model).
  Server(ModelSet& models, metrics::Registry& metrics, ServerOptions opt);
  ~Server();

  /// Binds the listening socket; returns the port. Throws Error(kIo) when it cannot.
  int bind();
  /// Serves until stop(). Returns false when requests were still running at the shutdown
  /// deadline (shutdown_timeout_s); the caller may then exit without waiting for them.
  bool run();
  /// Stops accepting, lets requests in flight finish, makes run() return. Idempotent.
  void stop();
  bool draining() const { return draining_; }
  /// The router: more routes can be registered on it before run() (httplib's route API).
  httplib::Server& http();
  /// Frames and answers one raw request without sockets (fuzzing, tests): the raw response,
  /// or "" when `request` is incomplete. Thread-safe like the routes themselves.
  std::string handle_raw(std::string_view request);
  /// For route groups registered from outside (collections).
  ModelAccess model_access();
  metrics::Registry& metrics() { return *reg_; }

 private:
  void init();
  void install_routes();
  bool host_allowed(const std::string& host_header) const;
  bool origin_allowed(const std::string& origin, const std::string& host_header) const;

  std::unique_ptr<ModelSet> own_models_;  // Server(Engine&, ...)
  ModelSet* models_;
  metrics::Registry* reg_;
  ServerOptions opt_;
  std::unique_ptr<Router> http_;
  std::unique_ptr<ConnectionLayer> conn_;
  std::vector<std::string> allowed_hosts_;  // empty: any
  std::unique_ptr<UrlFetcher> fetcher_;     // null: URLs are not fetched
  std::atomic<bool> draining_{false};
};

}  // namespace clipserve::server

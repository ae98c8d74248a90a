// The HTTP/JSON server over an Engine (cpp-httplib, HTTP/1.1 keep-alive): embeddings (OpenAI
// compatible and native), zero-shot classification, label sets, health, models and metrics.
// docs/server.md is the API reference.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "clipserve/engine.h"

namespace httplib {
class Server;
}

namespace clipserve::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    ///< 0 = any free port (bind() returns it)
  size_t max_body_bytes = 32u << 20;  ///< larger bodies get 413
  std::string api_key;    ///< when set, every endpoint but /health/* needs "Bearer <key>"
  int http_threads = 64;  ///< connections served at once (each keep-alive client holds one)
  int keep_alive_max_requests = 10000;
  int read_timeout_s = 30;
};

/// Thread-safety: bind() then run() from one thread; stop() from any thread (a signal
/// watcher) makes run() return after the requests in flight have been answered.
class Server {
 public:
  Server(Engine& engine, ServerOptions opt);
  ~Server();

  /// Binds the listening socket; returns the port. Throws Error(kIo) when it cannot.
  int bind();
  /// Serves until stop(). Returns false if the server could not listen.
  bool run();
  /// Stops accepting, lets requests in flight finish, makes run() return. Idempotent.
  void stop();
  bool draining() const { return draining_; }
  /// The underlying server, for route sets that live in their own files (routes_index.h).
  httplib::Server& http() { return *http_; }

 private:
  void install_routes();

  Engine& engine_;
  ServerOptions opt_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<bool> draining_{false};
};

}  // namespace clipserve::server

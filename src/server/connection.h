// The HTTP connection layer under cpp-httplib's router: one epoll thread accepts and reads
// requests (with deadlines and framing limits) until each is complete, and only then hands it
// to a worker, so slow or idle clients never hold a worker. Responses go out in one write.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/framing.h"

namespace clipserve::server {

/// httplib::Server with its request processing reachable without its socket loop: the routes
/// (Get/Post/Put/Delete, pre-routing, error and exception handlers) are httplib's own.
class Router : public httplib::Server {
 public:
  /// Parses one complete request from `strm`, routes it, writes the response to `strm`.
  /// Returns false when the connection must be closed.
  bool process(httplib::Stream& strm, bool close_connection, bool& connection_closed,
               const std::function<void(httplib::Request&)>& setup = nullptr) {
    return process_request(strm, close_connection, connection_closed, setup);
  }
};

/// An in-memory httplib::Stream: reads one buffered request, collects the response.
class MemoryStream : public httplib::Stream {
 public:
  MemoryStream(std::string_view in, std::string ip = "", int port = 0, int fd = -1)
      : in_(in), ip_(std::move(ip)), port_(port), fd_(fd) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = ip_;
    port = port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "";
    port = 0;
  }
  socket_t socket() const override { return fd_; }
  std::string& out() { return out_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  std::string out_;
  std::string ip_;
  int port_;
  int fd_;
};

/// A complete HTTP/1.1 response with a JSON body that closes the connection (used for the
/// errors the connection layer answers itself).
std::string raw_error_response(int status, const std::string& body);

struct ConnectionOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 ///< 0 = any free port
  int backlog = 1024;              ///< listen() backlog
  int workers = 64;                ///< threads running handlers (requests served at once)
  int priority_workers = 2;        ///< threads for GET /health/* and /metrics only
  int max_connections = 1024;      ///< open connections; beyond, new ones get 503 and close
  double request_timeout_s = 30;   ///< whole request (headers + body) from its first byte
  double idle_timeout_s = 5;       ///< keep-alive connection without a request in progress
  double write_timeout_s = 30;     ///< sending one response
  double shutdown_timeout_s = 10;  ///< stop(): how long requests in flight may still run
  int keep_alive_max_requests = 10000;
  FramingLimits limits;
  /// Body of an error response the connection layer sends itself (JSON, same format as the
  /// handlers'); `status` and `message` as in Frame.
  std::function<std::string(int status, const std::string& message)> error_body;
  /// Called for every error response the connection layer sends (metrics).
  std::function<void(int status)> on_error;
};

/// Thread-safety: bind() then run() from one thread; stop() from any thread.
class ConnectionLayer {
 public:
  ConnectionLayer(Router& router, ConnectionOptions opt);
  ~ConnectionLayer();

  /// Binds and listens (no SO_REUSEPORT: a port in use is refused). Returns the port.
  /// Throws Error(kIo) naming the address and the reason ("already in use").
  int bind();
  /// Serves until stop(). Returns true when every request in flight finished within
  /// shutdown_timeout_s, false when some were still running (the caller may exit anyway).
  bool run();
  /// Stops accepting, closes idle and partly received connections, lets requests in flight
  /// finish (up to shutdown_timeout_s), makes run() return. Idempotent.
  void stop();

  /// Counters for tests and metrics.
  size_t open_connections() const { return open_.load(); }

 private:
  struct Conn;
  using ConnPtr = std::shared_ptr<Conn>;

  void accept_all();
  void on_readable(const ConnPtr& c);
  void advance(const ConnPtr& c);  // frame the buffer; queue, answer an error, or wait
  void send_error_and_linger(const ConnPtr& c, int status, const std::string& message);
  void close_conn(const ConnPtr& c);
  void sweep();  // deadlines
  void worker_loop(bool priority);
  void serve_one(const ConnPtr& c);
  void enqueue(const ConnPtr& c);
  void finish_write(const ConnPtr& c);                  // reader thread, EPOLLOUT
  void resume_reading(const ConnPtr& c, int epoll_op);  // with mu_ held

  Router& router_;
  ConnectionOptions opt_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_{0};
  std::chrono::steady_clock::time_point accept_paused_until_{};  // reader thread only

  std::mutex mu_;  // conns_, queues, in-flight count, every Conn's state
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::map<int, ConnPtr> conns_;
  std::deque<ConnPtr> queue_, priority_queue_;
  std::vector<ConnPtr> recheck_;  // conns with buffered bytes after a response (pipelining)
  int in_flight_ = 0;
  bool workers_exit_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace clipserve::server

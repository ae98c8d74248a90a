// The HTTP server test fixture: an Engine on the hash-based test encoder (engine_testing.h)
// behind a real server on a free port, httplib clients, and raw-socket helpers for requests
// no well-behaved client would send.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "clipserve/engine.h"
#include "clipserve/image.h"
#include "engine_testing.h"
#include "server/codec.h"
#include "server/server.h"

namespace clipserve {

using json = nlohmann::json;
using test::HashEncoder;

class ServerTest : public ::testing::Test {
 protected:
  void start(EngineOptions eopt = {}, server::ServerOptions sopt = {}, bool warm = true) {
    eopt.preprocess_threads = 2;
    eopt.max_batch = eopt.max_batch ? eopt.max_batch : 4;
    auto enc = std::make_unique<HashEncoder>();
    enc_ = enc.get();
    engine_ = Engine::create(std::move(enc), test::fake_frontends(), eopt);
    if (warm) engine_->warm_up();
    sopt.port = 0;
    if (sopt.http_threads == server::ServerOptions{}.http_threads) sopt.http_threads = 16;
    server_ = std::make_unique<server::Server>(*engine_, sopt);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  void start_real() {
    EngineOptions eopt;
    eopt.max_batch = 4;
    engine_ = Engine::load(test::tiny_model_dir(), eopt);
    server::ServerOptions sopt;
    sopt.port = 0;
    server_ = std::make_unique<server::Server>(*engine_, sopt);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }
  static json body_of(const httplib::Result& r) { return json::parse(r->body); }
  static void expect_error(const httplib::Result& r, int status, const std::string& needle) {
    ASSERT_TRUE(r) << "no response";
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body);
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << r->body;
  }
  static std::string b64(const std::string& s) {
    return server::base64_encode(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  static std::vector<float> floats(const json& a) { return a.get<std::vector<float>>(); }
  static ImageInput img(const std::string& s, const std::string& name = "x") {
    return ImageInput::encoded(std::vector<uint8_t>(s.begin(), s.end()), name);
  }
  std::string metrics() { return client().Get("/metrics")->body; }
  static double metric(const std::string& text, const std::string& series) {
    const std::string key = "\n" + series + " ";
    auto at = text.find(key);
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + key.size()));
  }

  HashEncoder* enc_ = nullptr;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

/// A raw TCP connection to 127.0.0.1:port for hand-written requests.
class RawConn {
 public:
  explicit RawConn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  bool send(const std::string& s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  /// Reads until the peer closes or `timeout_s` passes; what arrived.
  std::string read_all(double timeout_s = 10) {
    const auto end = deadline(timeout_s);
    while (fill(end)) {
    }
    return got_;
  }
  /// Reads until `needle` has arrived (or close / timeout); everything received so far.
  std::string read_until(const std::string& needle, double timeout_s = 10) {
    const auto end = deadline(timeout_s);
    while (got_.find(needle) == std::string::npos && fill(end)) {
    }
    return got_;
  }
  /// Reads one whole response (headers + Content-Length body) and takes it off the buffer.
  std::string read_response(double timeout_s = 10) {
    const auto end = deadline(timeout_s);
    while (got_.find("\r\n\r\n") == std::string::npos && fill(end)) {
    }
    const size_t he = got_.find("\r\n\r\n");
    if (he == std::string::npos) return "";
    size_t len = 0;
    const size_t cl = got_.find("Content-Length: ");
    if (cl != std::string::npos && cl < he) len = std::stoul(got_.substr(cl + 16));
    while (got_.size() < he + 4 + len && fill(end)) {
    }
    std::string r = got_.substr(0, std::min(got_.size(), he + 4 + len));
    got_.erase(0, r.size());
    return r;
  }
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
  bool closed_ = false;
  std::string got_;

  static std::chrono::steady_clock::time_point deadline(double s) {
    return std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(s * 1000));
  }
  // One poll + recv before `end`; false on close, error or timeout.
  bool fill(std::chrono::steady_clock::time_point end) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0 || closed_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    got_.append(buf, static_cast<size_t>(n));
    return true;
  }
};

inline int status_of(const std::string& raw) {
  return raw.rfind("HTTP/1.", 0) == 0 && raw.size() > 12 ? std::stoi(raw.substr(9, 3)) : -1;
}

}  // namespace clipserve

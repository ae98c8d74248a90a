// HTTP connection-layer tests: port sharing, framing limits (body-less POST, chunked, gzip,
// headers, Range, Expect), slow and idle clients, bounded connections, fairness, health while
// busy, pipelining, shutdown. Deadlines are set short by options so every test is quick.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>
#include <vector>

#include "server/connection.h"
#include "server/framing.h"
#include "server_testing.h"

namespace clipserve {
namespace {

const std::string kEmbedText = R"({"texts":["a"]})";

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra = "Content-Type: application/json\r\n") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST_F(ServerTest, SecondServerOnTheSamePortIsRefused) {
  start();
  server::ServerOptions so;
  so.port = port_;
  server::Server second(*engine_, so);
  try {
    second.bind();
    FAIL() << "a second server bound a port in use";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("already in use"), std::string::npos) << e.what();
  }
  EXPECT_EQ(client().Get("/health/live")->status, 200);  // the first one is unaffected
}

TEST_F(ServerTest, ServeCommandRefusesAPortInUse) {
  start();
  auto [rc, out] =
      test::run_command(test::cli_path() + " serve --no-warmup --model " + test::tiny_model_dir() +
                        " --port " + std::to_string(port_) + " 2>&1");
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("already in use"), std::string::npos) << out;
}

TEST_F(ServerTest, PostWithoutALengthGets411AtOnce) {
  start();
  RawConn c(port_);
  ASSERT_TRUE(c.ok());
  c.send("POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  // The server's request deadline is 30 s; the answer must not wait for a body.
  const std::string r = c.read_all(5);
  EXPECT_EQ(status_of(r), 411) << r;
  EXPECT_NE(r.find("Content-Length"), std::string::npos) << r;
  EXPECT_TRUE(c.closed());
}

TEST_F(ServerTest, FramingLimitsCannotBeBypassed) {
  server::ServerOptions so;
  so.max_body_bytes = 1024;
  so.max_headers = 20;
  so.max_header_bytes = 4096;
  start({}, so);
  auto one = [&](const std::string& req) {
    RawConn c(port_);
    c.send(req);
    return c.read_all(5);
  };
  // Chunked bodies count against the same limit as Content-Length.
  std::string chunked =
      "POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "200\r\n" + std::string(512, 'x') + "\r\n";
  chunked += "0\r\n\r\n";
  std::string r = one(chunked);
  EXPECT_EQ(status_of(r), 413) << r;
  // A small chunked body is served.
  r =
      one("POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\npic\r\n0\r\n\r\n");
  EXPECT_EQ(status_of(r), 200) << r;
  // Request compression is refused (a small gzip body could inflate past every limit).
  r = one(post("/embed", std::string(100, 'x'),
               "Content-Type: image/jpeg\r\nContent-Encoding: gzip\r\n"));
  EXPECT_EQ(status_of(r), 415) << r;
  // Header count and bytes.
  std::string many = "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 30; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  r = one(many + "\r\n");
  EXPECT_EQ(status_of(r), 431) << r;
  r = one("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(8000, 'a') +
          "\r\n\r\n");
  EXPECT_EQ(status_of(r), 431) << r;
  // Headers that never end are cut at the byte limit, not read forever.
  {
    RawConn c(port_);
    c.send("GET /health/live HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < 8; ++i) c.send(std::string(1024, 'a'));
    r = c.read_all(5);
    EXPECT_EQ(status_of(r), 431) << r;
  }
  r = one("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 414) << r;
  EXPECT_NE(r.find("\"type\":\"too_large\""), std::string::npos) << r;  // was "internal"
  r = one(post("/embed", "pic", "Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n"));
  EXPECT_EQ(status_of(r), 400) << r;  // both framings: refused (request smuggling)
  // Every error is JSON and names its reason.
  const std::string body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_NE(json::parse(body)["error"]["message"].get<std::string>().find("Transfer-Encoding"),
            std::string::npos);
}

TEST_F(ServerTest, RangeHeadersAreIgnored) {
  start();
  std::string req =
      "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nRange: bytes=";
  for (int i = 0; i < 1000; ++i) req += (i ? ",0-" : "0-") + std::to_string(i);
  RawConn c(port_);
  c.send(req + "\r\n\r\n");
  const std::string r = c.read_all(5);
  EXPECT_EQ(status_of(r), 200) << r.substr(0, 200);
  EXPECT_EQ(r.find("multipart/byteranges"), std::string::npos);
  EXPECT_LT(r.size(), 4096u);
}

TEST_F(ServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  server::ServerOptions so;
  so.max_body_bytes = 1024;
  start({}, so);
  {
    RawConn c(port_);
    c.send(
        "POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: "
        "3\r\n"
        "Expect: 100-continue\r\n\r\n");
    EXPECT_NE(c.read_until("\r\n\r\n", 5).find("100 Continue"), std::string::npos);
    c.send("pic");
    c.read_response(5);
    const std::string r = c.read_response(5);
    EXPECT_EQ(status_of(r), 200) << r;
  }
  RawConn c(port_);
  c.send(
      "POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: "
      "5000\r\n"
      "Expect: 100-continue\r\n\r\n");
  const std::string r = c.read_all(5);
  EXPECT_EQ(status_of(r), 413) << r;  // refused before the client sends the body
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawConn c(port_);
  c.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post("/embed", kEmbedText) +
         "GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const std::string a = c.read_response(5), b = c.read_response(5), d = c.read_response(5);
  EXPECT_NE(a.find("\"live\""), std::string::npos) << a;
  EXPECT_NE(b.find("text_embeddings"), std::string::npos) << b;
  EXPECT_NE(d.find("\"ready\""), std::string::npos) << d;
}

TEST_F(ServerTest, SlowClientIsCutAtTheRequestDeadline) {
  server::ServerOptions so;
  so.request_timeout_s = 0.5;
  start({}, so);
  RawConn slow(port_);
  slow.send("POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  // A header byte every 50 ms would keep a per-read timeout happy forever.
  std::string got;
  for (int i = 0; i < 60 && !slow.closed(); ++i) {
    slow.send("X");
    got = slow.read_until("\r\n\r\n", 0.05);
    if (!got.empty()) break;
  }
  EXPECT_EQ(status_of(got), 408) << got;
  EXPECT_EQ(client().Get("/health/live")->status, 200);
}

TEST_F(ServerTest, IdleKeepAliveConnectionsAreClosed) {
  server::ServerOptions so;
  so.idle_timeout_s = 0.3;
  start({}, so);
  RawConn c(port_);
  c.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response(5)), 200);
  c.read_all(5);  // nothing more comes; the server closes the idle connection
  EXPECT_TRUE(c.closed());
}

TEST_F(ServerTest, ConnectionsBeyondTheBoundGet503) {
  server::ServerOptions so;
  so.max_connections = 2;
  start({}, so);
  RawConn a(port_), b(port_);
  a.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  b.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(status_of(a.read_response(5)), 200);
  EXPECT_EQ(status_of(b.read_response(5)), 200);
  RawConn c(port_);
  const std::string r = c.read_all(5);
  EXPECT_EQ(status_of(r), 503) << r;
  a.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_NE(a.read_response(5).find("\nclipserve_http_open_connections 2\n"), std::string::npos);
}

TEST_F(ServerTest, ManyKeepAliveClientsAreAllAnswered) {
  server::ServerOptions so;
  so.http_threads = 4;  // far fewer workers than connections
  start({}, so);
  constexpr int kClients = 128;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kClients; ++i) {
    ts.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port_);
      c.set_keep_alive(true);
      c.set_read_timeout(60, 0);
      for (int k = 0; k < 3; ++k) {
        auto r =
            c.Post("/embed", R"({"texts":["t)" + std::to_string(i) + "\"]}", "application/json");
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), kClients * 3);
}

TEST_F(ServerTest, HealthAnswersWhileEveryWorkerIsBusy) {
  server::ServerOptions so;
  so.http_threads = 2;
  start({}, so);
  enc_->close_gate();
  enc_->clear_calls();
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&, i] {
      auto r = client().Post("/embed", "img" + std::to_string(i), "image/jpeg");
      EXPECT_TRUE(r && r->status == 200);
    });
  }
  enc_->wait_calls(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let both workers block
  EXPECT_EQ(client().Get("/health/live")->status, 200);
  EXPECT_EQ(client().Get("/health/ready")->status, 200);
  EXPECT_EQ(client().Get("/metrics")->status, 200);
  enc_->open_gate();
  for (auto& t : ts) t.join();
}

TEST_F(ServerTest, ClientThatDoesNotReadItsResponseHoldsNoWorker) {
  server::ServerOptions so;
  so.http_threads = 1;
  so.write_timeout_s = 120;
  start({}, so);
  json labels = json::array();
  for (int i = 0; i < 20000; ++i)
    labels.push_back("label " + std::to_string(i) + std::string(200, 'x'));
  ASSERT_EQ(
      client().Put("/labelsets/big", json({{"labels", labels}}).dump(), "application/json")->status,
      201);
  RawConn stuck(port_);
  const int small = 4096;
  ::setsockopt(stuck.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  stuck.send("GET /labelsets/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");  // ~4 MB, never read
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto c = client();
  c.set_read_timeout(10, 0);  // far below the write timeout: the one worker must be free
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r) << "the only worker is stuck sending to a client that does not read";
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServerTest, ShutdownClosesIdleAndSlowConnectionsAndKeepsInFlight) {
  start();
  RawConn idle(port_), slow(port_);
  idle.send("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(status_of(idle.read_response(5)), 200);
  slow.send("POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  enc_->close_gate();
  enc_->clear_calls();
  int status = 0;
  std::thread req([&] {
    auto r = client().Post("/embed", "slow", "image/jpeg");
    status = r ? r->status : -1;
  });
  enc_->wait_calls(1);
  server_->stop();
  idle.read_all(5);
  slow.read_all(5);
  EXPECT_TRUE(idle.closed());
  EXPECT_TRUE(slow.closed());
  enc_->open_gate();
  req.join();
  thread_.join();
  EXPECT_EQ(status, 200);
}

TEST_F(ServerTest, ShutdownDeadlineEndsRunWithRequestsStillRunning) {
  server::ServerOptions so;
  so.shutdown_timeout_s = 0.2;
  engine_.reset();
  EngineOptions eo;
  eo.preprocess_threads = 2;
  eo.max_batch = 4;
  auto enc = std::make_unique<HashEncoder>();
  enc_ = enc.get();
  engine_ = Engine::create(std::move(enc), test::fake_frontends(), eo);
  engine_->warm_up();
  so.port = 0;
  server_ = std::make_unique<server::Server>(*engine_, so);
  port_ = server_->bind();
  std::atomic<int> ran{-1};
  thread_ = std::thread([&] { ran = server_->run() ? 1 : 0; });
  enc_->close_gate();
  enc_->clear_calls();
  std::thread req([&] { client().Post("/embed", "stuck", "image/jpeg"); });
  enc_->wait_calls(1);
  server_->stop();
  thread_.join();
  EXPECT_EQ(ran.load(), 0);  // run() returned although the request was still in the encoder
  enc_->open_gate();
  req.join();
}

TEST_F(ServerTest, ReusedConnectionIsAsFastAsAFreshOne) {
  start();
  // Nagle + delayed ACK on a two-write response costs ~40 ms per reused request; a response
  // written once with TCP_NODELAY costs well under a millisecond on loopback.
  auto c = client();
  c.set_keep_alive(true);
  std::vector<double> ms;
  for (int i = 0; i < 21; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(c.Post("/embed", kEmbedText, "application/json")->status, 200);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<double> get_ms;
  for (int i = 0; i < 21; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(c.Get("/health/live")->status, 200);
    get_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin() + 1, ms.end());
  std::sort(get_ms.begin() + 1, get_ms.end());
  EXPECT_LT(ms[11], 30.0) << "median reused-connection POST latency " << ms[11] << " ms";
  EXPECT_LT(get_ms[11], 30.0) << "median reused-connection GET latency " << get_ms[11] << " ms";
}

TEST_F(ServerTest, RawRequestsAreRoutedWithoutSockets) {
  start();
  std::string r = server_->handle_raw(post("/embed", kEmbedText));
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("text_embeddings"), std::string::npos);
  EXPECT_EQ(server_->handle_raw("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1"), "");
  r = server_->handle_raw("POST /embed HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 411) << r;
}

TEST(RequestFramer, FramesContentLengthAndChunkedIncrementally) {
  server::FramingLimits lim;
  server::RequestFramer f(lim);
  const std::string req = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET";
  for (size_t n = 0; n < req.size() - 3; ++n) {
    const auto& fr = f.feed(std::string_view(req).substr(0, n));
    ASSERT_EQ(fr.state, n < req.size() - 3 ? server::Frame::kNeedMore : server::Frame::kComplete)
        << n;
  }
  EXPECT_EQ(f.feed(req).state, server::Frame::kComplete);
  EXPECT_EQ(f.frame().length, req.size() - 3);
  server::RequestFramer g(lim);
  const std::string ch =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nT: v\r\n\r\n";
  for (size_t n = 0; n <= ch.size(); ++n) g.feed(std::string_view(ch).substr(0, n));
  EXPECT_EQ(g.frame().state, server::Frame::kComplete);
  EXPECT_EQ(g.frame().length, ch.size());
  server::RequestFramer h(lim);
  EXPECT_EQ(h.feed("POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").status,
            400);
  server::RequestFramer k(lim);
  EXPECT_EQ(k.feed("GET /x HTTP/2.0\r\n\r\n").status, 505);
  server::RequestFramer m(lim);
  EXPECT_EQ(m.feed("GET /x HTTP/1.1\r\n bad\r\n\r\n").status, 400);
}

}  // namespace
}  // namespace clipserve

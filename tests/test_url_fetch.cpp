// URL fetching for image inputs: allow-list by name, address and range; SSRF guards (loopback
// and private addresses refused unless listed, every redirect re-checked); size, time and
// redirect limits. Against a real HTTP server on loopback.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <thread>

#include "clipserve/error.h"
#include "server/url_fetch.h"

namespace clipserve::server {
namespace {

class UrlFetchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    http_ = new httplib::Server;
    http_->Get("/img", [](const httplib::Request&, httplib::Response& r) {
      r.set_content("IMAGEBYTES", "image/jpeg");
    });
    http_->Get("/big", [](const httplib::Request&, httplib::Response& r) {
      r.set_content(std::string(3u << 20, 'x'), "image/jpeg");
    });
    http_->Get("/slow", [](const httplib::Request&, httplib::Response& r) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      r.set_content("late", "image/jpeg");
    });
    http_->Get("/missing", [](const httplib::Request&, httplib::Response& r) { r.status = 404; });
    http_->Get("/redir",
               [](const httplib::Request&, httplib::Response& r) { r.set_redirect("/img"); });
    http_->Get("/loop",
               [](const httplib::Request&, httplib::Response& r) { r.set_redirect("/loop"); });
    http_->Get("/redir-out", [](const httplib::Request&, httplib::Response& r) {
      r.set_redirect("http://localhost:" + std::to_string(port_) + "/img");
    });
    http_->Get("/redir-file", [](const httplib::Request&, httplib::Response& r) {
      r.set_redirect("file:///etc/passwd");
    });
    port_ = http_->bind_to_any_port("127.0.0.1");
    thread_ = new std::thread([] { http_->listen_after_bind(); });
    while (!http_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  static void TearDownTestSuite() {
    http_->stop();
    thread_->join();
    delete thread_;
    delete http_;
  }
  static std::string url(const std::string& path, const std::string& host = "127.0.0.1") {
    return "http://" + host + ":" + std::to_string(port_) + path;
  }
  static std::string text(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

  // The error's message (and checks its code).
  static std::string error_of(const UrlFetcher& f, const std::string& u,
                              ErrorCode want = ErrorCode::kInvalidArgument) {
    try {
      f.fetch(u);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), want) << e.what();
      return e.what();
    }
    ADD_FAILURE() << u << " was fetched";
    return {};
  }

  static inline httplib::Server* http_ = nullptr;
  static inline std::thread* thread_ = nullptr;
  static inline int port_ = 0;
};

UrlFetcher fetcher(std::vector<std::string> allow, size_t max_bytes = 1u << 20,
                   int timeout_ms = 5000) {
  UrlFetchOptions o;
  o.allow = std::move(allow);
  o.max_bytes = max_bytes;
  o.timeout_ms = timeout_ms;
  return UrlFetcher(o);
}

TEST_F(UrlFetchTest, OffByDefault) {
  UrlFetcher f{UrlFetchOptions{}};
  EXPECT_FALSE(f.enabled());
  EXPECT_NE(error_of(f, url("/img")).find("--allow-url-host"), std::string::npos);
}

TEST_F(UrlFetchTest, ListedAddressIsFetchedAndRedirectsFollowed) {
  auto f = fetcher({"127.0.0.1"});
  EXPECT_EQ(text(f.fetch(url("/img"))), "IMAGEBYTES");
  EXPECT_EQ(text(f.fetch(url("/redir"))), "IMAGEBYTES");
  auto r = fetcher({"127.0.0.0/8"});
  EXPECT_EQ(text(r.fetch(url("/img"))), "IMAGEBYTES");
}

TEST_F(UrlFetchTest, UnlistedHostsAreRefusedBeforeAnyConnection) {
  auto f = fetcher({"127.0.0.1"});
  EXPECT_NE(
      error_of(f, "http://example.invalid/x.jpg").find("not in the server's --allow-url-host"),
      std::string::npos);
  EXPECT_NE(error_of(f, url("/img", "127.0.0.2")).find("not in"), std::string::npos);
  auto s = fetcher({"*.example.com"});
  EXPECT_NE(error_of(s, "http://example.com.evil.test/").find("not in"), std::string::npos);
  EXPECT_NE(error_of(s, "http://evilexample.com/").find("not in"), std::string::npos);
}

TEST_F(UrlFetchTest, NameResolvingToLoopbackNeedsTheAddressListed) {
  auto by_name = fetcher({"localhost"});
  const std::string e = error_of(by_name, url("/img", "localhost"));
  EXPECT_NE(e.find("loopback/private"), std::string::npos) << e;
  auto with_range = fetcher({"localhost", "127.0.0.0/8", "::1"});
  EXPECT_EQ(text(with_range.fetch(url("/img", "localhost"))), "IMAGEBYTES");
}

TEST_F(UrlFetchTest, EveryRedirectIsChecked) {
  auto f = fetcher({"127.0.0.1"});
  EXPECT_NE(error_of(f, url("/redir-out")).find("redirect to 'http://localhost"),
            std::string::npos);
  EXPECT_NE(error_of(f, url("/redir-file")).find("only http and https"), std::string::npos);
  EXPECT_NE(error_of(f, url("/loop")).find("more than 3 redirects"), std::string::npos);
}

TEST_F(UrlFetchTest, SizeTimeAndStatusLimits) {
  auto f = fetcher({"127.0.0.1"}, 1u << 20, 400);
  EXPECT_NE(error_of(f, url("/big"), ErrorCode::kTooLarge).find("larger than"), std::string::npos);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(error_of(f, url("/slow")).find("timed out after 400 ms"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1400));
  EXPECT_NE(error_of(f, url("/missing")).find("HTTP 404"), std::string::npos);
}

TEST_F(UrlFetchTest, BadUrlsAndEntries) {
  auto f = fetcher({"127.0.0.1"});
  EXPECT_NE(error_of(f, "ftp://127.0.0.1/x").find("only http and https"), std::string::npos);
  EXPECT_NE(error_of(f, "file:///etc/passwd").find("only http and https"), std::string::npos);
  EXPECT_NE(error_of(f, "http://").find("malformed"), std::string::npos);
  EXPECT_THROW(UrlFetcher::check_allow_entry("exa mple.com"), Error);
  EXPECT_THROW(UrlFetcher::check_allow_entry("10.0.0.0/33"), Error);
  EXPECT_NO_THROW(UrlFetcher::check_allow_entry("fd00::/8"));
  EXPECT_TRUE(UrlFetcher::is_url("HTTPS://x/y"));
  EXPECT_FALSE(UrlFetcher::is_url("data:image/png;base64,AAAA"));
}

}  // namespace
}  // namespace clipserve::server

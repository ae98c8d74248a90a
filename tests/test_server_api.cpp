// HTTP API strictness tests: content types (415), Host allow-list, CORS and its preflight,
// nosniff, bearer scheme; unknown fields and unparseable parameters, truncation reports,
// per-item errors, label lists, request bounds.
#include <gtest/gtest.h>
#include <httplib.h>

#include <string>

#include "server_testing.h"

namespace clipserve {
namespace {

TEST_F(ServerTest, JsonEndpointsRequireApplicationJson) {
  start();
  auto c = client();
  const std::string body = R"({"texts":["a"]})";
  // What a cross-site form or fetch() without preflight can send.
  for (const char* ct : {"text/plain", "application/x-www-form-urlencoded"}) {
    expect_error(c.Post("/embed", body, ct), 415, "application/json");
    expect_error(c.Post("/v1/embeddings", R"({"input":"a"})", ct), 415, "application/json");
    expect_error(c.Post("/classify", R"({"images":["aW1n"],"labels":["a"]})", ct), 415,
                 "application/json");
    expect_error(c.Put("/labelsets/x", R"({"labels":["a"]})", ct), 415, "application/json");
  }
  EXPECT_EQ(c.Post("/embed", body, "application/json; charset=utf-8")->status, 200);
  EXPECT_EQ(c.Post("/embed", body, "Application/JSON")->status, 200);
}

TEST_F(ServerTest, HostHeaderMustNameThisServerOnLoopback) {
  start();
  auto c = client();
  httplib::Headers evil{{"Host", "rebound.example:8080"}};
  expect_error(c.Get("/v1/models", evil), 403, "rebound.example");
  expect_error(c.Post("/embed", evil, R"({"texts":["a"]})", "application/json"), 403, "Host");
  for (const char* h : {"localhost:8080", "127.0.0.1", "[::1]:9", "LOCALHOST"}) {
    EXPECT_EQ(c.Get("/v1/models", {{"Host", h}})->status, 200) << h;
  }
  TearDown();
  server_.reset();
  server::ServerOptions so;
  so.allowed_hosts = {"clip.internal"};
  start({}, so);
  EXPECT_EQ(client().Get("/v1/models", {{"Host", "clip.internal:80"}})->status, 200);
  EXPECT_EQ(client().Get("/v1/models", {{"Host", "other.internal"}})->status, 403);
}

TEST_F(ServerTest, CrossOriginRequestsRefusedUnlessAllowed) {
  start();
  auto c = client();
  httplib::Headers site{{"Origin", "https://any.example"}};
  expect_error(c.Post("/embed", site, R"({"texts":["a"]})", "application/json"), 403,
               "cross-origin");
  // A multipart form is a "simple" request a page can send without preflight: refused too.
  httplib::MultipartFormDataItems form{{"text", "a", "", ""}};
  expect_error(c.Post("/embed", site, form), 403, "cross-origin");
  EXPECT_EQ(c.Options("/embed", site)->status, 403);
  // Same origin is not cross-origin.
  const std::string self = "http://127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(c.Post("/embed", {{"Origin", self}}, R"({"texts":["a"]})", "application/json")->status,
            200);
  TearDown();
  server_.reset();

  server::ServerOptions so;
  so.cors_origins = {"https://app.example"};
  start({}, so);
  auto d = client();
  httplib::Headers pre{{"Origin", "https://app.example"},
                       {"Access-Control-Request-Method", "POST"},
                       {"Access-Control-Request-Headers", "content-type"}};
  auto r = d.Options("/embed", pre);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_NE(r->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos);
  EXPECT_NE(r->get_header_value("Access-Control-Allow-Headers").find("Content-Type"),
            std::string::npos);
  r = d.Post("/embed", {{"Origin", "https://app.example"}}, R"({"texts":["a"]})",
             "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(r->get_header_value("Vary"), "Origin");
  EXPECT_EQ(d.Options("/embed", {{"Origin", "https://other.example"}})->status, 403);
}

TEST_F(ServerTest, EveryResponseCarriesNosniff) {
  server::ServerOptions so;
  so.max_body_bytes = 64;
  so.api_key = "k";
  start({}, so);
  auto c = client();
  httplib::Headers auth{{"Authorization", "bearer k"}};  // the scheme is case-insensitive
  auto ok = c.Post("/embed", auth, R"({"texts":["a"]})", "application/json");
  EXPECT_EQ(ok->status, 200);
  auto missing = c.Get("/nope", auth);
  EXPECT_EQ(missing->status, 404);
  auto unauthorized = c.Get("/v1/models");
  EXPECT_EQ(unauthorized->status, 401);
  auto big = c.Post("/embed", auth, std::string(100, 'x'), "image/jpeg");
  EXPECT_EQ(big->status, 413);
  for (const auto* r : {&ok, &missing, &unauthorized, &big}) {
    EXPECT_EQ((*r)->get_header_value("X-Content-Type-Options"), "nosniff");
  }
}

}  // namespace
}  // namespace clipserve

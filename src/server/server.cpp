// The HTTP server: request admission (Host, Origin/CORS, API key), errors, metrics, health,
// models, label sets, draining on stop(); inference routes live in routes_*.cpp.
#include "server/server.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>

#include "clipserve/detect.h"
#include "core/check.h"
#include "engine/metrics.h"
#include "server/codec.h"
#include "server/connection.h"
#include "server/http_util.h"
#include "server/routes.h"
#include "server/routes_detect.h"
#include "server/routes_web.h"

namespace clipserve::server {

namespace {
std::string endpoint_label(const httplib::Request& req) {
  static const char* kKnown[] = {
      "/v1/embeddings", "/embed",   "/classify",  "/health/live",    "/health/ready",
      "/v1/models",     "/metrics", "/labelsets", "/embeddings",     "/models",
      "/ping",          "/predict", "/v2",        "/v2/health/live", "/v2/health/ready",
      "/detect"};
  for (const char* k : kKnown) {
    if (req.path == k) return k;
  }
  if (req.path.rfind("/labelsets/", 0) == 0) return "/labelsets/{name}";
  if (req.path.rfind("/v1/models/", 0) == 0 || req.path.rfind("/models/", 0) == 0) {
    return "/v1/models/{id}";
  }
  if (req.path.rfind("/v2/models/", 0) == 0) {
    return req.path.size() > 6 && req.path.compare(req.path.size() - 6, 6, "/infer") == 0
               ? "/v2/models/{name}/infer"
               : "/v2/models/{name}";
  }
  return "other";
}

void check_label_set_name(const std::string& name) {
  const bool ok =
      !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
  CS_CHECK_ARG(ok, "label set name '", name, "' must be 1-128 characters of A-Z a-z 0-9 _ . -");
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "Bearer <key>", the scheme case-insensitive (RFC 9110 11.1); compared in constant time.
bool bearer_matches(const std::string& header, const std::string& key) {
  if (header.size() < 7 || lower(header.substr(0, 7)) != "bearer ") return false;
  std::string token = header.substr(7);
  while (!token.empty() && token.front() == ' ') token.erase(0, 1);
  while (!token.empty() && token.back() == ' ') token.pop_back();
  unsigned diff = token.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= token[i] ^ key[i % std::max<size_t>(1, key.size())];
  return diff == 0;
}

// The host name of a Host header or an origin's authority, without the port, lower case.
std::string host_name(std::string authority) {
  authority = lower(authority);
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    return close == std::string::npos ? authority : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.find(':'));
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]";
}

}  // namespace

std::vector<std::string> ServerOptions::default_allowed_hosts(const std::string& bind_host) {
  if (!is_loopback(bind_host)) return {};
  return {"localhost", "127.0.0.1", "[::1]"};
}

bool Server::host_allowed(const std::string& host_header) const {
  if (allowed_hosts_.empty() || host_header.empty()) return true;
  const std::string h = host_name(host_header);
  for (const auto& a : allowed_hosts_) {
    if (a == "*" || a == h) return true;
  }
  return false;
}

bool Server::origin_allowed(const std::string& origin, const std::string& host_header) const {
  const std::string o = lower(origin);
  for (const auto& a : opt_.cors_origins) {
    if (a == "*" || lower(a) == o) return true;
  }
  // Same origin: a page served from this very authority.
  const size_t scheme = o.find("://");
  return scheme != std::string::npos && !host_header.empty() &&
         o.substr(scheme + 3) == lower(host_header);
}

Server::Server(Engine& engine, ServerOptions opt)
    : own_models_(std::make_unique<ModelSet>(engine.metrics())),
      models_(own_models_.get()),
      reg_(&engine.metrics()),
      opt_(std::move(opt)),
      http_(std::make_unique<Router>()) {
  ModelSpec spec;
  spec.names = opt_.model_names;
  // Not owned: the caller keeps the engine alive longer than the server.
  models_->add(std::shared_ptr<Engine>(&engine, [](Engine*) {}), std::move(spec));
  init();
}

Server::Server(ModelSet& models, metrics::Registry& metrics, ServerOptions opt)
    : models_(&models), reg_(&metrics), opt_(std::move(opt)), http_(std::make_unique<Router>()) {
  CS_CHECK_ARG(models.size() >= 1, "the server needs at least one model");
  init();
}

ModelAccess Server::model_access() {
  return ModelAccess{models_, [this] { return draining_.load(); }};
}

void Server::init() {
  allowed_hosts_ = ServerOptions::default_allowed_hosts(opt_.host);
  for (const auto& h : opt_.allowed_hosts) allowed_hosts_.push_back(lower(h));
  if (!allowed_hosts_.empty() &&
      std::find(allowed_hosts_.begin(), allowed_hosts_.end(), "*") != allowed_hosts_.end()) {
    allowed_hosts_.clear();
  }
  if (!opt_.url_fetch.allow.empty()) fetcher_ = std::make_unique<UrlFetcher>(opt_.url_fetch);
  http_->set_payload_max_length(opt_.max_body_bytes);
  http_->set_keep_alive_max_count(static_cast<size_t>(std::max(1, opt_.keep_alive_max_requests)));
  http_->set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, opt_.idle_timeout_s)));
  install_routes();

  ConnectionOptions co;
  co.host = opt_.host;
  co.port = opt_.port;
  co.backlog = opt_.listen_backlog;
  co.workers = std::max(1, opt_.http_threads);
  co.max_connections = opt_.max_connections;
  co.request_timeout_s = opt_.request_timeout_s;
  co.idle_timeout_s = opt_.idle_timeout_s;
  co.write_timeout_s = opt_.write_timeout_s;
  co.shutdown_timeout_s = opt_.shutdown_timeout_s;
  co.keep_alive_max_requests = opt_.keep_alive_max_requests;
  co.limits.max_body_bytes = opt_.max_body_bytes;
  co.limits.max_header_bytes = opt_.max_header_bytes;
  co.limits.max_headers = opt_.max_headers;
  co.error_body = [](int status, const std::string& message) {
    json body = {
        {"error", {{"message", message}, {"type", type_for_status(status)}, {"code", status}}}};
    return dump(body);
  };
  auto* reg = reg_;
  co.on_error = [reg](int status) {
    reg->counter("clipserve_http_requests_total", "HTTP requests by endpoint and status",
                 {{"endpoint", "connection"}, {"code", std::to_string(status)}})
        .inc();
    reg->counter("clipserve_http_errors_total", "HTTP responses with status >= 400",
                 {{"endpoint", "connection"}})
        .inc();
  };
  conn_ = std::make_unique<ConnectionLayer>(*http_, std::move(co));
}

Server::~Server() {
  stop();
  conn_.reset();  // joins the workers before the router goes
}

httplib::Server& Server::http() { return *http_; }

std::string Server::handle_raw(std::string_view request) {
  FramingLimits lim;
  lim.max_body_bytes = opt_.max_body_bytes;
  lim.max_header_bytes = opt_.max_header_bytes;
  lim.max_headers = opt_.max_headers;
  RequestFramer framer(lim);
  const Frame& f = framer.feed(request);
  if (f.state == Frame::kNeedMore) return "";
  if (f.state == Frame::kError) {
    json body = {
        {"error",
         {{"message", f.message}, {"type", type_for_status(f.status)}, {"code", f.status}}}};
    return raw_error_response(f.status, dump(body));
  }
  std::string req(request.substr(0, f.length));
  for (size_t off : f.neutralize) req[off] = 'X';
  MemoryStream s(req, "127.0.0.1", 1);
  bool closed = false;
  http_->process(s, /*close_connection=*/true, closed);
  return std::move(s.out());
}

int Server::bind() {
  opt_.port = conn_->bind();
  return opt_.port;
}

bool Server::run() { return conn_->run(); }

void Server::stop() {
  draining_ = true;
  if (conn_) conn_->stop();
}

void Server::install_routes() {
  auto& reg = *reg_;
  auto* http_hist = &reg;

  http_->set_default_headers({{"X-Content-Type-Options", "nosniff"}});

  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_ctx = RequestContext{Clock::now(), 0, fetcher_.get()};
    using HR = httplib::Server::HandlerResponse;
    if (!host_allowed(req.get_header_value("Host"))) {
      send_error(res, 403, "forbidden",
                 "Host '" + req.get_header_value("Host") +
                     "' is not served here (allowed: see --allowed-host)");
      return HR::Handled;
    }
    if (req.has_header("Origin")) {
      const std::string origin = req.get_header_value("Origin");
      if (!origin_allowed(origin, req.get_header_value("Host"))) {
        send_error(res, 403, "forbidden",
                   "cross-origin request from '" + origin + "' refused (see --cors-origin)");
        return HR::Handled;
      }
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
    }
    if (req.method == "OPTIONS") {  // CORS preflight (the origin was checked above)
      res.status = 204;
      res.set_header("Allow", "GET, POST, PUT, DELETE, OPTIONS");
      if (req.has_header("Origin")) {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE");
        res.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization");
        res.set_header("Access-Control-Max-Age", "600");
      }
      return HR::Handled;
    }
    if (!opt_.api_key.empty() && req.path.rfind("/health/", 0) != 0 && !is_web_path(req.path) &&
        !bearer_matches(req.get_header_value("Authorization"), opt_.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer");
      if (is_openai_path(req.path)) {
        send_openai_error(res, 401, "invalid_api_key",
                          "missing or wrong API key (Authorization: Bearer)");
      } else {
        send_error(res, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer)");
      }
      return HR::Handled;
    }
    return HR::Unhandled;
  });

  http_->set_logger([http_hist](const httplib::Request& req, const httplib::Response& res) {
    const std::string ep = endpoint_label(req);
    http_hist
        ->counter("clipserve_http_requests_total", "HTTP requests by endpoint and status",
                  {{"endpoint", ep}, {"code", std::to_string(res.status)}})
        .inc();
    if (res.status >= 400) {
      http_hist
          ->counter("clipserve_http_errors_total", "HTTP responses with status >= 400",
                    {{"endpoint", ep}})
          .inc();
    }
    if (t_ctx.start != Clock::time_point{}) {
      http_hist
          ->histogram("clipserve_http_request_seconds", "HTTP request latency",
                      metrics::latency_buckets(), {{"endpoint", ep}})
          .observe(ms_since(t_ctx.start) / 1000.0);
    }
    // Requests httplib rejects before routing (413, malformed) never set a start time.
    t_ctx.start = Clock::time_point{};
  });

  // Errors httplib produces itself (404 route, 413 body limit, 400 bad request) get our JSON.
  // httplib calls this for every status >= 400; ours already carry a JSON body.
  http_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string msg = res.status == 404   ? "no route for " + req.method + " " + req.path
                          : res.status == 413 ? "request body larger than the server's limit"
                          : res.status == 414 ? "request target too long"
                                              : "bad HTTP request";
        if (is_openai_path(req.path)) {
          send_openai_error(res, res.status, type_for_status(res.status), msg);
        } else {
          send_error(res, res.status, type_for_status(res.status), msg);
        }
        return httplib::Server::HandlerResponse::Handled;
      }));

  http_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        // OpenAI's SDKs read {"error": {"type", "code": "<string>", "param"}} on their paths.
        auto send = [&](int status, const std::string& type, const std::string& msg) {
          if (!is_openai_path(req.path)) return send_error(res, status, type, msg);
          const bool model = status == 404 && msg.rfind("model '", 0) == 0;
          send_openai_error(res, status, model ? "model_not_found" : type, msg);
        };
        try {
          std::rethrow_exception(ep);
        } catch (const StatusError& e) {
          send(e.status(), e.type(), e.what());
        } catch (const Error& e) {
          send(status_for(e.code()), error_code_name(e.code()), e.what());
        } catch (const std::exception& e) {
          send(500, "internal", e.what());
        } catch (...) {
          send(500, "internal", "unknown error");
        }
      });

  const ModelAccess models = model_access();
  // Label sets belong to one model: ?model=NAME (default: the default model).
  auto label_engine = [models](const httplib::Request& req) {
    check_params(req, {"model"});
    return models.resolve(req.has_param("model") ? req.get_param_value("model") : "");
  };

  install_web_routes(*http_);
  if (opt_.detector != nullptr) install_detect_routes(*http_, *opt_.detector, reg, draining_);
  http_->Get("/health/live", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"live\"}", "application/json");
  });
  // Overall readiness; ?model=NAME: that model's (an idle-unloaded model counts as ready).
  http_->Get("/health/ready", [this](const httplib::Request& req, httplib::Response& res) {
    check_params(req, {"model"});
    bool ready = models_->ready();
    if (req.has_param("model")) {
      const auto info = models_->find(req.get_param_value("model"));
      if (!info)
        throw Error(ErrorCode::kNotFound, models_->not_served(req.get_param_value("model")));
      ready = info->ready;
    }
    if (draining_) {
      res.status = 503;
      res.set_content("{\"status\":\"draining\"}", "application/json");
    } else if (!ready) {
      res.status = 503;
      res.set_content("{\"status\":\"warming_up\"}", "application/json");
    } else {
      res.set_content("{\"status\":\"ready\"}", "application/json");
    }
  });
  install_model_routes(*http_, models, opt_.detector ? opt_.detector->model_id() : "");
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string text = reg_->render();
    text +=
        "# HELP clipserve_http_open_connections Open HTTP connections\n"
        "# TYPE clipserve_http_open_connections gauge\n"
        "clipserve_http_open_connections " +
        std::to_string(conn_ ? conn_->open_connections() : 0) + "\n";
    res.set_content(std::move(text), "text/plain; version=0.0.4");
  });

  install_embedding_routes(*http_, models, opt_.bounds);
  install_classify_routes(*http_, models, opt_.bounds);
  install_immich_routes(*http_, models);
  install_kserve_routes(*http_, models, opt_.bounds);

  http_->Get("/labelsets", [label_engine](const httplib::Request& req, httplib::Response& res) {
    const auto engine = label_engine(req);
    json body = {{"labelsets", engine->label_set_names()}};
    res.set_content(dump(body), "application/json");
  });
  http_->Put(R"(/labelsets/([^/]+))",
             [this, label_engine](const httplib::Request& req, httplib::Response& res) {
               const std::string name = req.matches[1];
               check_label_set_name(name);
               json body = parse_json_body(req);  // first: a form body would be parameters
               const auto lease = label_engine(req);
               Engine& engine = *lease;
               check_fields(body, {"labels", "templates"});
               CS_CHECK_ARG(body.contains("labels"), "missing 'labels'");
               auto labels = string_list(body["labels"], "labels");
               std::vector<std::string> templates;
               if (body.contains("templates")) templates = templates_from(body["templates"]);
               check_prompts(labels, templates, opt_.bounds);
               if (!engine.get_label_set(name) &&
                   engine.label_set_names().size() >= opt_.bounds.max_label_sets) {
                 CS_THROW(kTooLarge, "there are already ", opt_.bounds.max_label_sets,
                          " label sets (--max-label-sets); delete one first");
               }
               const bool replaced = engine.put_label_set(name, labels, templates);
               auto info = engine.get_label_set(name);
               json out = {{"name", name},
                           {"labels", info ? info->labels.size() : 0},
                           {"templates", info ? info->templates.size() : 0},
                           {"replaced", replaced}};
               res.status = replaced ? 200 : 201;
               res.set_content(dump(out), "application/json");
             });
  http_->Get(
      R"(/labelsets/([^/]+))", [label_engine](const httplib::Request& req, httplib::Response& res) {
        const std::string name = req.matches[1];
        auto info = label_engine(req)->get_label_set(name);
        if (!info) CS_THROW(kNotFound, "label set '", name, "' is not registered");
        json out = {{"name", name}, {"labels", info->labels}, {"templates", info->templates}};
        res.set_content(dump(out), "application/json");
      });
  http_->Delete(R"(/labelsets/([^/]+))",
                [label_engine](const httplib::Request& req, httplib::Response& res) {
                  const std::string name = req.matches[1];
                  if (!label_engine(req)->delete_label_set(name)) {
                    CS_THROW(kNotFound, "label set '", name, "' is not registered");
                  }
                  res.set_content(dump(json({{"deleted", name}})), "application/json");
                });
}

}  // namespace clipserve::server

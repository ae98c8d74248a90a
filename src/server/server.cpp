// HTTP routes: request parsing (JSON, raw image bodies, multipart), engine calls, JSON
// responses and errors, Server-Timing, API-key check, HTTP metrics, draining on stop().
#include "server/server.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "engine/metrics.h"
#include "server/codec.h"
#include "server/routes_detect.h"

namespace clipserve::server {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Client strings may hold invalid UTF-8 (multipart fields, echoed input): replace, never throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Per-request state; every request runs start to end on one worker thread.
struct RequestContext {
  Clock::time_point start;
  double parse_ms = 0;
};
thread_local RequestContext t_ctx;

int status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kOverloaded:
      return 429;
    case ErrorCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void send_error(httplib::Response& res, int status, const std::string& type,
                const std::string& message) {
  res.status = status;
  if (status == 429 || status == 503) res.set_header("Retry-After", "1");
  json body = {{"error", {{"message", message}, {"type", type}, {"code", status}}}};
  res.set_content(dump(body), "application/json");
}

const char* type_for_status(int status) {
  switch (status) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthorized";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "too_large";
    case 429:
      return "overloaded";
    case 503:
      return "unavailable";
    default:
      return "internal";
  }
}

bool truthy(const std::string& v) { return v == "1" || v == "true" || v == "yes"; }

bool want_timings(const httplib::Request& req, const json* body) {
  if (req.has_param("timings") && truthy(req.get_param_value("timings"))) return true;
  return body && body->is_object() && body->contains("timings") &&
         (*body)["timings"].is_boolean() && (*body)["timings"].get<bool>();
}

json parse_json_body(const httplib::Request& req) {
  const auto t0 = Clock::now();
  CS_CHECK_ARG(!req.body.empty(), "the request body is empty (expected JSON)");
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::exception& e) {
    CS_THROW(kInvalidArgument, "invalid JSON body: ", e.what());
  }
  CS_CHECK_ARG(body.is_object(), "the JSON body must be an object");
  t_ctx.parse_ms += ms_since(t0);
  return body;
}

bool is_json(const httplib::Request& req) {
  return req.get_header_value("Content-Type").rfind("application/json", 0) == 0;
}
bool is_raw_image(const httplib::Request& req) {
  const auto ct = req.get_header_value("Content-Type");
  return ct.rfind("image/", 0) == 0 || ct.rfind("application/octet-stream", 0) == 0;
}

std::string index_name(const char* field, size_t i) {
  return std::string(field).append("[").append(std::to_string(i)).append("]");
}

// A JSON image value: base64 string / data: URL, or {"image"|"data"|"b64": ...} or
// {"image_url": "data:..." | {"url": "data:..."}}.
ImageInput image_from_json(const json& v, const std::string& name) {
  const json* s = nullptr;
  if (v.is_string()) {
    s = &v;
  } else if (v.is_object()) {
    for (const char* k : {"image", "data", "b64", "image_url"}) {
      if (v.contains(k)) {
        s = &v[k];
        break;
      }
    }
    if (s && s->is_object() && s->contains("url")) s = &(*s)["url"];
  }
  CS_CHECK_ARG(s && s->is_string(), name,
               ": an image must be a base64 string, a data: URL, or {\"image\": <base64>}");
  const auto& str = s->get_ref<const std::string&>();
  CS_CHECK_ARG(str.rfind("http://", 0) != 0 && str.rfind("https://", 0) != 0, name,
               ": image URLs are not fetched; send the bytes (base64 or a data: URL)");
  const auto t0 = Clock::now();
  auto bytes = base64_decode(str, name);
  t_ctx.parse_ms += ms_since(t0);
  CS_CHECK_ARG(!bytes.empty(), name, ": empty image");
  return ImageInput::encoded(std::move(bytes), name);
}

std::vector<std::string> string_list(const json& v, const char* field) {
  std::vector<std::string> out;
  if (v.is_string()) return {v.get<std::string>()};
  CS_CHECK_ARG(v.is_array(), "'", field, "' must be a string or an array of strings");
  for (size_t i = 0; i < v.size(); ++i) {
    CS_CHECK_ARG(v[i].is_string(), index_name(field, i), " must be a string");
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t next = s.find(',', pos);
    if (next == std::string::npos) next = s.size();
    std::string part = s.substr(pos, next - pos);
    const auto b = part.find_first_not_of(" \t"), e = part.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(part.substr(b, e - b + 1));
    pos = next + 1;
  }
  return out;
}

// "imagenet" / "simple" name the built-in template sets; anything else is a list.
std::vector<std::string> templates_from(const json& v) {
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "imagenet" || s == "openai_imagenet") return Engine::imagenet_templates();
    if (s == "simple") return Engine::simple_templates();
    return {s};
  }
  return string_list(v, "templates");
}

std::string timings_json(const StageTimings& t) {
  json j = {{"parse_ms", t_ctx.parse_ms},
            {"decode_ms", t.decode_ms},
            {"preprocess_ms", t.preprocess_ms},
            {"queue_ms", t.queue_ms},
            {"encode_ms", t.encode_ms},
            {"postprocess_ms", t.postprocess_ms},
            {"engine_total_ms", t.total_ms},
            {"total_ms", ms_since(t_ctx.start)},
            {"batches", t.batches},
            {"max_batch", t.max_batch}};
  return dump(j);
}

void set_server_timing(httplib::Response& res, const StageTimings& t) {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "parse;dur=%.3f, decode;dur=%.3f, preprocess;dur=%.3f, queue;dur=%.3f, "
                "encode;dur=%.3f, postprocess;dur=%.3f, total;dur=%.3f",
                t_ctx.parse_ms, t.decode_ms, t.preprocess_ms, t.queue_ms, t.encode_ms,
                t.postprocess_ms, ms_since(t_ctx.start));
  res.set_header("Server-Timing", buf);
}

// Stage timings of two requests that ran side by side (texts and images of one call).
StageTimings merge(const StageTimings& a, const StageTimings& b) {
  StageTimings m;
  m.decode_ms = std::max(a.decode_ms, b.decode_ms);
  m.preprocess_ms = std::max(a.preprocess_ms, b.preprocess_ms);
  m.queue_ms = std::max(a.queue_ms, b.queue_ms);
  m.encode_ms = a.encode_ms + b.encode_ms;
  m.postprocess_ms = a.postprocess_ms + b.postprocess_ms;
  m.total_ms = std::max(a.total_ms, b.total_ms);
  m.batches = a.batches + b.batches;
  m.max_batch = std::max(a.max_batch, b.max_batch);
  return m;
}

// Finishes a JSON object built as a string: adds "timings" when asked, sets the headers.
void respond(const httplib::Request& req, httplib::Response& res, std::string body,
             const StageTimings& t, bool timings_in_body, int status = 200) {
  (void)req;
  set_server_timing(res, t);
  if (timings_in_body) {
    CS_ASSERT(!body.empty() && body.back() == '}');
    body.pop_back();
    body += ",\"timings\":" + timings_json(t) + "}";
  }
  res.status = status;
  res.set_content(std::move(body), "application/json");
}

std::string quoted(const std::string& s) { return dump(json(s)); }

// Images of a multipart form: every part with a file name, in field order.
std::vector<ImageInput> multipart_images(const httplib::Request& req) {
  std::vector<ImageInput> images;
  for (const auto& [field, part] : req.files) {
    if (part.filename.empty()) continue;
    const std::string name = part.filename.empty() ? field : part.filename;
    images.push_back(
        ImageInput::encoded(std::vector<uint8_t>(part.content.begin(), part.content.end()), name));
  }
  return images;
}

std::vector<std::string> multipart_fields(const httplib::Request& req, const std::string& key) {
  std::vector<std::string> out;
  auto range = req.files.equal_range(key);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second.filename.empty()) out.push_back(it->second.content);
  }
  return out;
}

std::string endpoint_label(const httplib::Request& req) {
  static const char* kKnown[] = {"/v1/embeddings", "/embed",     "/classify", "/health/live",
                                 "/health/ready",  "/v1/models", "/metrics",  "/labelsets",
                                 "/detect"};
  for (const char* k : kKnown) {
    if (req.path == k) return k;
  }
  if (req.path.rfind("/labelsets/", 0) == 0) return "/labelsets/{name}";
  return "other";
}

void check_label_set_name(const std::string& name) {
  const bool ok =
      !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
  CS_CHECK_ARG(ok, "label set name '", name, "' must be 1-128 characters of A-Z a-z 0-9 _ . -");
}

}  // namespace

Server::Server(Engine& engine, ServerOptions opt)
    : engine_(engine), opt_(std::move(opt)), http_(std::make_unique<httplib::Server>()) {
  const int threads = std::max(1, opt_.http_threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(opt_.max_body_bytes);
  http_->set_keep_alive_max_count(static_cast<size_t>(std::max(1, opt_.keep_alive_max_requests)));
  http_->set_read_timeout(opt_.read_timeout_s, 0);
  install_routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  int port = opt_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(opt_.host);
    if (port < 0) CS_THROW(kIo, "cannot bind ", opt_.host, " on any port");
  } else if (!http_->bind_to_port(opt_.host, port)) {
    CS_THROW(kIo, "cannot bind ", opt_.host, ":", port, " (in use, or no permission)");
  }
  opt_.port = port;
  return port;
}

bool Server::run() { return http_->listen_after_bind(); }

void Server::stop() {
  draining_ = true;
  if (http_) http_->stop();
}

void Server::install_routes() {
  auto& reg = engine_.metrics();
  auto* http_hist = &reg;

  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_ctx = RequestContext{Clock::now(), 0};
    if (!opt_.api_key.empty() && req.path.rfind("/health/", 0) != 0) {
      const std::string want = "Bearer " + opt_.api_key;
      if (req.get_header_value("Authorization") != want) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer)");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
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
                                              : "bad HTTP request";
        send_error(res, res.status, type_for_status(res.status), msg);
        return httplib::Server::HandlerResponse::Handled;
      }));

  http_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const Error& e) {
          const int st = status_for(e.code());
          send_error(res, st, error_code_name(e.code()), e.what());
        } catch (const std::exception& e) {
          send_error(res, 500, "internal", e.what());
        } catch (...) {
          send_error(res, 500, "internal", "unknown error");
        }
      });

  if (opt_.detector != nullptr) install_detect_routes(*http_, *opt_.detector, reg, draining_);

  auto require_ready = [this]() {
    if (draining_) CS_THROW(kUnavailable, "the server is shutting down");
    if (!engine_.ready()) CS_THROW(kUnavailable, "the model is warming up; retry shortly");
  };

  http_->Get("/health/live", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"live\"}", "application/json");
  });
  http_->Get("/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_) {
      res.status = 503;
      res.set_content("{\"status\":\"draining\"}", "application/json");
    } else if (!engine_.ready()) {
      res.status = 503;
      res.set_content("{\"status\":\"warming_up\"}", "application/json");
    } else {
      res.set_content("{\"status\":\"ready\"}", "application/json");
    }
  });
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const auto& c = engine_.config();
    json m = {{"id", engine_.model_id()},
              {"object", "model"},
              {"created", 0},
              {"owned_by", "clipserve"},
              {"embed_dim", engine_.embed_dim()},
              {"image_size", c.vision.image_size},
              {"context_length", c.text.context_length},
              {"ready", engine_.ready()}};
    json body = {{"object", "list"}, {"data", json::array({m})}};
    res.set_content(dump(body), "application/json");
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(engine_.metrics_text(), "text/plain; version=0.0.4");
  });

  // OpenAI-compatible embeddings (texts), plus images as {"image": <base64>} items.
  http_->Post("/v1/embeddings", [this, require_ready](const httplib::Request& req,
                                                      httplib::Response& res) {
    require_ready();
    json body = parse_json_body(req);
    CS_CHECK_ARG(body.contains("input"), "missing 'input'");
    if (body.contains("model") && !body["model"].is_null()) {
      CS_CHECK_ARG(body["model"].is_string(), "'model' must be a string");
      const auto m = body["model"].get<std::string>();
      if (m != engine_.model_id()) {
        CS_THROW(kNotFound, "model '", m, "' is not served here; this server serves '",
                 engine_.model_id(), "'");
      }
    }
    std::string format = "float";
    if (body.contains("encoding_format") && !body["encoding_format"].is_null()) {
      CS_CHECK_ARG(body["encoding_format"].is_string(), "'encoding_format' must be a string");
      format = body["encoding_format"].get<std::string>();
      CS_CHECK_ARG(format == "float" || format == "base64", "encoding_format '", format,
                   "' is not supported (float or base64)");
    }
    if (body.contains("dimensions") && !body["dimensions"].is_null()) {
      CS_CHECK_ARG(body["dimensions"].is_number_integer() &&
                       body["dimensions"].get<int>() == engine_.embed_dim(),
                   "'dimensions' must equal the model's embedding size ", engine_.embed_dim());
    }
    const json& input = body["input"];
    std::vector<json> items;
    if (input.is_array()) {
      CS_CHECK_ARG(!input.empty(), "'input' is an empty array");
      CS_CHECK_ARG(!input[0].is_number(),
                   "token-id inputs are not supported (CLIP uses its own tokenizer); send text");
      items.assign(input.begin(), input.end());
    } else {
      items.push_back(input);
    }
    std::vector<std::string> texts;
    std::vector<ImageInput> images;
    std::vector<std::pair<bool, int>> where;  // per input: (is_image, index within its kind)
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& it = items[i];
      const std::string name = index_name("input", i);
      if (it.is_string()) {
        where.push_back({false, static_cast<int>(texts.size())});
        texts.push_back(it.get<std::string>());
      } else if (it.is_object() && it.contains("text")) {
        CS_CHECK_ARG(it["text"].is_string(), name, ".text must be a string");
        where.push_back({false, static_cast<int>(texts.size())});
        texts.push_back(it["text"].get<std::string>());
      } else if (it.is_object()) {
        where.push_back({true, static_cast<int>(images.size())});
        images.push_back(image_from_json(it, name));
      } else {
        CS_THROW(kInvalidArgument, name,
                 " must be a string, {\"text\": ...} or {\"image\": <base64>}",
                 it.is_array() ? " (token-id inputs are not supported)" : "");
      }
    }
    std::future<Embeddings> ft, fi;
    if (!texts.empty()) {
      try {
        ft = engine_.submit_texts(texts);
      } catch (const Error& e) {
        // The engine names "texts[k]"; the client knows the position in 'input'.
        std::string msg = e.what();
        size_t k = 0;
        if (msg.rfind("texts[", 0) == 0 && std::sscanf(msg.c_str(), "texts[%zu]", &k) == 1) {
          for (size_t i = 0; i < where.size(); ++i) {
            if (!where[i].first && where[i].second == static_cast<int>(k)) {
              msg = index_name("input", i) + msg.substr(msg.find(']') + 1);
              break;
            }
          }
        }
        throw Error(e.code(), msg);
      }
    }
    if (!images.empty()) fi = engine_.submit_images(std::move(images));
    Embeddings et, ei;
    if (ft.valid()) et = ft.get();
    if (fi.valid()) ei = fi.get();
    int tokens = 0;
    for (int c : et.token_counts) tokens += c;
    std::string out = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < where.size(); ++i) {
      const Embeddings& e = where[i].first ? ei : et;
      const float* row = e.row(where[i].second);
      if (i) out += ',';
      out += "{\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
      if (format == "base64") {
        out += '"' +
               base64_encode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(row),
                                                      e.dim * sizeof(float))) +
               '"';
      } else {
        append_float_array(out, row, e.dim);
      }
      out += '}';
    }
    out += "],\"model\":" + quoted(engine_.model_id()) +
           ",\"usage\":{\"prompt_tokens\":" + std::to_string(tokens) +
           ",\"total_tokens\":" + std::to_string(tokens) + "}}";
    respond(req, res, std::move(out), merge(et.timings, ei.timings), want_timings(req, &body));
  });

  // Native embeddings: JSON {"texts": [...], "images": [<base64>...]}, a raw image body, or a
  // multipart form (files = images, "text" fields = texts).
  http_->Post("/embed", [this, require_ready](const httplib::Request& req, httplib::Response& res) {
    require_ready();
    std::vector<std::string> texts;
    std::vector<ImageInput> images;
    bool normalize = !(req.has_param("normalize") && !truthy(req.get_param_value("normalize")));
    json body;
    bool have_json = false;
    if (req.is_multipart_form_data()) {
      images = multipart_images(req);
      texts = multipart_fields(req, "text");
      for (auto& t : multipart_fields(req, "texts")) texts.push_back(std::move(t));
    } else if (is_raw_image(req)) {
      CS_CHECK_ARG(!req.body.empty(), "empty image body");
      images.push_back(
          ImageInput::encoded(std::vector<uint8_t>(req.body.begin(), req.body.end()), "body"));
    } else {
      CS_CHECK_ARG(is_json(req) || !req.body.empty(),
                   "send JSON, an image body (Content-Type image/*) or a multipart form");
      body = parse_json_body(req);
      have_json = true;
      if (body.contains("texts")) texts = string_list(body["texts"], "texts");
      if (body.contains("text")) texts.push_back(string_list(body["text"], "text").at(0));
      if (body.contains("images")) {
        CS_CHECK_ARG(body["images"].is_array(), "'images' must be an array");
        for (size_t i = 0; i < body["images"].size(); ++i) {
          images.push_back(image_from_json(body["images"][i], index_name("images", i)));
        }
      }
      if (body.contains("image")) images.push_back(image_from_json(body["image"], "image"));
      if (body.contains("normalize")) {
        CS_CHECK_ARG(body["normalize"].is_boolean(), "'normalize' must be true or false");
        normalize = body["normalize"].get<bool>();
      }
    }
    CS_CHECK_ARG(!texts.empty() || !images.empty(), "no texts or images in the request");
    std::future<Embeddings> ft, fi;
    if (!texts.empty()) ft = engine_.submit_texts(texts, normalize);
    if (!images.empty()) fi = engine_.submit_images(std::move(images), normalize);
    Embeddings et, ei;
    if (ft.valid()) et = ft.get();
    if (fi.valid()) ei = fi.get();
    std::string out = "{\"model\":" + quoted(engine_.model_id()) +
                      ",\"dim\":" + std::to_string(engine_.embed_dim());
    auto rows = [&out](const char* key, const Embeddings& e) {
      out += std::string(",\"") + key + "\":[";
      for (int i = 0; i < e.n; ++i) {
        if (i) out += ',';
        append_float_array(out, e.row(i), e.dim);
      }
      out += ']';
    };
    if (et.n) rows("text_embeddings", et);
    if (ei.n) rows("image_embeddings", ei);
    out += '}';
    respond(req, res, std::move(out), merge(et.timings, ei.timings),
            want_timings(req, have_json ? &body : nullptr));
  });

  // Zero-shot classification of one or many images.
  http_->Post(
      "/classify", [this, require_ready](const httplib::Request& req, httplib::Response& res) {
        require_ready();
        std::vector<ImageInput> images;
        LabelQuery q;
        json body;
        bool have_json = false;
        auto from_params = [&]() {
          if (req.has_param("labelset")) q.label_set = req.get_param_value("labelset");
          if (req.has_param("labels")) q.labels = split_commas(req.get_param_value("labels"));
          for (size_t i = 0; i < req.get_param_value_count("template"); ++i) {
            q.templates.push_back(req.get_param_value("template", i));
          }
          if (req.has_param("templates"))
            q.templates = templates_from(req.get_param_value("templates"));
          if (req.has_param("top_k")) q.top_k = std::atoi(req.get_param_value("top_k").c_str());
        };
        if (req.is_multipart_form_data()) {
          images = multipart_images(req);
          from_params();
          for (const auto& l : multipart_fields(req, "labels")) {
            for (auto& s : split_commas(l)) q.labels.push_back(std::move(s));
          }
          for (auto& l : multipart_fields(req, "label")) q.labels.push_back(std::move(l));
          for (auto& t : multipart_fields(req, "template")) q.templates.push_back(std::move(t));
          for (auto& t : multipart_fields(req, "templates")) q.templates = templates_from(t);
          for (auto& s : multipart_fields(req, "labelset")) q.label_set = s;
          for (auto& s : multipart_fields(req, "top_k")) q.top_k = std::atoi(s.c_str());
        } else if (is_raw_image(req)) {
          CS_CHECK_ARG(!req.body.empty(), "empty image body");
          images.push_back(
              ImageInput::encoded(std::vector<uint8_t>(req.body.begin(), req.body.end()), "body"));
          from_params();
        } else {
          body = parse_json_body(req);
          have_json = true;
          if (body.contains("images")) {
            CS_CHECK_ARG(body["images"].is_array(), "'images' must be an array");
            for (size_t i = 0; i < body["images"].size(); ++i) {
              images.push_back(image_from_json(body["images"][i], index_name("images", i)));
            }
          }
          if (body.contains("image")) images.push_back(image_from_json(body["image"], "image"));
          if (body.contains("labelset")) {
            CS_CHECK_ARG(body["labelset"].is_string(), "'labelset' must be a string");
            q.label_set = body["labelset"].get<std::string>();
          }
          if (body.contains("labels")) q.labels = string_list(body["labels"], "labels");
          if (body.contains("templates")) q.templates = templates_from(body["templates"]);
          if (body.contains("top_k")) {
            CS_CHECK_ARG(body["top_k"].is_number_integer(), "'top_k' must be an integer");
            q.top_k = body["top_k"].get<int>();
          }
        }
        CS_CHECK_ARG(!images.empty(), "no images in the request");
        CS_CHECK_ARG(!q.label_set.empty() || !q.labels.empty(),
                     "give 'labels' (with optional 'templates') or a registered 'labelset'");
        CS_CHECK_ARG(q.top_k >= 0, "'top_k' must be >= 0");
        std::vector<std::string> names;
        for (const auto& im : images) names.push_back(im.name);
        auto c = engine_.classify(std::move(images), q);
        json results = json::array();
        for (size_t i = 0; i < c.images.size(); ++i) {
          json labels = json::array();
          for (const auto& s : c.images[i]) {
            labels.push_back({{"label", s.label}, {"prob", s.prob}, {"cosine", s.cosine}});
          }
          results.push_back({{"index", i}, {"name", names[i]}, {"labels", labels}});
        }
        json out = {
            {"model", engine_.model_id()}, {"results", results}, {"text_encoded", c.text_encoded}};
        if (!q.label_set.empty()) out["labelset"] = q.label_set;
        respond(req, res, dump(out), c.timings, want_timings(req, have_json ? &body : nullptr));
      });

  http_->Get("/labelsets", [this](const httplib::Request&, httplib::Response& res) {
    json body = {{"labelsets", engine_.label_set_names()}};
    res.set_content(dump(body), "application/json");
  });
  http_->Put(R"(/labelsets/([^/]+))",
             [this, require_ready](const httplib::Request& req, httplib::Response& res) {
               require_ready();
               const std::string name = req.matches[1];
               check_label_set_name(name);
               json body = parse_json_body(req);
               CS_CHECK_ARG(body.contains("labels"), "missing 'labels'");
               auto labels = string_list(body["labels"], "labels");
               std::vector<std::string> templates;
               if (body.contains("templates")) templates = templates_from(body["templates"]);
               const bool replaced = engine_.put_label_set(name, labels, templates);
               auto info = engine_.get_label_set(name);
               json out = {{"name", name},
                           {"labels", info ? info->labels.size() : 0},
                           {"templates", info ? info->templates.size() : 0},
                           {"replaced", replaced}};
               res.status = replaced ? 200 : 201;
               res.set_content(dump(out), "application/json");
             });
  http_->Get(R"(/labelsets/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    auto info = engine_.get_label_set(name);
    if (!info) CS_THROW(kNotFound, "label set '", name, "' is not registered");
    json out = {{"name", name}, {"labels", info->labels}, {"templates", info->templates}};
    res.set_content(dump(out), "application/json");
  });
  http_->Delete(R"(/labelsets/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  const std::string name = req.matches[1];
                  if (!engine_.delete_label_set(name)) {
                    CS_THROW(kNotFound, "label set '", name, "' is not registered");
                  }
                  res.set_content(dump(json({{"deleted", name}})), "application/json");
                });
}

}  // namespace clipserve::server

// Shared request/response helpers of the HTTP routes (see http_util.h).
#include "server/http_util.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <map>
#include <mutex>

#include "core/check.h"
#include "server/codec.h"
#include "server/url_fetch.h"

namespace clipserve::server {

// Client strings may hold invalid UTF-8 (multipart fields, echoed input): replace, never throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

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
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
      return "timeout";
    case 411:
      return "length_required";
    case 413:
    case 414:
    case 431:
      return "too_large";
    case 415:
      return "unsupported_media_type";
    case 416:
    case 417:
    case 501:
    case 505:
      return "unsupported";
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

bool is_json(const httplib::Request& req);

// JSON bodies need "Content-Type: application/json": a browser cannot send that cross-site
// without a CORS preflight, which text/plain or form bodies would skip.
json parse_json_body(const httplib::Request& req, const char* alternatives) {
  if (!is_json(req)) {
    const std::string got = req.get_header_value("Content-Type");
    throw StatusError(415, "unsupported_media_type",
                      std::string("Content-Type must be application/json") +
                          (alternatives ? alternatives : "") + " (got " +
                          (got.empty() ? std::string("none") : "'" + got + "'") + ")");
  }
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
  std::string ct = req.get_header_value("Content-Type");
  for (auto& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ct == "application/json" || ct.rfind("application/json;", 0) == 0 ||
         ct.rfind("application/json ", 0) == 0;
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
  if (UrlFetcher::is_url(str)) {
    CS_CHECK_ARG(t_ctx.fetcher != nullptr, name,
                 ": image URLs are not fetched by this server (start it with --allow-url-host "
                 "HOST); send the bytes (base64 or a data: URL)");
    try {
      return ImageInput::encoded(t_ctx.fetcher->fetch(str), name);
    } catch (const Error& e) {
      std::string msg = name;  // (built in steps: GCC 12 -Wrestrict false positive)
      msg.append(": ").append(e.what());
      throw Error(e.code(), msg);
    }
  }
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
            {"model_load_ms", t_ctx.model_load_ms},
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
  char buf[360];
  std::snprintf(buf, sizeof(buf),
                "parse;dur=%.3f, load;dur=%.3f, decode;dur=%.3f, preprocess;dur=%.3f, "
                "queue;dur=%.3f, encode;dur=%.3f, postprocess;dur=%.3f, total;dur=%.3f",
                t_ctx.parse_ms, t_ctx.model_load_ms, t.decode_ms, t.preprocess_ms, t.queue_ms,
                t.encode_ms, t.postprocess_ms, ms_since(t_ctx.start));
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
             const StageTimings& t, bool timings_in_body, int status) {
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

namespace {
std::string lower_copy(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string known_list(std::initializer_list<const char*> known) {
  std::string out;
  for (const char* k : known) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}
bool is_known(const std::string& k, std::initializer_list<const char*> known) {
  return std::any_of(known.begin(), known.end(), [&](const char* x) { return k == x; });
}
}  // namespace

void check_fields(const json& body, std::initializer_list<const char*> known, const char* where) {
  for (const auto& [k, v] : body.items()) {
    CS_CHECK_ARG(is_known(k, known), "unknown ", where, " '", k, "' (known: ", known_list(known),
                 ")");
  }
}

void check_params(const httplib::Request& req, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : req.params) {
    CS_CHECK_ARG(is_known(k, known), "unknown query parameter '", k,
                 "' (known: ", known_list(known), ")");
  }
}

void check_multipart_fields(const httplib::Request& req, std::initializer_list<const char*> known) {
  for (const auto& [k, part] : req.files) {
    if (!part.filename.empty()) continue;  // a file: an image, whatever its field name
    CS_CHECK_ARG(is_known(k, known), "unknown form field '", k, "' (known: ", known_list(known),
                 "; files are images)");
  }
}

bool bool_param(const std::string& value, const char* name) {
  const std::string v = lower_copy(value);
  if (v == "1" || v == "true" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "no") return false;
  CS_THROW(kInvalidArgument, "'", name, "' must be true or false (got '", value, "')");
}

int int_param(const std::string& value, const char* name, int min) {
  int v = 0;
  const auto r = std::from_chars(value.data(), value.data() + value.size(), v);
  CS_CHECK_ARG(
      !value.empty() && r.ec == std::errc() && r.ptr == value.data() + value.size() && v >= min,
      "'", name, "' must be an integer >= ", min, " (got '", value, "')");
  return v;
}

std::vector<std::string> list_param(const std::string& value, const char* name) {
  size_t b = value.find_first_not_of(" \t");
  if (b != std::string::npos && value[b] == '[') {
    json j;
    try {
      j = json::parse(value);
    } catch (const json::exception& e) {
      CS_THROW(kInvalidArgument, "'", name,
               "' starts with '[' but is not a JSON array: ", e.what());
    }
    return string_list(j, name);
  }
  return split_commas(value);
}

void check_items(size_t n, const RequestBounds& b) {
  if (n > b.max_items) {
    CS_THROW(kTooLarge, "the request has ", n, " inputs; the limit is ", b.max_items,
             " per request (--max-items)");
  }
}

void check_text(const std::string& text, const std::string& name, const RequestBounds& b) {
  if (text.size() > b.max_text_bytes) {
    CS_THROW(kTooLarge, name, ": ", text.size(), " bytes is more than the limit of ",
             b.max_text_bytes, " per text (--max-text-bytes; the model reads 77 tokens)");
  }
}

void check_prompts(const std::vector<std::string>& labels,
                   const std::vector<std::string>& templates, const RequestBounds& b) {
  const size_t t = std::max<size_t>(1, templates.size());
  size_t template_bytes = 0, label_bytes = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    check_text(labels[i], index_name("labels", i), b);
    label_bytes += labels[i].size();
  }
  for (size_t i = 0; i < templates.size(); ++i) {
    check_text(templates[i], index_name("templates", i), b);
    template_bytes += templates[i].size();
  }
  if (labels.size() > b.max_prompts / t) {
    CS_THROW(kTooLarge, labels.size(), " labels x ", t, " templates is more than the limit of ",
             b.max_prompts, " prompts (--max-prompts)");
  }
  const size_t bytes = label_bytes * t + template_bytes * labels.size();
  if (bytes > b.max_prompt_bytes) {
    CS_THROW(kTooLarge, "the prompts (labels x templates) would be ", bytes,
             " bytes, more than the limit of ", b.max_prompt_bytes, " (--max-prompt-bytes)");
  }
}

}  // namespace clipserve::server

// Helpers every HTTP route file shares: JSON errors and responses, Server-Timing, request
// parsing (JSON bodies, images, string lists, multipart parts), strict field and parameter
// checks. Routes are registered on httplib::Server; see server.cpp and routes_embed.cpp.
#pragma once

#include <httplib.h>

#include <chrono>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "clipserve/engine.h"
#include "clipserve/error.h"
#include "server/server.h"

namespace clipserve::server {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

/// An error whose HTTP status has no ErrorCode of its own (403, 415).
class StatusError : public Error {
 public:
  StatusError(int status, const char* type, const std::string& message)
      : Error(ErrorCode::kInvalidArgument, message), status_(status), type_(type) {}
  int status() const { return status_; }
  const char* type() const { return type_; }

 private:
  int status_;
  const char* type_;
};

class UrlFetcher;

/// Per-request state; every request runs start to end on one worker thread.
struct RequestContext {
  Clock::time_point start;
  double parse_ms = 0;
  /// Fetches http(s) image URLs when the server has --allow-url-host entries, else null.
  const UrlFetcher* fetcher = nullptr;
  /// Time the request waited for its model to be reloaded after an idle unload.
  double model_load_ms = 0;
};
extern thread_local RequestContext t_ctx;

/// JSON text; invalid UTF-8 in client strings is replaced, never thrown on.
std::string dump(const json& j);
std::string quoted(const std::string& s);
double ms_since(Clock::time_point t);

int status_for(ErrorCode code);
const char* type_for_status(int status);
/// {"error": {"message", "type", "code"}} with `status` (+ Retry-After on 429/503).
void send_error(httplib::Response& res, int status, const std::string& type,
                const std::string& message);

bool truthy(const std::string& v);
bool want_timings(const httplib::Request& req, const json* body);

/// The JSON object body. 415 unless Content-Type is application/json (`alternatives` is
/// appended to the message: what else the endpoint accepts), 400 if it is not an object.
json parse_json_body(const httplib::Request& req, const char* alternatives = nullptr);
bool is_json(const httplib::Request& req);
bool is_raw_image(const httplib::Request& req);
inline constexpr const char* kEmbedBodies =
    ", an image (image/* or application/octet-stream) or multipart/form-data";

std::string index_name(const char* field, size_t i);
/// A JSON image value: base64 string / data: URL / http(s) URL (fetched only when the server
/// allows its host: t_ctx.fetcher), or {"image"|"data"|"b64": ...} or
/// {"image_url": "data:..." | {"url": "..."}}.
ImageInput image_from_json(const json& v, const std::string& name);
std::vector<std::string> string_list(const json& v, const char* field);
std::vector<std::string> split_commas(const std::string& s);
/// "imagenet" / "simple" name the built-in template sets; anything else is a list.
std::vector<std::string> templates_from(const json& v);

std::string timings_json(const StageTimings& t);
void set_server_timing(httplib::Response& res, const StageTimings& t);
/// Stage timings of two requests that ran side by side (texts and images of one call).
StageTimings merge(const StageTimings& a, const StageTimings& b);
/// Finishes a JSON object built as a string: adds "timings" when asked, sets the headers.
void respond(const httplib::Request& req, httplib::Response& res, std::string body,
             const StageTimings& t, bool timings_in_body, int status = 200);

/// Images of a multipart form: every part with a file name, in field order.
std::vector<ImageInput> multipart_images(const httplib::Request& req);
/// Values of the non-file parts named `key`.
std::vector<std::string> multipart_fields(const httplib::Request& req, const std::string& key);

/// 400 naming the first field of `body` that is not in `known` (a misspelt option must not
/// be silently ignored).
void check_fields(const json& body, std::initializer_list<const char*> known,
                  const char* where = "field");
/// The same for the query string.
void check_params(const httplib::Request& req, std::initializer_list<const char*> known);
/// The same for the non-file parts of a multipart form.
void check_multipart_fields(const httplib::Request& req, std::initializer_list<const char*> known);
/// "1|true|yes" / "0|false|no" (any case); anything else: 400 naming the parameter.
bool bool_param(const std::string& value, const char* name);
/// A decimal integer >= `min`; anything else: 400 naming the parameter.
int int_param(const std::string& value, const char* name, int min);
/// A label or template list from a query/multipart value: a JSON array of strings when it
/// starts with '[' (labels may contain commas), else comma-separated.
std::vector<std::string> list_param(const std::string& value, const char* name);

void check_items(size_t n, const RequestBounds& b);
void check_text(const std::string& text, const std::string& name, const RequestBounds& b);
/// Labels x templates (and their total bytes) of an inline query or a label set.
void check_prompts(const std::vector<std::string>& labels,
                   const std::vector<std::string>& templates, const RequestBounds& b);

}  // namespace clipserve::server

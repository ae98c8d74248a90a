// Model listing as OpenAI and Infinity clients call it: GET /v1/models, /v1/models/{id} and the
// root aliases /models, /models/{id}; OpenAI-shaped errors; how routes resolve a model name.
#include <ctime>

#include "core/check.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace clipserve::server {

namespace {

json model_json(const ModelSet::Info& info, long created) {
  const auto& c = info.config;
  return {{"id", info.id},
          {"object", "model"},
          {"created", created},
          {"owned_by", "clipserve"},
          {"aliases", info.names},
          {"task", "embedding"},
          {"embed_dim", info.embed_dim},
          {"image_size", c.vision.image_size},
          {"context_length", c.text.context_length},
          {"modalities", json::array({"text", "image"})},
          {"ready", info.ready},
          {"loaded", info.loaded},
          {"loads", info.loads}};
}

json detector_json(const std::string& id, long created) {
  return {{"id", id},           {"object", "model"},
          {"created", created}, {"owned_by", "clipserve"},
          {"aliases", {id}},    {"task", "object-detection"},
          {"ready", true},      {"loaded", true}};
}

}  // namespace

std::string requested_model(const json& body) {
  if (!body.contains("model") || body["model"].is_null()) return "";
  CS_CHECK_ARG(body["model"].is_string(), "'model' must be a string");
  return body["model"].get<std::string>();
}

bool is_openai_path(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 || path == "/embeddings" || path == "/models" ||
         path.rfind("/models/", 0) == 0;
}

void send_openai_error(httplib::Response& res, int status, const std::string& code,
                       const std::string& message) {
  res.status = status;
  if (status == 429 || status == 503) res.set_header("Retry-After", "1");
  // OpenAI's error body: type names the class of error, code is a string, param the field.
  const char* type = status == 401   ? "authentication_error"
                     : status == 403 ? "permission_error"
                     : status == 404 ? "invalid_request_error"
                     : status == 429 ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  json param = nullptr;
  // Messages name their field first: "'encoding_format' must ...", "input[3]: ...".
  if (!message.empty() && message[0] == '\'') {
    const auto end = message.find('\'', 1);
    if (end != std::string::npos) param = message.substr(1, end - 1);
  } else if (message.rfind("input[", 0) == 0) {
    param = message.substr(0, message.find(']') + 1);
  } else if (message.rfind("unknown field '", 0) == 0) {
    param = message.substr(15, message.find('\'', 15) - 15);
  } else if (message.rfind("model '", 0) == 0) {
    param = "model";
  }
  json body = {{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", code}}}};
  res.set_content(dump(body), "application/json");
}

void install_model_routes(httplib::Server& http, ModelAccess models, std::string detector_id) {
  const long created = static_cast<long>(std::time(nullptr));  // when this server started
  auto list = [models, detector_id, created](const httplib::Request& req, httplib::Response& res) {
    check_params(req, {});
    json data = json::array();
    for (const auto& info : models.models->list()) data.push_back(model_json(info, created));
    if (!detector_id.empty()) data.push_back(detector_json(detector_id, created));
    json body = {{"object", "list"}, {"data", data}};
    res.set_content(dump(body), "application/json");
  };
  auto one = [models, detector_id, created](const httplib::Request& req, httplib::Response& res) {
    check_params(req, {});
    const std::string id = req.matches[1];
    if (auto info = models.models->find(id)) {
      res.set_content(dump(model_json(*info, created)), "application/json");
    } else if (!detector_id.empty() && id == detector_id) {
      res.set_content(dump(detector_json(detector_id, created)), "application/json");
    } else {
      throw Error(ErrorCode::kNotFound, models.models->not_served(id));
    }
  };
  http.Get("/v1/models", list);
  http.Get("/models", list);
  // Ids may contain '/' (hub names such as ViT-B-32/laion2b_s34b_b79k).
  http.Get(R"(/v1/models/(.+))", one);
  http.Get(R"(/models/(.+))", one);
}

}  // namespace clipserve::server

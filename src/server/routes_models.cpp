// Model listing as OpenAI and Infinity clients call it: GET /v1/models, /v1/models/{id} and the
// root aliases /models, /models/{id}; OpenAI-shaped errors for those clients.
#include <ctime>

#include "core/check.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace clipserve::server {

namespace {

json model_json(const Engine& engine, long created) {
  const auto& c = engine.config();
  return {{"id", engine.model_id()},
          {"object", "model"},
          {"created", created},
          {"owned_by", "clipserve"},
          {"aliases", model_names(engine)},
          {"embed_dim", engine.embed_dim()},
          {"image_size", c.vision.image_size},
          {"context_length", c.text.context_length},
          {"modalities", json::array({"text", "image"})},
          {"ready", engine.ready()}};
}

}  // namespace

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

void install_model_routes(httplib::Server& http, Engine& engine) {
  const long created = static_cast<long>(std::time(nullptr));  // when this server started
  auto list = [&engine, created](const httplib::Request& req, httplib::Response& res) {
    check_params(req, {});
    json body = {{"object", "list"}, {"data", json::array({model_json(engine, created)})}};
    res.set_content(dump(body), "application/json");
  };
  auto one = [&engine, created](const httplib::Request& req, httplib::Response& res) {
    check_params(req, {});
    const std::string id = req.matches[1];
    if (!model_name_matches(engine, id)) {
      CS_THROW(kNotFound, "model '", id, "' is not served here; this server serves '",
               engine.model_id(), "'");
    }
    res.set_content(dump(model_json(engine, created)), "application/json");
  };
  http.Get("/v1/models", list);
  http.Get("/models", list);
  // Ids may contain '/' (hub names such as ViT-B-32/laion2b_s34b_b79k).
  http.Get(R"(/v1/models/(.+))", one);
  http.Get(R"(/models/(.+))", one);
}

}  // namespace clipserve::server

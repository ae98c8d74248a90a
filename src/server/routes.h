// Route groups registered on the server's httplib::Server (each in its own file).
#pragma once

#include <httplib.h>

#include <functional>

#include "clipserve/engine.h"
#include "server/http_util.h"
#include "server/model_set.h"

namespace clipserve::server {

/// The model a JSON body names in "model" ("" when absent; 400 unless a string).
std::string requested_model(const json& body);

/// POST /v1/embeddings and POST /embed (routes_embed.cpp).
void install_embedding_routes(httplib::Server& http, ModelAccess models,
                              const RequestBounds& bounds);
/// POST /classify (routes_classify.cpp).
void install_classify_routes(httplib::Server& http, ModelAccess models,
                             const RequestBounds& bounds);

/// GET /v1/models[/{id}] and the Infinity aliases /models[/{id}] (routes_models.cpp).
/// `detector_id`: also listed (task "object-detection") when not empty.
void install_model_routes(httplib::Server& http, ModelAccess models, std::string detector_id);
/// OpenAI's clients parse errors of these paths: /v1/*, /embeddings, /models[/...].
bool is_openai_path(const std::string& path);
/// {"error": {"message", "type": "invalid_request_error"|..., "param", "code": "<string>"}}.
void send_openai_error(httplib::Response& res, int status, const std::string& code,
                       const std::string& message);
/// Immich's machine-learning API: GET /ping, POST /predict (routes_immich.cpp).
void install_immich_routes(httplib::Server& http, ModelAccess models);
/// KServe v2 / Triton health and metadata, and JSON inference (routes_kserve.cpp).
void install_kserve_routes(httplib::Server& http, ModelAccess models, const RequestBounds& bounds);

}  // namespace clipserve::server

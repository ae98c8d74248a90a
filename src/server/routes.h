// Route groups registered on the server's httplib::Server (each in its own file).
#pragma once

#include <httplib.h>

#include <functional>

#include "clipserve/engine.h"
#include "server/http_util.h"

namespace clipserve::server {

/// POST /v1/embeddings and POST /embed (routes_embed.cpp). `require_ready` throws 503 while
/// warming up or draining.
void install_embedding_routes(httplib::Server& http, Engine& engine, const RequestBounds& bounds,
                              std::function<void()> require_ready);
/// POST /classify (routes_classify.cpp).
void install_classify_routes(httplib::Server& http, Engine& engine, const RequestBounds& bounds,
                             std::function<void()> require_ready);

/// GET /v1/models[/{id}] and the Infinity aliases /models[/{id}] (routes_models.cpp).
void install_model_routes(httplib::Server& http, Engine& engine);
/// OpenAI's clients parse errors of these paths: /v1/*, /embeddings, /models[/...].
bool is_openai_path(const std::string& path);
/// {"error": {"message", "type": "invalid_request_error"|..., "param", "code": "<string>"}}.
void send_openai_error(httplib::Response& res, int status, const std::string& code,
                       const std::string& message);
/// Immich's machine-learning API: GET /ping, POST /predict (routes_immich.cpp).
void install_immich_routes(httplib::Server& http, Engine& engine,
                           std::function<void()> require_ready);
/// KServe v2 / Triton health and metadata, and JSON inference (routes_kserve.cpp).
/// `draining` tells readiness.
void install_kserve_routes(httplib::Server& http, Engine& engine, const RequestBounds& bounds,
                           std::function<void()> require_ready, std::function<bool()> draining);

}  // namespace clipserve::server

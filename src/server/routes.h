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

}  // namespace clipserve::server

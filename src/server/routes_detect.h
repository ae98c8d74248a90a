// POST /detect: open-vocabulary detection (OWL-ViT) over a Detector, installed on the HTTP
// server when `clipserve serve --detect-model M` gives one (docs/detect.md).
#pragma once

#include <atomic>

#include "clipserve/detect.h"

namespace httplib {
class Server;
}

namespace clipserve::metrics {
class Registry;
}

namespace clipserve::server {

/// Registers POST /detect. Errors are thrown as clipserve::Error: the server's exception
/// handler turns them into JSON 4xx / 5xx answers. `draining` makes requests 503.
void install_detect_routes(httplib::Server& http, Detector& detector, metrics::Registry& metrics,
                           const std::atomic<bool>& draining);

}  // namespace clipserve::server

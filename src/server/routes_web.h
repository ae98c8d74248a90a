// Routes of the web page (GET / and /ui/*): the compiled-in files of src/web/.
#pragma once

#include <string>

namespace httplib {
class Server;
}

namespace clipserve::server {

/// Registers GET for every web asset. The page holds no data, so it is served without the API
/// key; the page asks for the key and sends it with each API call.
void install_web_routes(httplib::Server& http);
/// True for the paths install_web_routes serves (exempt from the API key).
bool is_web_path(const std::string& path);

}  // namespace clipserve::server

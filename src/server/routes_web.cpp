// Routes of the web page (see routes_web.h): same-origin only, never framed, never sniffed.
#include "server/routes_web.h"

#include <httplib.h>

#include "clipserve/web.h"

namespace clipserve::server {

void install_web_routes(httplib::Server& http) {
  for (const web::Asset& a : web::assets()) {
    auto handler = [&a](const httplib::Request&, httplib::Response& res) {
      res.set_content(a.body.data(), a.body.size(), std::string(a.content_type).c_str());
      // Scripts and styles from this origin only (no inline script, no CDN); images may be
      // data:/blob: URLs (uploads, thumbnails fetched with the API key).
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                     "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                     "base-uri 'none'; form-action 'none'");
      res.set_header("X-Frame-Options", "DENY");
      res.set_header("Referrer-Policy", "no-referrer");
      res.set_header("Cache-Control", "no-cache");
    };
    http.Get(std::string(a.path), handler);
    if (a.path == "/") http.Get("/index.html", handler);
  }
}

bool is_web_path(const std::string& path) {
  return path == "/index.html" || web::find_asset(path) != nullptr;
}

}  // namespace clipserve::server

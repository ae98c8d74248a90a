// The web page that `clipserve serve` shows at GET /: search a collection, classify and detect,
// through the same API a client uses. Its files are compiled into the binary, so the server
// needs no data directory and no CDN (it may run offline).
//
//   if (const clipserve::web::Asset* a = clipserve::web::find_asset("/ui/app.js")) {
//     send(a->content_type, a->body);      // the file's bytes, valid for the program's life
//   }
//
// Thread-safety: the assets are immutable; every function may be called from any thread.
#pragma once

#include <string_view>
#include <vector>

namespace clipserve::web {

struct Asset {
  std::string_view path;          ///< URL path: "/", "/ui/app.js", "/ui/style.css"
  std::string_view content_type;  ///< with charset for text
  std::string_view body;
};

/// Every file of the page.
const std::vector<Asset>& assets();
/// The asset served at `path` ("/index.html" is "/"), or nullptr.
const Asset* find_asset(std::string_view path);

}  // namespace clipserve::web

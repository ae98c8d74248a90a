// The web page's files (src/web/index.html, app.js, style.css) embedded into the binary with
// the assembler's .incbin, as the BPE vocabulary is.
#include "clipserve/web.h"

#ifndef CLIPSERVE_WEB_DIR
#error "CLIPSERVE_WEB_DIR must point at the repository's src/web/ folder"
#endif

#define CLIPSERVE_INCBIN(sym, file)                       \
  __asm__(                                                \
      ".section .rodata\n"                                \
      ".balign 16\n" #sym                                 \
      "_begin:\n"                                         \
      ".incbin \"" CLIPSERVE_WEB_DIR "/" file "\"\n" #sym \
      "_end:\n"                                           \
      ".byte 0\n"                                         \
      ".previous\n");                                     \
  extern "C" const char sym##_begin[];                    \
  extern "C" const char sym##_end[];

CLIPSERVE_INCBIN(clipserve_web_index_html, "index.html")
CLIPSERVE_INCBIN(clipserve_web_app_js, "app.js")
CLIPSERVE_INCBIN(clipserve_web_style_css, "style.css")

namespace clipserve::web {

namespace {
std::string_view span(const char* b, const char* e) { return {b, static_cast<size_t>(e - b)}; }
}  // namespace

const std::vector<Asset>& assets() {
  static const std::vector<Asset> a = {
      {"/", "text/html; charset=utf-8",
       span(clipserve_web_index_html_begin, clipserve_web_index_html_end)},
      {"/ui/app.js", "text/javascript; charset=utf-8",
       span(clipserve_web_app_js_begin, clipserve_web_app_js_end)},
      {"/ui/style.css", "text/css; charset=utf-8",
       span(clipserve_web_style_css_begin, clipserve_web_style_css_end)},
  };
  return a;
}

const Asset* find_asset(std::string_view path) {
  if (path == "/index.html") path = "/";
  for (const Asset& a : assets()) {
    if (a.path == path) return &a;
  }
  return nullptr;
}

}  // namespace clipserve::web

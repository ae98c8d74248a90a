// open_clip's basic_clean + whitespace_clean + lower on code points.
#include "text/clean.h"

#include "text/ftfy.h"
#include "text/html_unescape.h"
#include "text/unicode.h"

namespace clipserve::text {

std::u32string collapse_whitespace(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char32_t c : text) {
    if (py_isspace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(U' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::u32string clean_text(std::u32string_view text) {
  std::u32string t = ftfy_fix_text(text);
  t = python_html_unescape(python_html_unescape(t));
  t = collapse_whitespace(t);
  return py_lower(t);
}

}  // namespace clipserve::text

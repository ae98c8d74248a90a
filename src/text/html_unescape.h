// HTML character references as Python and ftfy decode them: html.unescape (HTML5 rules) and
// ftfy's stricter unescape_html (only references ending in ';', plus some ALL-CAPS names).
#pragma once

#include <string>
#include <string_view>

namespace clipserve::text {

/// Python's html.unescape: named references with or without ';' (longest legacy prefix),
/// decimal/hex references, invalid code points mapped as the HTML5 spec says.
std::u32string python_html_unescape(std::u32string_view text);

/// ftfy.fixes.unescape_html: decodes `&name;`, `&#123;`, `&#x1F;` (1-24 alphanumerics then ';')
/// and ftfy's ALL-CAPS spellings of some entities; anything else is left as it is.
std::u32string ftfy_unescape_html(std::u32string_view text);

}  // namespace clipserve::text

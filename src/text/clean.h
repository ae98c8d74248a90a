// open_clip's text cleaning for SimpleTokenizer(clean="lower"): ftfy.fix_text, html.unescape
// twice, whitespace collapsing and str.lower(), on Unicode code points.
#pragma once

#include <string>
#include <string_view>

namespace clipserve::text {

/// _clean_lower(basic_clean(text)) of open_clip: the text the word regex runs on.
std::u32string clean_text(std::u32string_view text);

/// Python's " ".join(text.split()) (which also strips both ends), with str.isspace().
std::u32string collapse_whitespace(std::u32string_view text);

}  // namespace clipserve::text

// ftfy's fix_text with its default settings (python-ftfy 6.3), reimplemented from its documented
// behaviour: HTML entities, mojibake detection and repair, C1 controls, Latin ligatures,
// character width, curly quotes, line breaks, terminal escapes, control characters and NFC.
#pragma once

#include <string>
#include <string_view>

namespace clipserve::text {

/// ftfy.fix_text(text) with default settings. The text is fixed line by line (segments ending
/// after '\n'); once a segment contains '<', HTML entities are left alone from there on.
std::u32string ftfy_fix_text(std::u32string_view text);

/// ftfy.fix_encoding(text): only the mojibake repair steps.
std::u32string ftfy_fix_encoding(std::u32string_view text);

/// ftfy.badness.is_bad(text): whether the text contains likely mojibake.
bool ftfy_is_bad(std::u32string_view text);

}  // namespace clipserve::text

// Unicode helpers for the tokenizer: strict UTF-8 decoding, and Python 3 str semantics
// (isspace, \w, lower(), NFC) plus the regex module's \p{L} / \p{N}, all backed by ICU data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace clipserve::text {

/// Decodes strict UTF-8 (no overlongs, surrogates or values above U+10FFFF).
/// Throws Error(kInvalidArgument) naming the byte offset of the first bad sequence.
std::u32string decode_utf8(std::string_view bytes);
/// Returns the offset of the first invalid byte, or npos when `bytes` is valid UTF-8.
size_t find_invalid_utf8(std::string_view bytes);
/// Appends the UTF-8 encoding of `cp` (which must be a scalar value) to `out`.
void append_utf8(char32_t cp, std::string& out);
std::string encode_utf8(std::u32string_view text);

/// Python's str.isspace(): general category Zs or bidirectional class WS, B or S.
bool py_isspace(char32_t cp);
/// Python's re `\w` on str: letters, characters with a numeric value, and '_' (as of Python
/// 3.11's Unicode 14.0: characters new in 15.0 are not word characters).
bool py_isword(char32_t cp);
/// Python's re `\d` on str: decimal digits (Nd, Unicode 14.0).
bool py_isdecimal(char32_t cp);
/// regex module `\p{L}` and `\p{N}` (general categories L* and N*).
bool is_letter(char32_t cp);
bool is_number(char32_t cp);

/// True for characters that CLIP's case-insensitive word regex matches with no alternative: they
/// are neither letters, numbers nor whitespace, yet their simple case folding is a letter or a
/// number, so the regex module's IGNORECASE excludes them from [^\s\p{L}\p{N}] too (U+0345).
bool is_regex_unmatched(char32_t cp);
/// Python's str.lower(): full lowercase mapping (U+0130 -> "i\u0307") with the Final_Sigma rule.
std::u32string py_lower(std::u32string_view text);
/// Unicode canonical composition (unicodedata.normalize("NFC", text)).
std::u32string nfc(std::u32string_view text);
/// unicodedata.normalize("NFKC", text).
std::u32string nfkc(std::u32string_view text);

}  // namespace clipserve::text

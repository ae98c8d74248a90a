// HTML character reference decoding with Python's html.unescape and ftfy's unescape_html rules.
#include "text/html_unescape.h"

#include <algorithm>
#include <string_view>

#include "text/unicode.h"

namespace clipserve::text {

namespace {

struct HtmlEntity {
  const char* name;
  const char* value;
};

#include "text/html_entities.inc"

template <size_t N>
const char* find_entity(const HtmlEntity (&table)[N], std::string_view name) {
  auto it = std::lower_bound(
      std::begin(table), std::end(table), name,
      [](const HtmlEntity& e, std::string_view n) { return std::string_view(e.name) < n; });
  if (it != std::end(table) && std::string_view(it->name) == name) return it->value;
  return nullptr;
}

void append_utf8_value(const char* value, std::u32string& out) { out += decode_utf8(value); }

// Windows-1252 meanings of the C1 references &#128;..&#159; (HTML5's replacement table), taken
// as the code points the HTML5 table gives; bytes windows-1252 leaves undefined stay as they are.
char32_t html5_c1_replacement(uint32_t num) {
  static constexpr char32_t kTable[32] = {
      0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  return kTable[num - 0x80];
}

bool is_invalid_codepoint(uint64_t num) {
  if ((num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
      (num >= 0xFDD0 && num <= 0xFDEF) || num == 0xB) {
    return true;
  }
  return (num & 0xFFFE) == 0xFFFE && num <= 0x10FFFF;
}

inline bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
inline bool is_ascii_hex(char32_t c) {
  return is_ascii_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
inline bool is_ascii_alnum(char32_t c) {
  return is_ascii_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

// Decodes one numeric reference value as html.unescape does.
void append_numeric_reference(uint64_t num, bool overflow, std::u32string& out) {
  if (!overflow && num == 0) {
    out.push_back(0xFFFD);
  } else if (!overflow && num == 0x0D) {
    out.push_back(0x0D);
  } else if (!overflow && num >= 0x80 && num <= 0x9F) {
    out.push_back(html5_c1_replacement(static_cast<uint32_t>(num)));
  } else if (overflow || (num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
  } else if (is_invalid_codepoint(num)) {
    // dropped
  } else {
    out.push_back(static_cast<char32_t>(num));
  }
}

}  // namespace

std::u32string python_html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  std::string name;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    // &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?)
    size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      const bool hex = j + 1 < n && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = hex ? j + 2 : j + 1;
      const size_t digits_begin = k;
      uint64_t num = 0;
      bool overflow = false;
      while (k < n && (hex ? is_ascii_hex(s[k]) : is_ascii_digit(s[k]))) {
        const char32_t c = s[k];
        const uint64_t d = is_ascii_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
        if (num > (uint64_t{1} << 40)) {
          overflow = true;
        } else {
          num = num * (hex ? 16 : 10) + d;
        }
        ++k;
      }
      if (k == digits_begin) {
        // "&#" not followed by digits: no reference here.
        out.push_back(s[i++]);
        continue;
      }
      if (k < n && s[k] == U';') ++k;
      append_numeric_reference(num, overflow, out);
      i = k;
      continue;
    }
    size_t k = j;
    while (k < n && k - j < 32) {
      const char32_t c = s[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' ||
          c == U'#' || c == U';') {
        break;
      }
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    // The reference text (without '&'), possibly non-ASCII; entity names are ASCII.
    const std::u32string_view ref = s.substr(j, k - j);
    const std::string ref_utf8 = encode_utf8(ref);
    if (const char* v = find_entity(kHtml5Entities, ref_utf8)) {
      append_utf8_value(v, out);
      i = k;
      continue;
    }
    // Longest prefix (at least 2 characters) that is an entity name.
    bool matched = false;
    for (size_t len = ref.size() - 1; len >= 2; --len) {
      const std::string prefix = encode_utf8(ref.substr(0, len));
      if (const char* v = find_entity(kHtml5Entities, prefix)) {
        append_utf8_value(v, out);
        out.append(ref.substr(len));
        matched = true;
        break;
      }
    }
    if (!matched) {
      out.push_back(U'&');
      out.append(ref);
    }
    i = k;
  }
  return out;
}

std::u32string ftfy_unescape_html(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    // &#?[0-9A-Za-z]{1,24};
    size_t j = i + 1;
    const bool numeric = j < n && s[j] == U'#';
    if (numeric) ++j;
    size_t k = j;
    while (k < n && is_ascii_alnum(s[k])) ++k;
    const size_t run = k - j;
    if (run < 1 || run > 24 || k >= n || s[k] != U';') {
      out.push_back(s[i++]);
      continue;
    }
    const std::u32string_view whole = s.substr(i, k + 1 - i);
    std::string name;  // ASCII: "name;" or "#123;"
    for (size_t p = i + 1; p <= k; ++p) name.push_back(static_cast<char>(s[p]));
    const char* v = find_entity(kHtml5Entities, name);
    if (v == nullptr || name.back() != ';') v = find_entity(kFtfyUpperEntities, name);
    if (v != nullptr) {
      append_utf8_value(v, out);
    } else if (numeric) {
      const std::u32string decoded = python_html_unescape(whole);
      // Only a reference that consumed its ';' counts.
      if (decoded.find(U';') != std::u32string::npos) {
        out.append(whole);
      } else {
        out.append(decoded);
      }
    } else {
      out.append(whole);
    }
    i = k + 1;
  }
  return out;
}

}  // namespace clipserve::text

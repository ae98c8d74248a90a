// ftfy.fix_text (default settings) in C++. The heuristics (character categories, the "badness"
// patterns, the encodings tried and their order) are ftfy 6.3's; the single-byte code pages come
// from ICU's converters and every Unicode property from ICU. Its data: ftfy_data.cpp; the
// badness heuristic: ftfy_badness.cpp.
#include "text/ftfy.h"

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/check.h"
#include "text/ftfy_data.h"
#include "text/html_unescape.h"
#include "text/unicode.h"

namespace clipserve::text {

using namespace ftfy_detail;

namespace {

// ---------------------------------------------------------------------------------------------
// Byte-level helpers for re-decoding.

// Python's strict UTF-8 decoder extended like ftfy's "utf-8-variants": C0 80 is U+0000 and a
// CESU-8 surrogate pair (ED A0-AF xx ED B0-BF xx) is the astral character it encodes.
std::optional<std::u32string> decode_utf8_variants(const std::string& bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == 0xC0 && i + 1 < n && p[i + 1] == 0x80) {
      out.push_back(0);
      i += 2;
      continue;
    }
    if (c == 0xED && i + 6 <= n && p[i + 1] >= 0xA0 && p[i + 1] <= 0xAF &&
        (p[i + 2] & 0xC0) == 0x80 && p[i + 3] == 0xED && p[i + 4] >= 0xB0 && p[i + 4] <= 0xBF &&
        (p[i + 5] & 0xC0) == 0x80) {
      const char32_t cp = ((p[i + 1] & 0x0Fu) << 16) + ((p[i + 2] & 0x3Fu) << 10) +
                          ((p[i + 4] & 0x0Fu) << 6) + (p[i + 5] & 0x3Fu) + 0x10000;
      out.push_back(cp);
      i += 6;
      continue;
    }
    const size_t bad = find_invalid_utf8(std::string_view(bytes).substr(i, 4));
    // A sequence is valid when the first invalid byte (within 4) is not at its start.
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
    } else {
      return std::nullopt;
    }
    if (i + len > n || (bad != std::string_view::npos && bad < len)) return std::nullopt;
    out += decode_utf8(std::string_view(bytes).substr(i, len));
    i += len;
  }
  return out;
}

bool in(unsigned char b, unsigned char lo, unsigned char hi) { return b >= lo && b <= hi; }
bool is_cont(unsigned char b) { return in(b, 0x80, 0xBF); }
// [\x80-\x84\x86-\x9f\xa1-\xbf]: continuation bytes other than 0x85 and 0xA0.
bool is_cont_no_85_a0(unsigned char b) { return is_cont(b) && b != 0x85 && b != 0xA0; }

// Length of an ALTERED_UTF8_RE match at `i` (a UTF-8 sequence whose 0xA0 became a space), or 0.
size_t altered_utf8_match(const std::string& s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  const unsigned char c = p[i];
  auto at = [&](size_t k) -> int { return i + k < n ? p[i + k] : -1; };
  if ((c == 0xC2 || c == 0xC3 || c == 0xC5 || c == 0xCE || c == 0xD0 || c == 0xD9) && at(1) == ' ')
    return 2;
  if ((c == 0xE2 || c == 0xE3) && at(1) == ' ' && at(2) >= 0 &&
      is_cont_no_85_a0(static_cast<unsigned char>(at(2))))
    return 3;
  if (in(c, 0xE0, 0xE3) && at(1) >= 0 && is_cont_no_85_a0(static_cast<unsigned char>(at(1))) &&
      at(2) == ' ')
    return 3;
  if (c == 0xF0 && at(3) >= 0) {
    const int b1 = at(1), b2 = at(2), b3 = at(3);
    auto cont = [](int b) { return b >= 0x80 && b <= 0xBF; };
    if (b1 == ' ' && cont(b2) && cont(b3)) return 4;
    if (cont(b1) && b2 == ' ' && cont(b3)) return 4;
    if (cont(b1) && cont(b2) && b3 == ' ') return 4;
  }
  return 0;
}

bool has_altered_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (altered_utf8_match(s, i)) return true;
  }
  return false;
}

// fixes.restore_byte_a0: put back the 0xA0 bytes that became spaces inside UTF-8 sequences.
std::string restore_byte_a0(const std::string& s) {
  // A_GRAVE_WORD_RE: b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 "
  std::string t;
  t.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) == 0xC3 && i + 1 < s.size() && s[i + 1] == ' ') {
      const std::string_view rest = std::string_view(s).substr(i + 2);
      const bool excluded = rest.starts_with(" ") || rest.starts_with("quele") ||
                            rest.starts_with("quela") || rest.starts_with("quilo") ||
                            rest.starts_with("s ");
      if (!excluded) {
        t += "\xC3\xA0 ";
        ++i;
        continue;
      }
    }
    t.push_back(s[i]);
  }
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    const size_t len = altered_utf8_match(t, i);
    if (len == 0) {
      out.push_back(t[i++]);
      continue;
    }
    for (size_t k = 0; k < len; ++k) out.push_back(t[i + k] == ' ' ? '\xA0' : t[i + k]);
    i += len;
  }
  return out;
}

// Length of a LOSSY_UTF8_RE match at `i`, or 0. Byte 0x1A stands for a character the sloppy
// code page could only give as U+FFFD.
size_t lossy_utf8_match(const std::string& s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  auto at = [&](size_t k) -> int { return i + k < n ? p[i + k] : -1; };
  auto sub = [](int b) { return b == 0x1A; };
  auto sub_q = [](int b) { return b == 0x1A || b == '?'; };
  auto sub_cont = [](int b) { return b == 0x1A || (b >= 0x80 && b <= 0xBF); };
  auto sub_q_cont = [](int b) { return b == 0x1A || b == '?' || (b >= 0x80 && b <= 0xBF); };
  const int c = p[i];
  if (c >= 0xC2 && c <= 0xDF && sub(at(1))) return 2;
  if ((c == 0xC2 || c == 0xC3) && at(1) == '?') return 2;
  if (c == 0xED) {
    const int b1 = at(1), b2 = at(2), b3 = at(3), b4 = at(4), b5 = at(5);
    if (b1 >= 0xA0 && b1 <= 0xAF && b3 == 0xED && b4 >= 0xB0 && b4 <= 0xBF) {
      if (sub_q(b2) && sub_q_cont(b5)) return 6;
      if (sub_q_cont(b2) && sub_q(b5)) return 6;
    }
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (sub_q(at(1)) && sub_cont(at(2))) return 3;
    if (sub_cont(at(1)) && sub_q(at(2))) return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const int b1 = at(1), b2 = at(2), b3 = at(3);
    if (sub_q(b1) && sub_cont(b2) && sub_cont(b3)) return 4;
    if (sub_cont(b1) && sub_q(b2) && sub_cont(b3)) return 4;
    if (sub_cont(b1) && sub_cont(b2) && sub_q(b3)) return 4;
  }
  if (c == 0x1A) return 1;
  return 0;
}

// fixes.replace_lossy_sequences: such sequences become the UTF-8 bytes of U+FFFD.
std::string replace_lossy_sequences(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = lossy_utf8_match(s, i);
    if (len == 0) {
      out.push_back(s[i++]);
    } else {
      out += "\xEF\xBF\xBD";
      i += len;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// fix_encoding

bool all_ascii(std::u32string_view t) {
  for (char32_t c : t) {
    if (c >= 0x80) return false;
  }
  return true;
}

bool can_encode(const ByteCodec& codec, std::u32string_view t) {
  for (char32_t c : t) {
    if (!codec.can_encode(c)) return false;
  }
  return true;
}

std::string encode_bytes(const ByteCodec& codec, std::u32string_view t) {
  std::string out;
  out.reserve(t.size());
  for (char32_t c : t) {
    out.push_back(static_cast<char>(c < 0x80 ? static_cast<uint8_t>(c) : codec.encode.at(c)));
  }
  return out;
}

std::u32string decode_inconsistent_utf8(std::u32string_view text);

std::u32string fix_encoding_one_step(std::u32string_view text) {
  if (text.empty() || all_ascii(text) || !ftfy_is_bad(text)) return std::u32string(text);
  const FtfyData& d = data();
  bool possible[kNumCodecs] = {};
  for (int id = 0; id < kNumCodecs; ++id) {
    const ByteCodec& codec = d.codecs[id];
    if (!can_encode(codec, text)) continue;
    possible[id] = true;
    std::string bytes = encode_bytes(codec, text);
    if (id != kMacRoman && has_altered_utf8(bytes)) bytes = restore_byte_a0(bytes);
    if (codec.sloppy) bytes = replace_lossy_sequences(bytes);
    if (auto fixed = decode_utf8_variants(bytes)) return *fixed;
  }
  // Look for a-hat-euro sequences that remain, and fix them in isolation.
  {
    std::u32string fixed = decode_inconsistent_utf8(text);
    if (fixed != text) return fixed;
  }
  // Latin-1 text that was meant as Windows-1252 (ftfy checks for "windows-1252" among the
  // possible encodings, a name its list never contains, so this always tries the re-decoding).
  if (possible[kLatin1]) {
    const ByteCodec& cp1252 = d.codecs[kSloppy1252];
    std::u32string fixed;
    fixed.reserve(text.size());
    bool ok = true;
    for (char32_t c : text) {
      if (c >= 0x80 && c <= 0xFF) {
        if (!cp1252.defined[c]) {
          ok = false;
          break;
        }
        fixed.push_back(cp1252.decode[c]);
      } else {
        fixed.push_back(c);
      }
    }
    if (ok && fixed != text) return fixed;
  }
  // Remaining C1 controls are read as Windows-1252.
  bool has_c1 = false;
  for (char32_t c : text) has_c1 |= (c >= 0x80 && c <= 0x9F);
  if (has_c1) {
    std::u32string fixed(text);
    for (char32_t& c : fixed) {
      if (c >= 0x80 && c <= 0x9F) c = d.codecs[kSloppy1252].decode[c];
    }
    return fixed;
  }
  return std::u32string(text);
}

// fixes.decode_inconsistent_utf8: fix UTF8_DETECTOR_RE matches that look bad on their own.
std::u32string decode_inconsistent_utf8(std::u32string_view text) {
  const FtfyData& d = data();
  std::u32string out;
  out.reserve(text.size());
  const size_t n = text.size();
  size_t i = 0;
  bool changed = false;
  auto has = [&](size_t k, uint32_t cat) { return k < n && (d.category(text[k]) & cat); };
  while (i < n) {
    // (?<![utf8_continuation_strict]) then ( first2 cont | first3 cont{2} | first4 cont{3} )+
    size_t end = i;
    if (i == 0 || !(d.category(text[i - 1]) & kUtf8ContStrict)) {
      while (true) {
        if (has(end, kUtf8First2) && has(end + 1, kUtf8Cont)) {
          end += 2;
        } else if (has(end, kUtf8First3) && has(end + 1, kUtf8Cont) && has(end + 2, kUtf8Cont)) {
          end += 3;
        } else if (has(end, kUtf8First4) && has(end + 1, kUtf8Cont) && has(end + 2, kUtf8Cont) &&
                   has(end + 3, kUtf8Cont)) {
          end += 4;
        } else {
          break;
        }
      }
    }
    if (end == i) {
      out.push_back(text[i++]);
      continue;
    }
    const std::u32string_view sub = text.substr(i, end - i);
    if (sub.size() < n && ftfy_is_bad(sub)) {
      std::u32string fixed = ftfy_fix_encoding(sub);
      changed |= fixed != sub;
      out += fixed;
    } else {
      out.append(sub);
    }
    i = end;
  }
  if (!changed) return std::u32string(text);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The other fixers.

// chardata.LIGATURES: Latin ligatures and legacy digraphs that ftfy takes apart.
const std::u32string* ligature(char32_t c) {
  static const std::unordered_map<char32_t, std::u32string> kLigatures = {
      {U'Ĳ', U"IJ"},  {U'ĳ', U"ij"},  {U'ŉ', U"ʼn"}, {U'Ǳ', U"DZ"}, {U'ǲ', U"Dz"}, {U'ǳ', U"dz"},
      {U'Ǆ', U"DŽ"},  {U'ǅ', U"Dž"},  {U'ǆ', U"dž"}, {U'Ǉ', U"LJ"}, {U'ǈ', U"Lj"}, {U'ǉ', U"lj"},
      {U'Ǌ', U"NJ"},  {U'ǋ', U"Nj"},  {U'ǌ', U"nj"}, {U'ﬀ', U"ff"}, {U'ﬁ', U"fi"}, {U'ﬂ', U"fl"},
      {U'ﬃ', U"ffi"}, {U'ﬄ', U"ffl"}, {U'ﬅ', U"ſt"}, {U'ﬆ', U"st"}};
  if (c < 0x132 || (c > 0x1F3 && c < 0xFB00) || c > 0xFB06) return nullptr;
  auto it = kLigatures.find(c);
  return it == kLigatures.end() ? nullptr : &it->second;
}

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks,
// fix_surrogates, remove_terminal_escapes and remove_control_chars, in ftfy's order.
std::u32string apply_character_fixers(std::u32string text) {
  const FtfyData& d = data();
  // One pass for the character-by-character translations (they do not interact: none of them
  // produces a character that a later one in this group would change).
  auto uncurl = [](char32_t c) -> char32_t {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) return U'\'';
    if (c >= 0x201C && c <= 0x201F) return U'"';
    return c;
  };
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c >= 0x80 && c <= 0x9F) c = d.codecs[kSloppy1252].decode[c];  // fix_c1_controls
    if (const std::u32string* lig = ligature(c)) {
      // ŉ becomes U+02BC + n, which uncurl_quotes then straightens.
      for (char32_t l : *lig) out.push_back(uncurl(l));
      continue;
    }
    if (c == 0x3000) {
      out.push_back(U' ');
      continue;
    }
    if (c >= 0xFF01 && c < 0xFFF0 && !d.width_map[c - 0xFF01].empty()) {
      for (char32_t w : d.width_map[c - 0xFF01]) out.push_back(uncurl(w));
      continue;
    }
    out.push_back(uncurl(c));
  }
  // fix_line_breaks: \r\n, \r, U+2028, U+2029, U+0085 -> \n.
  text.clear();
  for (size_t i = 0; i < out.size(); ++i) {
    const char32_t c = out[i];
    if (c == U'\r') {
      text.push_back(U'\n');
      if (i + 1 < out.size() && out[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      text.push_back(U'\n');
    } else {
      text.push_back(c);
    }
  }
  // fix_surrogates: strings decoded from valid UTF-8 never hold surrogates.
  // remove_terminal_escapes: ESC '[' (\d|;)* [a-zA-Z]
  out.clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < text.size() && (text[k] == U';' || py_isdecimal(text[k]))) ++k;
      if (k < text.size() &&
          ((text[k] >= 'a' && text[k] <= 'z') || (text[k] >= 'A' && text[k] <= 'Z'))) {
        i = k;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  // remove_control_chars
  text.clear();
  for (char32_t c : out) {
    if (!is_removed_control(c)) text.push_back(c);
  }
  return text;
}

// False when one round of fix_segment would leave the text unchanged (so it is already fixed).
bool segment_needs_fixing(std::u32string_view text, bool unescape_html) {
  const FtfyData& d = data();
  bool ascii = true;
  for (char32_t c : text) {
    if (c < 0x80) {
      if ((c == U'&' && unescape_html) || c == U'\r' || c == 0x1B || is_removed_control(c)) {
        return true;
      }
      continue;
    }
    ascii = false;
    if (c <= 0x9F || c == 0x3000 || c == 0x2BC || (c >= 0x2018 && c <= 0x201F) || c == 0x2028 ||
        c == 0x2029 || is_removed_control(c) || ligature(c) != nullptr ||
        (c >= 0xFF01 && c < 0xFFF0 && !d.width_map[c - 0xFF01].empty())) {
      return true;
    }
  }
  if (ascii) return false;
  if (ftfy_is_bad(text)) return true;
  return nfc(text) != text;
}

std::u32string fix_segment(std::u32string text, bool unescape_html) {
  if (!segment_needs_fixing(text, unescape_html)) return text;
  while (true) {
    std::u32string orig = text;
    if (unescape_html) text = ftfy_unescape_html(text);
    text = ftfy_fix_encoding(text);
    text = apply_character_fixers(std::move(text));
    text = nfc(text);
    if (text == orig) return text;
  }
}

}  // namespace

std::u32string ftfy_fix_encoding(std::u32string_view text) {
  std::u32string cur(text);
  while (true) {
    std::u32string next = fix_encoding_one_step(cur);
    if (next == cur) return cur;
    cur = std::move(next);
  }
}

std::u32string ftfy_fix_text(std::u32string_view text) {
  constexpr size_t kMaxDecodeLength = 1000000;
  std::u32string out;
  out.reserve(text.size());
  bool unescape_html = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == std::u32string_view::npos ? text.size() : brk + 1;
    if (brk - pos > kMaxDecodeLength) brk = pos + kMaxDecodeLength;
    const std::u32string_view segment = text.substr(pos, brk - pos);
    if (unescape_html && segment.find(U'<') != std::u32string_view::npos) unescape_html = false;
    out += fix_segment(std::u32string(segment), unescape_html);
    pos = brk;
  }
  return out;
}

}  // namespace clipserve::text

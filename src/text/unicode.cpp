// Unicode helpers for the tokenizer, implemented on ICU's character properties and normalizers.
#include "text/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include <vector>

#include "core/check.h"

namespace clipserve::text {

namespace {

// Length of the valid UTF-8 sequence at `p` (1..4), or 0 when it is invalid.
inline int valid_sequence_length(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  const size_t left = static_cast<size_t>(end - p);
  if (c >= 0xC2 && c <= 0xDF) {
    return (left >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    return 4;
  }
  return 0;
}

const icu::Normalizer2& normalizer(bool compat) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n =
      compat ? icu::Normalizer2::getNFKCInstance(status) : icu::Normalizer2::getNFCInstance(status);
  CS_ASSERT(U_SUCCESS(status) && n != nullptr, "ICU normalizer unavailable");
  return *n;
}

std::u32string normalize(std::u32string_view text, bool compat) {
  const icu::Normalizer2& norm = normalizer(compat);
  icu::UnicodeString src;
  for (char32_t c : text) src.append(static_cast<UChar32>(c));
  UErrorCode status = U_ZERO_ERROR;
  if (norm.isNormalized(src, status) && U_SUCCESS(status)) return std::u32string(text);
  status = U_ZERO_ERROR;
  icu::UnicodeString dst = norm.normalize(src, status);
  CS_ASSERT(U_SUCCESS(status), "ICU normalization failed");
  std::u32string out;
  out.reserve(text.size());
  for (int32_t i = 0; i < dst.length();) {
    const UChar32 c = dst.char32At(i);
    out.push_back(static_cast<char32_t>(c));
    i += U16_LENGTH(c);
  }
  return out;
}

// Python 3.11's unicodedata is Unicode 14.0 while ICU 72 is 15.0: characters added in 15.0 are
// unassigned for Python's str methods and re classes.
bool new_after_python_unicode(UChar32 c) {
  UVersionInfo age;
  u_charAge(c, age);
  return age[0] >= 15;
}

}  // namespace

size_t find_invalid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  const auto* begin = p;
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const int n = valid_sequence_length(p, end);
    if (n == 0) return static_cast<size_t>(p - begin);
    p += n;
  }
  return std::string_view::npos;
}

std::u32string decode_utf8(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* begin = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* p = begin;
  const auto* end = p + bytes.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      out.push_back(c);
      ++p;
      continue;
    }
    const int n = valid_sequence_length(p, end);
    CS_CHECK_ARG(n != 0, "invalid UTF-8 at byte offset ", p - begin, " (byte 0x", std::hex,
                 static_cast<int>(c), ")");
    char32_t cp;
    if (n == 2) {
      cp = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    } else if (n == 3) {
      cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    } else {
      cp = ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    }
    out.push_back(cp);
    p += n;
  }
  return out;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(c, out);
  return out;
}

bool py_isspace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  const auto c = static_cast<UChar32>(cp);
  if (u_charType(c) == U_SPACE_SEPARATOR) return true;
  const UCharDirection d = u_charDirection(c);
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

bool py_isword(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  }
  const auto c = static_cast<UChar32>(cp);
  const uint32_t mask = U_GET_GC_MASK(c);
  if (!(mask & (U_GC_L_MASK | U_GC_N_MASK)) && u_getNumericValue(c) == U_NO_NUMERIC_VALUE) {
    return false;
  }
  return !new_after_python_unicode(c);
}

bool py_isdecimal(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  const auto c = static_cast<UChar32>(cp);
  return u_charType(c) == U_DECIMAL_DIGIT_NUMBER && !new_after_python_unicode(c);
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_L_MASK) != 0;
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_N_MASK) != 0;
}

bool is_regex_unmatched(char32_t cp) {
  if (cp < 0x80 || is_letter(cp) || is_number(cp)) return false;
  const auto c = static_cast<UChar32>(cp);
  if (u_isUWhiteSpace(c)) return false;
  const UChar32 folded = u_foldCase(c, U_FOLD_CASE_DEFAULT);
  return folded != c &&
         (is_letter(static_cast<char32_t>(folded)) || is_number(static_cast<char32_t>(folded)));
}

std::u32string py_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    if (c == 0x3A3) {
      // Final_Sigma: preceded by a cased letter and not followed by one (skipping
      // case-ignorable characters), as in Python's handle_capital_sigma.
      size_t j = i;
      char32_t prev = 0;
      bool found = false;
      while (j > 0) {
        prev = text[--j];
        if (!u_hasBinaryProperty(static_cast<UChar32>(prev), UCHAR_CASE_IGNORABLE)) {
          found = true;
          break;
        }
      }
      bool final_sigma = found && u_hasBinaryProperty(static_cast<UChar32>(prev), UCHAR_CASED);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < text.size() &&
               u_hasBinaryProperty(static_cast<UChar32>(text[k]), UCHAR_CASE_IGNORABLE)) {
          ++k;
        }
        final_sigma =
            k == text.size() || !u_hasBinaryProperty(static_cast<UChar32>(text[k]), UCHAR_CASED);
      }
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
      continue;
    }
    const auto uc = static_cast<UChar32>(c);
    if (!u_hasBinaryProperty(uc, UCHAR_CHANGES_WHEN_LOWERCASED)) {
      out.push_back(c);
      continue;
    }
    // Full (possibly multi-character) mapping from ICU's root locale; the only context-dependent
    // root mapping (Final_Sigma) is handled above.
    UChar src[2];
    int32_t src_len = 0;
    U16_APPEND_UNSAFE(src, src_len, uc);
    UChar dst[8];
    UErrorCode status = U_ZERO_ERROR;
    const int32_t n = u_strToLower(dst, 8, src, src_len, "", &status);
    CS_ASSERT(U_SUCCESS(status) && n <= 8, "ICU lowercase failed");
    for (int32_t k = 0; k < n;) {
      UChar32 o;
      U16_NEXT(dst, k, n, o);
      out.push_back(static_cast<char32_t>(o));
    }
  }
  return out;
}

// UAX #15 quick check for NFC from ICU's NFC_Quick_Check and combining classes: true when the
// text is certainly NFC already (false means "maybe not", decided by the full normalizer).
bool nfc_quick_check_yes(std::u32string_view text) {
  uint8_t last_cc = 0;
  for (char32_t c : text) {
    if (c < 0x300) {
      last_cc = 0;
      continue;
    }
    const auto uc = static_cast<UChar32>(c);
    const uint8_t cc = u_getCombiningClass(uc);
    if (cc != 0 && last_cc > cc) return false;
    if (u_getIntPropertyValue(uc, UCHAR_NFC_QUICK_CHECK) != UNORM_YES) return false;
    last_cc = cc;
  }
  return true;
}

std::u32string nfc(std::u32string_view text) {
  if (nfc_quick_check_yes(text)) return std::u32string(text);
  return normalize(text, false);
}

std::u32string nfkc(std::u32string_view text) { return normalize(text, true); }

}  // namespace clipserve::text

// ftfy.fix_text (default settings) in C++. The heuristics (character categories, the "badness"
// patterns, the encodings tried and their order) are ftfy 6.3's; the single-byte code pages come
// from ICU's converters and every Unicode property from ICU.
#include "text/ftfy.h"

#include <unicode/ucnv.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/check.h"
#include "text/html_unescape.h"
#include "text/unicode.h"

namespace clipserve::text {

namespace {

// ---------------------------------------------------------------------------------------------
// Single-byte encodings ftfy tries, in its order. "Sloppy" variants decode the bytes a code page
// leaves undefined as the Latin-1 character of the same number, and byte 0x1A as U+FFFD.

enum CodecId {
  kLatin1,
  kSloppy1252,
  kSloppy1251,
  kSloppy1250,
  kSloppy1253,
  kSloppy1254,
  kSloppy1257,
  kIso8859_2,
  kMacRoman,
  kCp437,
  kNumCodecs
};

struct ByteCodec {
  std::array<char32_t, 256> decode{};
  std::array<bool, 256> defined{};  // false where the strict code page has no character
  std::unordered_map<char32_t, uint8_t> encode;  // characters >= 0x80 (and U+FFFD when sloppy)
  bool sloppy = false;

  bool can_encode(char32_t c) const {
    if (c < 0x80) return !(sloppy && c == 0x1A);
    return encode.count(c) != 0;
  }
};

ByteCodec make_codec(const char* icu_name, bool sloppy) {
  ByteCodec codec;
  codec.sloppy = sloppy;
  for (int b = 0; b < 256; ++b) {
    codec.decode[b] = static_cast<char32_t>(b);
    codec.defined[b] = true;
  }
  if (icu_name != nullptr) {
    UErrorCode status = U_ZERO_ERROR;
    UConverter* cnv = ucnv_open(icu_name, &status);
    CS_ASSERT(U_SUCCESS(status), "ICU converter ", icu_name, " unavailable");
    ucnv_setToUCallBack(cnv, UCNV_TO_U_CALLBACK_STOP, nullptr, nullptr, nullptr, &status);
    for (int b = 0x80; b < 0x100; ++b) {
      const char in = static_cast<char>(b);
      const char* src = &in;
      UChar out[4];
      UChar* dst = out;
      UErrorCode st = U_ZERO_ERROR;
      ucnv_reset(cnv);
      ucnv_toUnicode(cnv, &dst, out + 4, &src, &in + 1, nullptr, true, &st);
      // ICU's Windows code pages give the C1 control of the same number for the bytes Windows
      // leaves undefined; Python's codecs (and ftfy) treat those bytes as undefined.
      if (U_FAILURE(st) || dst == out || (b < 0xA0 && out[0] == b && sloppy)) {
        codec.decode[b] = static_cast<char32_t>(b);
        codec.defined[b] = false;
      } else {
        codec.decode[b] = out[0];
      }
    }
    ucnv_close(cnv);
  }
  if (sloppy) codec.decode[0x1A] = 0xFFFD;
  for (int b = 0x80; b < 0x100; ++b) codec.encode.emplace(codec.decode[b], static_cast<uint8_t>(b));
  if (sloppy) codec.encode.emplace(0xFFFD, 0x1A);
  return codec;
}

// ---------------------------------------------------------------------------------------------
// Character categories of ftfy's badness heuristic (ftfy/badness.py MOJIBAKE_CATEGORIES) and the
// UTF-8 clue classes of chardata.py (derived here from the code pages instead of listed).

enum Category : uint32_t {
  kCommon = 1u << 0,
  kC1 = 1u << 1,
  kBad = 1u << 2,
  kLaw = 1u << 3,
  kCurrency = 1u << 4,
  kStartPunct = 1u << 5,
  kEndPunct = 1u << 6,
  kNumeric = 1u << 7,
  kKaomoji = 1u << 8,
  kUpperAccented = 1u << 9,
  kLowerAccented = 1u << 10,
  kUpperCommon = 1u << 11,
  kLowerCommon = 1u << 12,
  kBox = 1u << 13,
  kUtf8First2 = 1u << 14,
  kUtf8First3 = 1u << 15,
  kUtf8First4 = 1u << 16,
  kUtf8Cont = 1u << 17,
  kUtf8ContStrict = 1u << 18,
};

constexpr char32_t kCategoryTableSize = 0x2600;

struct CategoryDef {
  uint32_t category;
  std::u32string_view chars;   // listed characters
  std::u32string_view ranges;  // pairs of (first, last)
};

// The character lists are ftfy's (badness.py); ranges are written as pairs.
constexpr CategoryDef kCategoryDefs[] = {
    {kCommon, U"\u00A0\u00AD·´–—―…’", U""},
    {kC1, U"", U"\u0080\u009F"},
    {kBad, U"¦¤¨¬¯¸ƒˆˇ˘˛˜†‡‰⌐◊\uFFFDªº", U""},
    {kLaw, U"¶§", U""},
    {kCurrency, U"¢£¥₧€", U""},
    {kStartPunct, U"¡«¿©΄΅‘‚“„•‹\uF8FF", U""},
    {kEndPunct, U"®»˝”›™", U""},
    {kNumeric, U"²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№", U""},
    {kKaomoji, U"ŐŌŪŲ°", U"ÒÖÙÜòöøü"},
    {kUpperAccented, U"ØÜÝĂĀĄĆČĎĐĘĚĒĖĞĢİĪĶĹĽŁĻŃŇŅŒŘŚŞŠŢŤŮŰŸŹŻŽҐ", U"ÀÑ"},
    {kLowerAccented, U"ßăąāćčďđęěēėğģįīķĺľłļœŕśşšťüźżžґﬁﬂ", U"àñ"},
    {kUpperCommon, U"ÞΆΈΉΊΌΎΏΪΫ", U"ΑΩЁЯ"},
    {kLowerCommon, U"άέήίΰ", U"αωаџ"},
    {kBox, U"│┌┐┘├┤┬┼▀▄█▌▐░▒▓", U"═╬"},
};

// Characters of utf8_continuation that ftfy does not count as "strict" continuation clues
// (spaces, dashes, quotes, bullet, ellipsis can stand for themselves next to mojibake).
constexpr std::u32string_view kNotStrictContinuation = U" –—―‘’‚“”„•…";

struct FtfyData {
  std::array<ByteCodec, kNumCodecs> codecs;
  std::vector<uint32_t> categories;  // for code points < kCategoryTableSize
  std::array<std::u32string, 0xFFF0 - 0xFF01> width_map;

  std::unordered_map<char32_t, uint32_t> high_categories;  // members >= kCategoryTableSize
  char32_t high_min = 0x110000, high_max = 0;

  uint32_t category(char32_t c) const {
    if (c < kCategoryTableSize) return categories[c];
    if (c < high_min || c > high_max) return 0;
    auto it = high_categories.find(c);
    return it == high_categories.end() ? 0 : it->second;
  }
};

FtfyData* build_data() {
  auto* d = new FtfyData;
  d->codecs[kLatin1] = make_codec(nullptr, false);
  d->codecs[kSloppy1252] = make_codec("windows-1252", true);
  d->codecs[kSloppy1251] = make_codec("windows-1251", true);
  d->codecs[kSloppy1250] = make_codec("windows-1250", true);
  d->codecs[kSloppy1253] = make_codec("windows-1253", true);
  d->codecs[kSloppy1254] = make_codec("windows-1254", true);
  d->codecs[kSloppy1257] = make_codec("windows-1257", true);
  d->codecs[kIso8859_2] = make_codec("ISO-8859-2", false);
  d->codecs[kMacRoman] = make_codec("macintosh", false);
  d->codecs[kCp437] = make_codec("ibm-437", false);
  // Python's cp437 decodes 0xE6 as MICRO SIGN where ICU's table has GREEK SMALL LETTER MU.
  {
    ByteCodec& cp437 = d->codecs[kCp437];
    cp437.encode.erase(cp437.decode[0xE6]);
    cp437.decode[0xE6] = 0xB5;
    cp437.encode[0xB5] = 0xE6;
  }

  d->categories.assign(kCategoryTableSize, 0);
  auto mark = [&](char32_t c, uint32_t cat) {
    if (c < kCategoryTableSize) {
      d->categories[c] |= cat;
    } else {
      d->high_categories[c] |= cat;
      d->high_min = std::min(d->high_min, c);
      d->high_max = std::max(d->high_max, c);
    }
  };
  for (const CategoryDef& def : kCategoryDefs) {
    for (char32_t c : def.chars) mark(c, def.category);
    for (size_t i = 0; i + 1 < def.ranges.size(); i += 2) {
      for (char32_t c = def.ranges[i]; c <= def.ranges[i + 1]; ++c) mark(c, def.category);
    }
  }
  // UTF-8 clues: the characters that UTF-8 lead / continuation bytes become when decoded with
  // the Latin-1-like code pages ftfy looks for inside otherwise good text.
  const CodecId clue_codecs[] = {kLatin1,     kSloppy1252, kSloppy1251, kSloppy1250,
                                 kSloppy1253, kSloppy1254, kSloppy1257};
  for (CodecId id : clue_codecs) {
    const ByteCodec& codec = d->codecs[id];
    for (int b = 0x80; b < 0xC0; ++b) {
      if (!codec.defined[b]) continue;
      const char32_t c = codec.decode[b];
      mark(c, kUtf8Cont);
      if (kNotStrictContinuation.find(c) == std::u32string_view::npos) mark(c, kUtf8ContStrict);
    }
    for (int b = 0xC2; b <= 0xDF; ++b) {
      if (codec.defined[b]) mark(codec.decode[b], kUtf8First2);
    }
    for (int b = 0xE0; b <= 0xEF; ++b) {
      if (codec.defined[b]) mark(codec.decode[b], kUtf8First3);
    }
    for (int b : {0xF0, 0xF3}) {
      if (codec.defined[b]) mark(codec.decode[b], kUtf8First4);
    }
  }
  mark(U' ', kUtf8Cont);

  for (char32_t c = 0xFF01; c < 0xFFF0; ++c) {
    std::u32string s(1, c);
    std::u32string n = nfkc(s);
    d->width_map[c - 0xFF01] = n == s ? std::u32string() : n;
  }
  return d;
}

const FtfyData& data() {
  static const std::unique_ptr<FtfyData> d(build_data());
  return *d;
}

// ---------------------------------------------------------------------------------------------
// The badness regex (ftfy/badness.py BADNESS_RE): each alternative is a fixed-length sequence of
// character predicates.

enum Special : uint8_t {
  kNoSpecial,
  kAsciiLetter,     // [a-zA-Z]
  kAsciiLower,      // [a-z]
  kPySpace,         // \s
  kPyWord,          // \w
  kNotAsciiLetter,  // [^A-Za-z]
  kNotNewline,      // .
};

struct Pred {
  uint32_t categories = 0;
  std::u32string_view chars;
  Special special = kNoSpecial;
};

bool matches(const FtfyData& d, const Pred& p, char32_t c) {
  if (p.categories & d.category(c)) return true;
  if (!p.chars.empty() && p.chars.find(c) != std::u32string_view::npos) return true;
  switch (p.special) {
    case kNoSpecial:
      return false;
    case kAsciiLetter:
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    case kAsciiLower:
      return c >= 'a' && c <= 'z';
    case kPySpace:
      return py_isspace(c);
    case kPyWord:
      return py_isword(c);
    case kNotAsciiLetter:
      return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
    case kNotNewline:
      return c != '\n';
  }
  return false;
}

struct Pattern {
  std::vector<Pred> preds;
  bool at_start = false;  // anchored with ^
};

std::vector<Pattern> build_badness_patterns() {
  const uint32_t lower_acc = kLowerAccented, upper_acc = kUpperAccented, box = kBox;
  const uint32_t start = kStartPunct, end = kEndPunct, currency = kCurrency;
  const uint32_t numeric = kNumeric, law = kLaw, bad = kBad, c1 = kC1;
  auto P = [](uint32_t cats, std::u32string_view chars = U"", Special s = kNoSpecial) {
    return Pred{cats, chars, s};
  };
  auto L = [](std::u32string_view chars) { return Pred{0, chars, kNoSpecial}; };
  auto S = [](Special s) { return Pred{0, U"", s}; };
  std::vector<Pattern> v;
  auto add = [&](std::vector<Pred> preds, bool at_start = false) {
    v.push_back(Pattern{std::move(preds), at_start});
  };
  add({P(c1)});
  add({P(bad | lower_acc | upper_acc | box | start | end | currency | numeric | law), P(bad)});
  add({S(kAsciiLetter), P(kLowerCommon | kUpperCommon), P(bad)});
  add({P(bad), P(lower_acc | upper_acc | box | start | end | currency | numeric | law)});
  add({P(lower_acc | kLowerCommon | box | end | currency | numeric), P(upper_acc)});
  add({P(box | end | currency | numeric), P(lower_acc)});
  add({P(lower_acc | box | end), P(currency)});
  add({S(kPySpace), P(upper_acc), P(currency)});
  add({P(upper_acc | box), P(numeric | law)});
  add({P(lower_acc | upper_acc | box | currency | end), P(start), P(numeric)});
  add({P(lower_acc | upper_acc | currency | numeric | box | law), P(end), P(start)});
  add({P(currency | numeric | box), P(start)});
  add({S(kAsciiLower), P(upper_acc), P(start | currency)});
  add({P(box), P(kKaomoji)});
  add({P(lower_acc | upper_acc | currency | numeric | start | end | law), P(box)});
  add({P(box), P(end)});
  add({P(lower_acc | upper_acc), P(start | end), S(kPyWord)});
  // The ligature œ when not followed by an unaccented Latin letter.
  add({L(U"Œœ"), S(kNotAsciiLetter)});
  // Degree signs after capital letters.
  add({P(upper_acc), L(U"°")});
  // Common Windows-1252 2-character mojibake.
  add({L(U"ÂÃÎÐ"), P(start | end, U"€œŠš¢£Ÿž\u00A0\u00AD®©°·»–—´")});
  add({L(U"×"), L(U"²³")});
  // Windows-1252 mojibake of Arabic words: four characters.
  {
    const Pred arabic2 = P(kCommon | currency | bad | numeric | start, U"ŸŠ®°µ»");
    add({L(U"ØÙ"), arabic2, L(U"ØÙ"), arabic2});
  }
  add({L(U"à"), L(U"²µ¹¼½¾")});
  // MacRoman mojibake.
  add({L(U"√"), L(U"±∂†≠®™´≤≥¥µø")});
  add({L(U"≈"), L(U"°¢")});
  add({L(U"‚"), L(U"Ä"), L(U"ìîïòôúùû†°¢π")});
  add({L(U"‚"), L(U"âó"), L(U"àä°ê")});
  // Windows-1251 mojibake.
  add({L(U"в"), L(U"Ђ")});
  add({L(U"ВГРС"), P(c1 | bad | start | end | currency, U"°µ"), L(U"ВГРС")});
  add({L(U"Г"), L(U"ў"), L(U"В"), L(U"Ђ"), L(U"В"), S(kNotNewline), P(0, U" ", kAsciiLetter)});
  // Windows-1252 encodings of 'à' and 'á', and of U+A0 itself.
  add({L(U"Ã"), L(U"\u00A0¡")});
  add({S(kAsciiLower), L(U"ÃÂ"), L(U" ")});
  add({S(kAsciiLower), S(kPySpace), L(U"ÃÂ"), L(U" ")});
  add({L(U"ÃÂ"), L(U" ")}, true);
  // Â standing for the same character that follows it.
  add({P(end, U".,?!", kAsciiLower), L(U"Â"), P(start | end, U" ")});
  // Windows-1253 mojibake.
  add({L(U"β"), L(U"€"), L(U"™\u00A0Ά\u00AD®°")});
  add({L(U"ΒΓΞΟ"), P(c1 | bad | start | end | currency, U"°"), L(U"ΒΓΞΟ")});
  // Windows-1257 mojibake.
  add({L(U"ā"), L(U"€")});
  return v;
}

// The patterns plus lookup tables: for code points below kCategoryTableSize, the set of patterns
// whose first predicate matches, and a bitmap per predicate. Characters above the table are
// tested with matches() directly.
struct BadnessMatcher {
  std::vector<Pattern> patterns;
  std::vector<uint64_t> first;      // [c]: bit p set when pattern p's first predicate matches c
  std::vector<size_t> pred_index;   // first flattened predicate index of each pattern
  std::vector<const Pred*> preds;   // flattened predicates
  std::vector<uint64_t> pred_bits;  // bitmap of kCategoryTableSize bits per predicate
  static constexpr size_t kWords = kCategoryTableSize / 64;

  bool pred_matches(const FtfyData& d, size_t flat, char32_t c) const {
    if (c < kCategoryTableSize) return (pred_bits[flat * kWords + c / 64] >> (c % 64)) & 1;
    return matches(d, *preds[flat], c);
  }
};

const BadnessMatcher& badness_matcher() {
  static const BadnessMatcher* m = [] {
    auto* b = new BadnessMatcher;
    const FtfyData& d = data();
    b->patterns = build_badness_patterns();
    CS_ASSERT(b->patterns.size() <= 64);
    b->first.assign(kCategoryTableSize, 0);
    for (size_t p = 0; p < b->patterns.size(); ++p) {
      b->pred_index.push_back(b->preds.size());
      for (const Pred& pred : b->patterns[p].preds) b->preds.push_back(&pred);
    }
    b->pred_bits.assign(b->preds.size() * BadnessMatcher::kWords, 0);
    for (size_t f = 0; f < b->preds.size(); ++f) {
      for (char32_t c = 0; c < kCategoryTableSize; ++c) {
        if (matches(d, *b->preds[f], c))
          b->pred_bits[f * BadnessMatcher::kWords + c / 64] |= uint64_t{1} << (c % 64);
      }
    }
    for (size_t p = 0; p < b->patterns.size(); ++p) {
      for (char32_t c = 0; c < kCategoryTableSize; ++c) {
        if (b->pred_matches(d, b->pred_index[p], c)) b->first[c] |= uint64_t{1} << p;
      }
    }
    return b;
  }();
  return *m;
}

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

bool ftfy_is_bad(std::u32string_view text) {
  const FtfyData& d = data();
  const BadnessMatcher& m = badness_matcher();
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = text[i];
    uint64_t candidates;
    if (c < kCategoryTableSize) {
      candidates = m.first[c];
    } else if (d.category(c) != 0 || py_isspace(c)) {
      // Above the table only category members and whitespace can start a pattern.
      candidates = 0;
      for (size_t p = 0; p < m.patterns.size(); ++p) {
        if (m.pred_matches(d, m.pred_index[p], c)) candidates |= uint64_t{1} << p;
      }
    } else {
      continue;
    }
    while (candidates) {
      const int p = __builtin_ctzll(candidates);
      candidates &= candidates - 1;
      const Pattern& pat = m.patterns[static_cast<size_t>(p)];
      const size_t len = pat.preds.size();
      if ((pat.at_start && i != 0) || i + len > n) continue;
      bool ok = true;
      for (size_t k = 1; k < len && ok; ++k)
        ok = m.pred_matches(d, m.pred_index[static_cast<size_t>(p)] + k, text[i + k]);
      if (ok) return true;
    }
  }
  return false;
}

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

// ftfy's badness heuristic (ftfy/badness.py BADNESS_RE, is_bad): fixed-length sequences of
// character predicates, matched with per-character bitsets.
#include <memory>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "text/ftfy.h"
#include "text/ftfy_data.h"
#include "text/unicode.h"

namespace clipserve::text {

using namespace ftfy_detail;

namespace {

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

}  // namespace clipserve::text

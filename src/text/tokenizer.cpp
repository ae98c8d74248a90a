// clipserve::Tokenizer: open_clip SimpleTokenizer (clean="lower") ids. Pure-ASCII texts that no
// cleaning step can change take a byte-level fast path; everything else goes through the full
// Unicode pipeline (text/clean.h).
#include "clipserve/tokenizer.h"

#include <string>

#include "core/check.h"
#include "text/bpe.h"
#include "text/clean.h"
#include "text/unicode.h"

namespace clipserve {

namespace {

constexpr std::string_view kStartText = "<start_of_text>";
constexpr std::string_view kEndText = "<end_of_text>";

// Collects ids and stops once the context is known to overflow.
class IdSink {
 public:
  IdSink(int context_length) : context_length_(context_length) {
    result_.ids.reserve(static_cast<size_t>(context_length));
    result_.ids.push_back(Tokenizer::kStartToken);
  }
  bool full() const { return full_; }
  std::vector<int32_t>& ids() { return result_.ids; }
  void check() {
    // SOT + (context_length - 1) BPE ids: adding EOT exceeds the context, so the text is
    // truncated whatever follows.
    if (static_cast<int>(result_.ids.size()) >= context_length_) full_ = true;
  }
  void special(int32_t id) {
    result_.ids.push_back(id);
    check();
  }
  void word(std::string_view utf8) {
    text::Bpe::get().encode_word(utf8, result_.ids);
    check();
  }
  Tokens finish() {
    if (full_) {
      result_.ids.resize(static_cast<size_t>(context_length_));
      result_.ids.back() = Tokenizer::kEndToken;
      result_.truncated = true;
    } else {
      result_.ids.push_back(Tokenizer::kEndToken);
    }
    return std::move(result_);
  }

 private:
  int context_length_;
  bool full_ = false;
  Tokens result_;
};

// True when ftfy, html.unescape and the control-character rules leave this ASCII text alone
// apart from whitespace and case, which the fast path handles itself.
bool ascii_fast_path_ok(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80 || c == '&' || c == '\r' || c == 0x7F) return false;
    if (c < 0x20 && c != '\t' && c != '\n' && c != 0x0C) return false;
  }
  return true;
}

inline bool ascii_space(unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0D); }
inline bool ascii_letter(unsigned char c) { return c >= 'a' && c <= 'z'; }
inline bool ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// Contractions of the word regex: 's|'t|'re|'ve|'m|'ll|'d (the text is lower case already).
size_t ascii_contraction(std::string_view s, size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < s.size()) {
    const char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

void pretokenize_ascii(std::string_view s, IdSink& sink) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n && !sink.full()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ') {
      ++i;
      continue;
    }
    if (c == '<') {
      if (s.substr(i).starts_with(kStartText)) {
        sink.special(Tokenizer::kStartToken);
        i += kStartText.size();
        continue;
      }
      if (s.substr(i).starts_with(kEndText)) {
        sink.special(Tokenizer::kEndToken);
        i += kEndText.size();
        continue;
      }
    }
    if (const size_t len = ascii_contraction(s, i)) {
      sink.word(s.substr(i, len));
      i += len;
      continue;
    }
    size_t j = i + 1;
    if (ascii_letter(c)) {
      while (j < n && ascii_letter(static_cast<unsigned char>(s[j]))) ++j;
    } else if (!ascii_digit(c)) {
      while (j < n) {
        const unsigned char d = static_cast<unsigned char>(s[j]);
        if (d == ' ' || ascii_letter(d) || ascii_digit(d)) break;
        ++j;
      }
    }
    sink.word(s.substr(i, j - i));
    i = j;
  }
}

// Case-insensitive literal match as the regex module's IGNORECASE does it on lower-case text:
// 'ſ' (U+017F) folds to 's'.
bool match_literal(std::u32string_view s, size_t i, std::string_view lit) {
  if (s.size() - i < lit.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    const char32_t c = s[i + k];
    if (c != static_cast<char32_t>(lit[k]) && !(lit[k] == 's' && c == 0x17F)) return false;
  }
  return true;
}

size_t contraction(std::u32string_view s, size_t i) {
  static constexpr std::string_view kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  if (s[i] != U'\'') return 0;
  for (std::string_view c : kContractions) {
    if (match_literal(s, i, c)) return c.size();
  }
  return 0;
}

void pretokenize_unicode(std::u32string_view s, IdSink& sink) {
  const size_t n = s.size();
  size_t i = 0;
  std::string utf8;
  auto emit = [&](size_t begin, size_t end) {
    utf8.clear();
    for (size_t k = begin; k < end; ++k) text::append_utf8(s[k], utf8);
    sink.word(utf8);
  };
  while (i < n && !sink.full()) {
    const char32_t c = s[i];
    if (c == U' ') {  // the only whitespace left after collapsing
      ++i;
      continue;
    }
    if (c == U'<') {
      if (match_literal(s, i, kStartText)) {
        sink.special(Tokenizer::kStartToken);
        i += kStartText.size();
        continue;
      }
      if (match_literal(s, i, kEndText)) {
        sink.special(Tokenizer::kEndToken);
        i += kEndText.size();
        continue;
      }
    }
    if (text::is_regex_unmatched(c)) {  // no regex alternative matches: findall skips it
      ++i;
      continue;
    }
    if (const size_t len = contraction(s, i)) {
      emit(i, i + len);
      i += len;
      continue;
    }
    size_t j = i + 1;
    if (text::is_letter(c)) {
      while (j < n && text::is_letter(s[j])) ++j;
    } else if (!text::is_number(c)) {
      while (j < n && s[j] != U' ' && !text::is_letter(s[j]) && !text::is_number(s[j]) &&
             !text::is_regex_unmatched(s[j])) {
        ++j;
      }
    }
    emit(i, j);
    i = j;
  }
}

class ClipTokenizer final : public Tokenizer {
 public:
  Tokens encode(std::string_view text, int context_length) const override {
    CS_CHECK_ARG(context_length >= 2, "context_length must be at least 2, got ", context_length);
    IdSink sink(context_length);
    if (ascii_fast_path_ok(text)) {
      // Whitespace collapse and lower case in one pass.
      thread_local std::string cleaned;
      cleaned.clear();
      bool pending_space = false;
      for (unsigned char c : text) {
        if (ascii_space(c)) {
          pending_space = !cleaned.empty();
          continue;
        }
        if (pending_space) cleaned.push_back(' ');
        pending_space = false;
        cleaned.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      }
      pretokenize_ascii(cleaned, sink);
      // One huge prompt must not keep its copy alive on this thread forever.
      if (cleaned.capacity() > (size_t(1) << 20)) std::string().swap(cleaned);
    } else {
      const std::u32string decoded = text::decode_utf8(text);  // throws on invalid UTF-8
      pretokenize_unicode(text::clean_text(decoded), sink);
    }
    return sink.finish();
  }
};

}  // namespace

const Tokenizer& Tokenizer::get() {
  static const ClipTokenizer tokenizer;
  text::Bpe::get();  // load the vocabulary now rather than in the first encode()
  return tokenizer;
}

}  // namespace clipserve

// Tokenizer identical to open_clip's SimpleTokenizer (ftfy fix_text, HTML unescape, whitespace
// collapse, lower case, CLIP's word regex, byte-level BPE, 49,408-token vocabulary).
//
//   const auto& tok = clipserve::Tokenizer::get();      // vocabulary loaded once
//   auto r = tok.encode("a photo of a dog.");           // {49406, ..., 49407}
//
// Cleaning: ftfy.fix_text (default settings), html.unescape twice, whitespace collapsing and
// str.lower(), as open_clip 2.32 does with clean="lower"; "<start_of_text>" / "<end_of_text>"
// inside the text become the special ids. See docs/tokenizer.md.
//
// Thread-safety: encode() may be called concurrently from any number of threads (words are
// cached in a shared, bounded BPE cache).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace clipserve {

struct Tokens {
  std::vector<int32_t> ids;  ///< start token, BPE ids, end token; no padding
  bool truncated = false;    ///< the text had more than context_length - 2 BPE tokens
};

class Tokenizer {
 public:
  static constexpr int32_t kStartToken = 49406;
  static constexpr int32_t kEndToken = 49407;

  /// The process-wide tokenizer with the bundled CLIP vocabulary.
  static const Tokenizer& get();

  /// Throws Error(kInvalidArgument) naming the byte offset when `text` is not valid UTF-8, or
  /// when context_length < 2. Longer texts keep their first context_length ids, the last
  /// forced to kEndToken, and set `truncated`.
  virtual Tokens encode(std::string_view text, int context_length = 77) const = 0;

  virtual ~Tokenizer() = default;
};

}  // namespace clipserve

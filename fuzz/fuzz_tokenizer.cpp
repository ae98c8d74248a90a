// libFuzzer target for the tokenizer: arbitrary bytes must give either ids that start with the
// start token, end with the end token and fit the context, or an Error (invalid UTF-8) — never a
// crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "clipserve/error.h"
#include "clipserve/tokenizer.h"
#include "text/ftfy.h"
#include "text/unicode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks a context length (2..257) so truncation paths get exercised.
  const int context = 2 + data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool valid = clipserve::text::find_invalid_utf8(text) == std::string_view::npos;
  try {
    const clipserve::Tokens t = clipserve::Tokenizer::get().encode(text, context);
    if (!valid) std::abort();  // invalid UTF-8 must be rejected
    if (t.ids.size() < 2 || static_cast<int>(t.ids.size()) > context) std::abort();
    if (t.ids.front() != clipserve::Tokenizer::kStartToken) std::abort();
    if (t.ids.back() != clipserve::Tokenizer::kEndToken) std::abort();
    for (int32_t id : t.ids) {
      if (id < 0 || id >= 49408) std::abort();
    }
  } catch (const clipserve::Error&) {
    if (valid) std::abort();  // valid text must always tokenize
  }
  return 0;
}

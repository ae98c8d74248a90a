// Access to the gzip-compressed CLIP BPE merges file embedded in the binary.
#pragma once

#include <string_view>

namespace clipserve::text {

/// The bytes of bpe_simple_vocab_16e6.txt.gz as shipped in data/.
std::string_view embedded_bpe_vocab_gz();

}  // namespace clipserve::text

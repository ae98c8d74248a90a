// The CLIP BPE merges (data/bpe_simple_vocab_16e6.txt.gz, MIT licence: data/LICENSE-bpe-vocab)
// embedded into the binary with the assembler's .incbin, so the tokenizer works from any
// directory without data files.
#include "text/vocab_blob.h"

#ifndef CLIPSERVE_DATA_DIR
#error "CLIPSERVE_DATA_DIR must point at the repository's data/ folder"
#endif

__asm__(
    ".section .rodata\n"
    ".balign 16\n"
    "clipserve_bpe_vocab_gz_begin:\n"
    ".incbin \"" CLIPSERVE_DATA_DIR
    "/bpe_simple_vocab_16e6.txt.gz\"\n"
    "clipserve_bpe_vocab_gz_end:\n"
    ".previous\n");

extern "C" const unsigned char clipserve_bpe_vocab_gz_begin[];
extern "C" const unsigned char clipserve_bpe_vocab_gz_end[];

namespace clipserve::text {

std::string_view embedded_bpe_vocab_gz() {
  return {reinterpret_cast<const char*>(clipserve_bpe_vocab_gz_begin),
          static_cast<size_t>(clipserve_bpe_vocab_gz_end - clipserve_bpe_vocab_gz_begin)};
}

}  // namespace clipserve::text

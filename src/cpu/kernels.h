// Fast CPU kernels around the oneDNN matmuls: LayerNorm, attention core, bf16 conversion,
// with runtime dispatch between an AVX-512 build and a generic build of the same source
// (kernels_impl.h). Their reference twins are in src/nn/ref_kernels.h.
#pragma once

#include <cstdint>

namespace clipserve::cpu {

/// One sequence inside a packed [rows, ...] activation buffer.
struct SeqSpan {
  int offset;  ///< first row
  int length;  ///< rows
};

struct Kernels {
  /// y = LayerNorm(x) * gamma + beta per row (eps 1e-5); y is float (bf16 == false) or bf16.
  void (*layer_norm)(const float* x, long rows, int width, const float* gamma, const float* beta,
                     void* y, bool bf16);
  /// qkv: [rows, 3*width] float; out: [rows, width] float or bf16. Every sequence attends
  /// within itself (causal: to earlier rows only).
  void (*attention)(const float* qkv, const SeqSpan* seqs, int nseq, int width, int heads,
                    bool causal, void* out, bool bf16);
  /// Round-to-nearest-even float -> bf16.
  void (*to_bf16)(const float* x, long n, uint16_t* y);
  const char* isa;
};

/// The best build for this CPU (AVX-512 when available).
const Kernels& kernels();
/// The portable build (for tests comparing both).
const Kernels& generic_kernels();

}  // namespace clipserve::cpu

// Fast CPU kernels around the oneDNN matmuls: LayerNorm, attention softmax, bf16 conversion,
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
  /// Attention probabilities in place: s holds `mats` [tp, tp] score matrices (q . k); for
  /// rows i < len: softmax over keys j < n (n = causal ? i + 1 : len) of s * scale, zeros for
  /// j >= n; rows i >= len become zeros (padding).
  void (*attention_softmax)(float* s, int mats, int tp, int len, float scale, bool causal);
  /// Round-to-nearest-even float -> bf16.
  void (*to_bf16)(const float* x, long n, uint16_t* y);
  const char* isa;
};

/// The best build for this CPU (AVX-512 when available).
const Kernels& kernels();
/// The portable build (for tests comparing both).
const Kernels& generic_kernels();

}  // namespace clipserve::cpu

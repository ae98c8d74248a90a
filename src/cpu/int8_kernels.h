// Row kernels of the int8 path around the oneDNN s8 matmuls: dynamic per-token quantization
// with outlier columns split off (optionally after a LayerNorm), and the fused epilogue
// (per-token dequantization, bias, outlier columns, GELU, residual add, the next LayerNorm,
// the next quantization) in one pass per row. Built twice (generic, AVX-512) with runtime
// dispatch, like kernels.h. The scheme is nn/ref_int8.h's; tests/test_int8.cpp checks them.
#pragma once

#include <cstdint>

namespace clipserve::cpu {

/// A quantized [rows, width] activation: q (int8), one scale per row, and per row up to
/// `kmax` outlier columns (index, float value) whose q is 0 (count == null: no split).
struct Int8Rows {
  int8_t* q = nullptr;
  float* scale = nullptr;
  int* count = nullptr;  ///< [rows]
  int* col = nullptr;    ///< [rows * kmax]
  float* val = nullptr;  ///< [rows * kmax]
  int kmax = 0;
};

/// y = post(t * s_x + s_w * (outlier columns . W) + b) for the rows of one linear layer, t
/// the matmul's float(acc) * s_w; then optionally the row's LayerNorm and quantization.
struct Int8Epilogue {
  const float* t = nullptr;  ///< [rows, out]
  int out = 0;
  const float* bias = nullptr;    ///< [out]
  const Int8Rows* in = nullptr;   ///< the layer's input (scales and outlier columns)
  const int8_t* wt = nullptr;     ///< [in_width, out]: the quantized weights transposed
  const float* wscale = nullptr;  ///< [out]
  int act = 0;                    ///< 0 none, 1 GELU (erf), 2 QuickGELU
  bool residual = false;          ///< y += result (else y = result)
  float* y = nullptr;             ///< [rows, out]; null: not stored (next must be set)
  const float* ln_g = nullptr;    ///< LayerNorm of the row before `next` (null: none)
  const float* ln_b = nullptr;
  const Int8Rows* next = nullptr;  ///< quantize the (normalized) row into this (null: no)
  /// Instead of y (act 0, not residual, out = 3 * nheads * head_dim): write q | k | v of each
  /// row r as bf16 into the head planes: value (which, h, c) goes to
  /// heads[which * plane + head_pos[r] + h * head_stride[r] + c]; rows with head_pos < 0 are
  /// skipped (Int8HeadAttention computes the mapping).
  uint16_t* heads = nullptr;
  const long* head_pos = nullptr;
  const long* head_stride = nullptr;
  long plane = 0;
  int nheads = 0, head_dim = 0;
};

struct Int8Kernels {
  /// Per-row quantization of x [rows, width] (after LayerNorm(gamma, beta) when gamma is not
  /// null) into r; equal bit for bit to nn::ref::quantize_row_split of the same floats.
  void (*quantize)(const float* x, long rows, int width, const float* gamma, const float* beta,
                   const Int8Rows& r);
  void (*epilogue)(const Int8Epilogue& e, long rows);
  /// Quantizes the attention output in head planes (o[head_pos[r] + h * head_stride[r] + c],
  /// float) as the rows r of r_out (width nheads * head_dim), the same as quantize() of the
  /// row-major matrix; rows with head_pos < 0 get q 0, scale 0, no outliers.
  void (*quantize_heads)(const float* o, long rows, const long* head_pos, const long* head_stride,
                         int nheads, int head_dim, const Int8Rows& r_out);
  const char* isa;
};

/// The best build for this CPU (AVX-512 when available).
const Int8Kernels& int8_kernels();
/// The portable build (for tests comparing both).
const Int8Kernels& generic_int8_kernels();

}  // namespace clipserve::cpu

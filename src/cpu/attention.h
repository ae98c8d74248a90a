// Multi-head attention core on oneDNN batched matmuls: scores = Q K^T and out = P V run as
// brgemm matmuls over (sequence, head) batches, with our softmax kernel in between.
#pragma once

#include <dnnl.hpp>
#include <map>
#include <utility>
#include <vector>

#include "cpu/kernels.h"

namespace clipserve::cpu {

/// Not thread-safe (owns its buffers and primitive cache).
class Attention {
 public:
  Attention(dnnl::engine eng, dnnl::stream strm) : eng_(std::move(eng)), strm_(std::move(strm)) {}

  /// qkv: [rows, 3*width] float (q | k | v per row, as in_proj produces); out: [rows, width]
  /// float, or bf16 when `bf16_out`. Each sequence attends within itself (causal: to earlier
  /// rows only). Rows outside every sequence are left untouched.
  void run(const float* qkv, const SeqSpan* seqs, int nseq, int width, int heads, bool causal,
           void* out, bool bf16_out);

 private:
  // `count` sequences of `len` rows (starting at the given rows), padded to `tp` rows.
  void run_group(const float* qkv, const std::vector<int>& offsets, int len, int tp, int width,
                 int heads, bool causal, void* out, bool bf16_out);
  dnnl::matmul& primitive(bool scores, int batch, int tp, int d);

  dnnl::engine eng_;
  dnnl::stream strm_;
  std::map<std::tuple<bool, int, int, int>, dnnl::matmul> prims_;
  std::vector<float> q_, k_, v_, s_, o_;
};

}  // namespace clipserve::cpu

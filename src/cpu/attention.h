// Multi-head attention core. Non-causal sequences (images) run fused, flash-style, on AVX-512
// (attention_avx512.cpp: per block of query rows an online softmax over blocks of keys, the
// score matrix never written); otherwise (texts, other CPUs, head sizes not a multiple of 16)
// scores = Q K^T and out = P V run as oneDNN batched matmuls with our softmax in between.
#pragma once

#include <dnnl.hpp>
#include <map>
#include <utility>
#include <vector>

#include "cpu/kernels.h"

namespace clipserve::cpu {

/// The fused kernel (AVX-512 only; attention.h's Attention calls it when fused_supported()).
/// Non-causal; qkv/out as Attention::run; kt_buf, v_buf: scratch (grown as needed).
void fused_attention_avx512(const float* qkv, const SeqSpan* seqs, int nseq, int width, int heads,
                            void* out, bool bf16_out, std::vector<float>& kt_buf,
                            std::vector<float>& v_buf);

/// Not thread-safe (owns its buffers and primitive cache).
class Attention {
 public:
  enum class Mode {
    kAuto,     ///< fused for non-causal sequences where supported (default)
    kMatmuls,  ///< always the oneDNN batched matmuls (the comparison path for tests, bench)
  };
  /// The default mode is kAuto, or kMatmuls when CLIPSERVE_ATTENTION=matmul is set.
  Attention(dnnl::engine eng, dnnl::stream strm);
  void set_mode(Mode m) { mode_ = m; }
  /// Whether the fused kernel runs for this head size on this CPU.
  static bool fused_supported(int head_dim);

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
  Mode mode_ = Mode::kAuto;
  std::map<std::tuple<bool, int, int, int>, dnnl::matmul> prims_;
  std::vector<float> q_, k_, v_, s_, o_;
};

}  // namespace clipserve::cpu

// int8 transformer blocks for the CPU backend: every linear layer of a residual block as a
// oneDNN s8 x s8 -> s32 matmul (VNNI / AMX-INT8) with the per-channel weight scale as its
// output scale, then one fused row pass of ours (int8_kernels.h): per-token scale, bias,
// outlier columns, GELU, residual add, the next LayerNorm and the next quantization.
// Activations are quantized dynamically per token with outlier columns split off (the scheme
// of src/nn/ref_int8.h, whose plain loops the tests compare this against). The attention core
// runs bf16 matmuls on head planes (Int8HeadAttention); LayerNorm statistics, the softmax, the
// residual stream and everything outside the blocks stay fp32.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "cpu/attention.h"
#include "cpu/int8_kernels.h"
#include "nn/clip_weights.h"
#include "nn/ref_int8.h"

namespace clipserve::cpu {

/// One int8 linear layer: t = float(q_x . q_w) * s_w by a oneDNN s8 x s8 matmul (the per
/// channel weight scale as its output scale), then the epilogue kernel (int8_kernels.h).
class Int8Linear {
 public:
  enum class Post { kNone, kResidual, kGelu, kQuickGelu };

  /// w: torch Linear weights [out, in] (quantized here, per output channel); b: [out] or null.
  Int8Linear(const dnnl::engine& eng, const float* w, const float* b, int in, int out,
             int typical_m);

  /// t [m, out] = float(acc) * s_w for xq [m, in] int8.
  void matmul(dnnl::stream& strm, int m, const int8_t* xq, float* t);
  /// The epilogue arguments for this layer's weights: t from matmul(), x its input.
  Int8Epilogue epilogue(const float* t, const Int8Rows* x, Post post) const;
  /// matmul + epilogue into y [m, out] float (kResidual: y += ...). Equals
  /// nn::ref::linear_int8 (+ ref::gelu) within the bound in docs/backends.md.
  void run(dnnl::stream& strm, int m, const Int8Rows& x, Post post, float* y);

  int in() const { return in_; }
  int out() const { return out_; }

 private:
  dnnl::matmul::primitive_desc make_pd(int m, const dnnl::memory::desc& wmd) const;

  dnnl::engine eng_;
  int in_ = 0, out_ = 0;
  std::vector<float> wscale_;
  std::vector<int8_t> wt_;   // [in, out]: the quantized weights transposed (outlier columns)
  dnnl::memory w_;           // s8, oneDNN's preferred layout
  std::vector<float> bias_;  // [out] (zeros when the layer has none)
  std::vector<float> tmp_;   // run()'s matmul output
  struct Prim {
    dnnl::matmul prim;
    dnnl::memory::desc src, dst;
  };
  std::map<int, Prim> prims_;  // by m
};

/// Attention with q, k, v in bf16 head planes (the qkv epilogue writes them through
/// Int8Epilogue::heads): per sequence [heads, tp, d] blocks, bf16 matmuls, fp32 softmax, fp32
/// output in the same layout. Equal-length non-causal sequences (images) run as one batched
/// call; causal ones (texts) one call per sequence, so a text's result does not depend on its
/// batch. Not thread-safe.
class Int8HeadAttention {
 public:
  Int8HeadAttention(dnnl::engine eng, dnnl::stream strm)
      : eng_(std::move(eng)), strm_(std::move(strm)) {}
  /// Lays out the planes for these sequences of `rows` packed rows (rows outside them are
  /// skipped); padding rows of each block are zeros (never written afterwards).
  void prepare(const std::vector<SeqSpan>& seqs, long rows, bool causal, int heads, int d);
  /// Points e's head fields at the planes.
  void bind(Int8Epilogue& e);
  /// Softmax(Q K^T / sqrt(d)) V for the prepared planes; the output's layout is the planes'.
  const float* run();
  const long* head_pos() const { return pos_.data(); }
  const long* head_stride() const { return stride_.data(); }

 private:
  struct Group {  // `count` sequences of `len` rows padded to tp, from value offset `base`
    int count, len, tp;
    long base;
  };
  dnnl::matmul& primitive(bool scores, int batch, int tp, int d);
  dnnl::engine eng_;
  dnnl::stream strm_;
  bool causal_ = false;
  int heads_ = 0, d_ = 0;
  long plane_ = 0;
  std::vector<Group> groups_;
  std::vector<long> pos_, stride_;
  std::map<std::tuple<bool, int, int, int>, dnnl::matmul> prims_;
  std::vector<uint16_t> qkv_, p_;
  std::vector<float> s_, o_;
};

/// The residual blocks of one tower in int8. Not thread-safe.
class Int8Blocks {
 public:
  /// outliers: split outlier columns off (nn::ref::kMaxOutliers per row) or not.
  Int8Blocks(const dnnl::engine& eng, const dnnl::stream& strm,
             const std::vector<nn::BlockWeights>& blocks, const nn::TowerShape& shape,
             bool quick_gelu, int typical_m, bool outliers);

  /// x: [m, width] fp32 residual stream, updated in place. gemm_only: only the matmuls (the
  /// bench's GEMM floor), activations left as they are.
  void run(float* x, int m, const std::vector<SeqSpan>& seqs, bool causal, bool gemm_only);

 private:
  struct Block {
    std::vector<float> ln;  // ln_1 w, b, ln_2 w, b
    std::unique_ptr<Int8Linear> qkv, out, fc, proj;
  };
  // Quantized activations, ping-ponged between a layer's input and the next layer's.
  struct QBuf {
    std::vector<int8_t> q;
    std::vector<float> scale, val;
    std::vector<int> count, col;
    Int8Rows rows(int kmax);
  };
  void reserve(long chunk, long rows);
  // l on m rows in chunks: matmul, then (proto not null) the epilogue `proto` on each chunk.
  void layer(Int8Linear& l, int m, const Int8Rows& in, const Int8Epilogue* proto);

  dnnl::stream strm_;
  Attention attention_;          // texts of different lengths in one batch
  Int8HeadAttention head_attn_;  // equal-length sequences (images, a single text)
  nn::TowerShape shape_;
  Int8Linear::Post act_;
  int kmax_ = 0;
  std::vector<Block> blocks_;
  std::vector<float> t_, qkv_, att_;
  QBuf a_, b_;
};

}  // namespace clipserve::cpu

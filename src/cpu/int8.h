// int8 transformer blocks for the CPU backend: every linear layer of a residual block as a
// oneDNN s8 x s8 -> s32 matmul (VNNI / AMX-INT8) with the dequantization, bias, GELU and
// per-channel weight scale fused as a post-op and the per-token scale, bias, residual add
// applied by our epilogue (GELU by a oneDNN eltwise); activations quantized dynamically per
// token (the scheme of src/nn/ref_int8.h, whose plain loops the tests compare this against).
// LayerNorm, the attention core and everything outside the blocks stay fp32.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <vector>

#include "cpu/attention.h"
#include "nn/clip_weights.h"
#include "nn/ref_int8.h"

namespace clipserve::cpu {

/// Per-row dynamic quantization of [rows, width], the fast twin of
/// nn::ref::quantize_activations(per_row = true), equal to it bit for bit.
void quantize_rows(const float* x, long rows, int width, int8_t* q, float* scale);

/// One int8 linear layer: y = post(acc * s_x * s_w + b), acc = q_x . q_w (exact int32).
class Int8Linear {
 public:
  enum class Post { kNone, kResidual, kGelu, kQuickGelu };

  /// w: torch Linear weights [out, in] (quantized here, per output channel); b: [out] or null.
  Int8Linear(const dnnl::engine& eng, const float* w, const float* b, int in, int out, Post post,
             int typical_m);

  /// xq: [m, in] int8, row r quantized with scale x_scale[r]; y: [m, out] float (kResidual:
  /// y += ...). Equals nn::ref::linear_int8 (+ ref::gelu) within the bound in docs/backends.md.
  void run(dnnl::stream& strm, int m, const int8_t* xq, const float* x_scale, float* y);

  int in() const { return in_; }
  int out() const { return out_; }

 private:
  dnnl::matmul::primitive_desc make_pd(int m, const dnnl::memory::desc& wmd) const;

  dnnl::engine eng_;
  int in_ = 0, out_ = 0;
  Post post_ = Post::kNone;
  std::vector<float> wscale_;
  dnnl::memory w_;           // s8, oneDNN's preferred layout
  dnnl::memory wscale_m_;    // f32 [1, out]: the post-op operand
  std::vector<float> bias_;  // [out] (zeros when the layer has none)
  std::vector<float> tmp_;   // matmul output of a residual layer
  struct Prim {
    dnnl::matmul prim;
    dnnl::memory::desc src, dst;
  };
  dnnl::eltwise_forward act_;  // GELU / QuickGELU in place (valid for those posts)
  dnnl::memory::desc act_md_;
  int act_m_ = -1;
  std::map<int, Prim> prims_;  // by m
};

/// The residual blocks of one tower in int8. Not thread-safe.
class Int8Blocks {
 public:
  Int8Blocks(const dnnl::engine& eng, const dnnl::stream& strm,
             const std::vector<nn::BlockWeights>& blocks, const nn::TowerShape& shape,
             bool quick_gelu, int typical_m);

  /// x: [m, width] fp32 residual stream, updated in place. gemm_only: only the matmuls (the
  /// bench's GEMM floor), activations left as they are.
  void run(float* x, int m, const std::vector<SeqSpan>& seqs, bool causal, bool gemm_only);

 private:
  struct Block {
    std::vector<float> ln;  // ln_1 w, b, ln_2 w, b
    std::unique_ptr<Int8Linear> qkv, out, fc, proj;
  };
  void reserve(long rows);

  dnnl::stream strm_;
  Attention attention_;
  nn::TowerShape shape_;
  std::vector<Block> blocks_;
  std::vector<float> h_, qkv_, att_, mlp_;
  std::vector<int8_t> q_;
  std::vector<float> scale_;
};

}  // namespace clipserve::cpu

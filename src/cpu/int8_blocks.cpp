// int8 residual blocks on oneDNN: quantization kernel, int8 linear layers, block loop.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "cpu/int8.h"
#include "cpu/kernels.h"

namespace clipserve::cpu {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

bool debug_enabled() {
  static const bool on = std::getenv("CLIPSERVE_DEBUG_ONEDNN") != nullptr;
  return on;
}

// Round half to even for |v| < 2^22 without SSE4.1: adding 1.5 * 2^23 leaves no fraction
// bits, so the FPU rounds (to nearest even); exact because -ffp-contract=off and no
// -ffast-math.
inline float round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

}  // namespace

void quantize_rows(const float* x, long rows, int width, int8_t* q, float* scale) {
#pragma omp parallel for schedule(static) if (rows * width > 32768)
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    int8_t* qr = q + r * width;
    float amax = 0.0f;
    int bad = 0;
#pragma omp simd reduction(max : amax) reduction(+ : bad)
    for (int i = 0; i < width; ++i) {
      const float a = std::fabs(xr[i]);
      amax = a > amax ? a : amax;
      bad += !(a <= 3.4028234663852886e38f);  // NaN or inf
    }
    if (bad != 0 || !(amax > 0.0f)) {
      std::memset(qr, 0, static_cast<size_t>(width));
      scale[r] = bad != 0 ? NAN : 0.0f;
      continue;
    }
    const float inv = 127.0f / amax;
#pragma omp simd
    for (int i = 0; i < width; ++i) {
      float v = round_even(xr[i] * inv);
      v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
      qr[i] = static_cast<int8_t>(static_cast<int32_t>(v));
    }
    scale[r] = amax / 127.0f;
  }
}

Int8Linear::Int8Linear(const dnnl::engine& eng, const float* w, const float* b, int in, int out,
                       Post post, int typical_m)
    : eng_(eng), in_(in), out_(out), post_(post) {
  const nn::ref::QuantWeights qw = nn::ref::quantize_weights(w, out, in);
  wscale_ = qw.scale;
  const dnnl::memory::desc any({in, out}, dt::s8, tag::any);
  const dnnl::memory::desc wmd = make_pd(std::max(typical_m, 1), any).weights_desc();
  // [out, in] row-major is the [in, out] matrix in tag ba.
  dnnl::memory user({{in, out}, dt::s8, tag::ba}, eng_, const_cast<int8_t*>(qw.q.data()));
  w_ = dnnl::memory(wmd, eng_);
  dnnl::stream s(eng_);
  dnnl::reorder(user, w_).execute(s, user, w_);
  s.wait();
  wscale_m_ = dnnl::memory({{1, out}, dt::f32, tag::ab}, eng_);
  std::memcpy(wscale_m_.get_data_handle(), wscale_.data(), sizeof(float) * out);
  bias_.assign(out, 0.0f);
  if (b != nullptr) std::copy(b, b + out, bias_.begin());
}

// oneDNN 2.6's brgemm int8 matmul (AMX / VNNI) takes per-column binary post-ops, but runtime
// output scales fall back to gemm:jit (4-5x slower) and per-row operands to its reference
// kernel; so the matmul applies s_w (a per-column multiply) and our epilogue the per-token
// s_x and the bias: y = (float(acc) * s_w) * s_x + b.
dnnl::matmul::primitive_desc Int8Linear::make_pd(int m, const dnnl::memory::desc& wmd) const {
  const dnnl::memory::desc src({m, in_}, dt::s8, tag::ab);
  const dnnl::memory::desc dst({m, out_}, dt::f32, tag::ab);
  dnnl::post_ops ops;
  ops.append_binary(dnnl::algorithm::binary_mul, dnnl::memory::desc({1, out_}, dt::f32, tag::ab));
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wmd, dst), attr, eng_);
}

void Int8Linear::run(dnnl::stream& strm, int m, const int8_t* xq, const float* x_scale, float* y) {
  auto it = prims_.find(m);
  if (it == prims_.end()) {
    auto pd = make_pd(m, w_.get_desc());
    if (debug_enabled()) {
      std::fprintf(stderr, "clipserve: int8 matmul m=%d k=%d n=%d post=%d: %s\n", m, in_, out_,
                   static_cast<int>(post_), pd.impl_info_str());
    }
    it = prims_.emplace(m, Prim{dnnl::matmul(pd), pd.src_desc(), pd.dst_desc()}).first;
  }
  const bool residual = post_ == Post::kResidual;
  const long n = static_cast<long>(m) * out_;
  if (residual && static_cast<long>(tmp_.size()) < n) tmp_.resize(n);
  float* t = residual ? tmp_.data() : y;
  Prim& p = it->second;
  dnnl::memory src_m(p.src, eng_, const_cast<int8_t*>(xq));
  dnnl::memory dst_m(p.dst, eng_, t);
  p.prim.execute(strm, {{DNNL_ARG_SRC, src_m},
                        {DNNL_ARG_WEIGHTS, w_},
                        {DNNL_ARG_DST, dst_m},
                        {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, wscale_m_}});
  strm.wait();
  const float* bias = bias_.data();
  const int out = out_;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int r = 0; r < m; ++r) {
    const float sx = x_scale[r];
    const float* tr = t + static_cast<long>(r) * out;
    float* yr = y + static_cast<long>(r) * out;
    if (residual) {
#pragma omp simd
      for (int o = 0; o < out; ++o) yr[o] += tr[o] * sx + bias[o];
    } else {
#pragma omp simd
      for (int o = 0; o < out; ++o) yr[o] = tr[o] * sx + bias[o];
    }
  }
  if (post_ == Post::kGelu || post_ == Post::kQuickGelu) {
    if (act_m_ != m) {
      act_md_ = dnnl::memory::desc({m, out_}, dt::f32, tag::ab);
      const bool quick = post_ == Post::kQuickGelu;
      // QuickGELU x * sigmoid(1.702 x) is oneDNN's swish with alpha 1.702.
      dnnl::eltwise_forward::desc d(
          dnnl::prop_kind::forward_inference,
          quick ? dnnl::algorithm::eltwise_swish : dnnl::algorithm::eltwise_gelu_erf, act_md_,
          quick ? 1.702f : 0.0f);
      act_ = dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(d, eng_));
      act_m_ = m;
    }
    dnnl::memory ym(act_md_, eng_, y);
    act_.execute(strm, {{DNNL_ARG_SRC, ym}, {DNNL_ARG_DST, ym}});
    strm.wait();
  }
}

Int8Blocks::Int8Blocks(const dnnl::engine& eng, const dnnl::stream& strm,
                       const std::vector<nn::BlockWeights>& blocks, const nn::TowerShape& s,
                       bool quick_gelu, int typical_m)
    : strm_(strm), attention_(eng, strm), shape_(s) {
  using P = Int8Linear::Post;
  const P act = quick_gelu ? P::kQuickGelu : P::kGelu;
  for (const nn::BlockWeights& b : blocks) {
    Block k;
    for (const float* p : {b.ln1_w, b.ln1_b, b.ln2_w, b.ln2_b})
      k.ln.insert(k.ln.end(), p, p + s.width);
    k.qkv = std::make_unique<Int8Linear>(eng, b.in_proj_w, b.in_proj_b, s.width, 3 * s.width,
                                         P::kNone, typical_m);
    k.out = std::make_unique<Int8Linear>(eng, b.out_proj_w, b.out_proj_b, s.width, s.width,
                                         P::kResidual, typical_m);
    k.fc = std::make_unique<Int8Linear>(eng, b.fc_w, b.fc_b, s.width, s.hidden, act, typical_m);
    k.proj = std::make_unique<Int8Linear>(eng, b.proj_w, b.proj_b, s.hidden, s.width, P::kResidual,
                                          typical_m);
    blocks_.push_back(std::move(k));
  }
}

void Int8Blocks::reserve(long rows) {
  auto grow = [](auto& v, long n) {
    if (static_cast<long>(v.size()) < n) v.resize(n);
  };
  grow(h_, rows * shape_.width);
  grow(qkv_, rows * 3 * shape_.width);
  grow(att_, rows * shape_.width);
  grow(mlp_, rows * shape_.hidden);
  grow(q_, rows * std::max(shape_.width, shape_.hidden));
  grow(scale_, rows);
}

void Int8Blocks::run(float* x, int m, const std::vector<SeqSpan>& seqs, bool causal,
                     bool gemm_only) {
  reserve(m);
  const Kernels& k = kernels();
  const int w = shape_.width;
  int8_t* q = q_.data();
  float* sc = scale_.data();
  for (const Block& b : blocks_) {
    if (!gemm_only) {
      k.layer_norm(x, m, w, b.ln.data(), b.ln.data() + w, h_.data(), false);
      quantize_rows(h_.data(), m, w, q, sc);
    }
    b.qkv->run(strm_, m, q, sc, qkv_.data());
    if (!gemm_only) {
      attention_.run(qkv_.data(), seqs.data(), static_cast<int>(seqs.size()), w, shape_.heads,
                     causal, att_.data(), false);
      quantize_rows(att_.data(), m, w, q, sc);
    }
    b.out->run(strm_, m, q, sc, x);
    if (!gemm_only) {
      k.layer_norm(x, m, w, b.ln.data() + 2 * w, b.ln.data() + 3 * w, h_.data(), false);
      quantize_rows(h_.data(), m, w, q, sc);
    }
    b.fc->run(strm_, m, q, sc, mlp_.data());
    if (!gemm_only) quantize_rows(mlp_.data(), m, shape_.hidden, q, sc);
    b.proj->run(strm_, m, q, sc, x);
  }
  strm_.wait();
}

}  // namespace clipserve::cpu

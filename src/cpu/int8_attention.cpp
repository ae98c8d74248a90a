// The int8 path's attention core: q, k, v in bf16 head planes written by the qkv epilogue
// (no gather pass), scores = Q K^T and out = P V as oneDNN bf16 batched matmuls (AMX-BF16),
// the fp32 softmax of kernels.h in between; the output stays in head planes for
// quantize_heads (no scatter pass).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "cpu/int8.h"
#include "cpu/kernels.h"

namespace clipserve::cpu {

namespace {
using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

dnnl::memory::desc dense(long b, long r, long c, dt t) { return {{b, r, c}, t, dims{r * c, c, 1}}; }
// A [b, r, c] buffer read as its transpose [b, c, r] (K as the right operand of Q K^T).
dnnl::memory::desc transposed(long b, long r, long c, dt t) {
  return {{b, c, r}, t, dims{r * c, 1, c}};
}
}  // namespace

uint16_t* Int8HeadAttention::prepare(int seqs, int len, int tp, int heads, int d) {
  const bool same = seqs == seqs_ && len == len_ && tp == tp_ && heads == heads_ && d == d_;
  seqs_ = seqs;
  len_ = len;
  tp_ = tp;
  heads_ = heads;
  d_ = d;
  const size_t plane = static_cast<size_t>(seqs) * heads * tp * d;
  if (!same) {
    // Padding rows (t >= len) are never written: zeros, so the padded keys and values add 0.
    if (qkv_.size() < 3 * plane) qkv_.resize(3 * plane);
    std::fill(qkv_.begin(), qkv_.begin() + static_cast<long>(3 * plane), uint16_t{0});
    const size_t mats = static_cast<size_t>(seqs) * heads * tp * tp;
    if (s_.size() < mats) s_.resize(mats);
    if (p_.size() < mats) p_.resize(mats);
    if (o_.size() < plane) o_.resize(plane);
  }
  return qkv_.data();
}

dnnl::matmul& Int8HeadAttention::primitive(bool scores, int batch, int tp, int d) {
  auto key = std::make_tuple(scores, batch, tp, d);
  auto it = prims_.find(key);
  if (it == prims_.end()) {
    const auto desc =
        scores
            ? dnnl::matmul::desc(dense(batch, tp, d, dt::bf16), transposed(batch, tp, d, dt::bf16),
                                 dense(batch, tp, tp, dt::f32))
            : dnnl::matmul::desc(dense(batch, tp, tp, dt::bf16), dense(batch, tp, d, dt::bf16),
                                 dense(batch, tp, d, dt::f32));
    it = prims_.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(desc, eng_))).first;
  }
  return it->second;
}

const float* Int8HeadAttention::run(bool causal) {
  const int batch = seqs_ * heads_, tp = tp_, d = d_;
  const long plane = static_cast<long>(batch) * tp * d;
  uint16_t* q = qkv_.data();
  dnnl::memory mq(dense(batch, tp, d, dt::bf16), eng_, q);
  dnnl::memory mk(transposed(batch, tp, d, dt::bf16), eng_, q + plane);
  dnnl::memory mv(dense(batch, tp, d, dt::bf16), eng_, q + 2 * plane);
  dnnl::memory ms(dense(batch, tp, tp, dt::f32), eng_, s_.data());
  dnnl::memory mp(dense(batch, tp, tp, dt::bf16), eng_, p_.data());
  dnnl::memory mo(dense(batch, tp, d, dt::f32), eng_, o_.data());
  primitive(true, batch, tp, d)
      .execute(strm_, {{DNNL_ARG_SRC, mq}, {DNNL_ARG_WEIGHTS, mk}, {DNNL_ARG_DST, ms}});
  strm_.wait();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const Kernels& k = kernels();
  k.attention_softmax(s_.data(), batch, tp, len_, scale, causal);
  const long per = static_cast<long>(tp) * tp;
#pragma omp parallel for schedule(static) if (batch * per > 32768)
  for (int b = 0; b < batch; ++b) k.to_bf16(s_.data() + b * per, per, p_.data() + b * per);
  primitive(false, batch, tp, d)
      .execute(strm_, {{DNNL_ARG_SRC, mp}, {DNNL_ARG_WEIGHTS, mv}, {DNNL_ARG_DST, mo}});
  strm_.wait();
  return o_.data();
}

}  // namespace clipserve::cpu

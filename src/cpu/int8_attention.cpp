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

void Int8HeadAttention::prepare(const std::vector<SeqSpan>& seqs, long rows, bool causal, int heads,
                                int d) {
  causal_ = causal;
  heads_ = heads;
  d_ = d;
  groups_.clear();
  const int n = static_cast<int>(seqs.size());
  bool equal = !causal && n > 0;
  for (int i = 0; i < n && equal; ++i)
    equal = seqs[i].length == seqs[0].length && seqs[i].offset == i * seqs[0].length;
  long base = 0;
  if (equal) {
    groups_.push_back({n, seqs[0].length, seqs[0].length, 0});
    base = static_cast<long>(n) * heads * seqs[0].length * d;
  } else {
    for (const SeqSpan& s : seqs) {
      const int tp = causal ? (s.length + 7) / 8 * 8 : s.length;
      groups_.push_back({1, s.length, tp, base});
      base += static_cast<long>(heads) * tp * d;
    }
  }
  plane_ = base;
  pos_.assign(rows, -1);
  stride_.assign(rows, 0);
  long g0 = 0;
  for (const Group& g : groups_) {
    for (int c = 0; c < g.count; ++c) {
      const SeqSpan& s = seqs[g0 + c];
      for (int t = 0; t < s.length; ++t) {
        pos_[s.offset + t] = g.base + (static_cast<long>(c) * heads * g.tp + t) * d;
        stride_[s.offset + t] = static_cast<long>(g.tp) * d;
      }
    }
    g0 += g.count;
  }
  // Padding rows (t >= len) are never written: zeros, so padded keys and values add 0.
  if (static_cast<long>(qkv_.size()) < 3 * plane_) qkv_.resize(3 * plane_);
  std::fill(qkv_.begin(), qkv_.begin() + 3 * plane_, uint16_t{0});
  long mats = 0;
  for (const Group& g : groups_) mats += static_cast<long>(g.count) * heads * g.tp * g.tp;
  if (static_cast<long>(s_.size()) < mats) s_.resize(mats);
  if (static_cast<long>(p_.size()) < mats) p_.resize(mats);
  if (static_cast<long>(o_.size()) < plane_) o_.resize(plane_);
}

void Int8HeadAttention::bind(Int8Epilogue& e) {
  e.heads = qkv_.data();
  e.head_pos = pos_.data();
  e.head_stride = stride_.data();
  e.plane = plane_;
  e.nheads = heads_;
  e.head_dim = d_;
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

const float* Int8HeadAttention::run() {
  const int d = d_;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const Kernels& k = kernels();
  long soff = 0;
  for (const Group& g : groups_) {
    const int batch = g.count * heads_, tp = g.tp;
    uint16_t* q = qkv_.data() + g.base;
    float* sm = s_.data() + soff;
    uint16_t* pm = p_.data() + soff;
    dnnl::memory mq(dense(batch, tp, d, dt::bf16), eng_, q);
    dnnl::memory mk(transposed(batch, tp, d, dt::bf16), eng_, q + plane_);
    dnnl::memory mv(dense(batch, tp, d, dt::bf16), eng_, q + 2 * plane_);
    dnnl::memory ms(dense(batch, tp, tp, dt::f32), eng_, sm);
    dnnl::memory mp(dense(batch, tp, tp, dt::bf16), eng_, pm);
    dnnl::memory mo(dense(batch, tp, d, dt::f32), eng_, o_.data() + g.base);
    primitive(true, batch, tp, d)
        .execute(strm_, {{DNNL_ARG_SRC, mq}, {DNNL_ARG_WEIGHTS, mk}, {DNNL_ARG_DST, ms}});
    strm_.wait();
    k.attention_softmax(sm, batch, tp, g.len, scale, causal_);
    const long per = static_cast<long>(tp) * tp;
#pragma omp parallel for schedule(static) if (batch * per > 32768)
    for (int b = 0; b < batch; ++b) k.to_bf16(sm + b * per, per, pm + b * per);
    primitive(false, batch, tp, d)
        .execute(strm_, {{DNNL_ARG_SRC, mp}, {DNNL_ARG_WEIGHTS, mv}, {DNNL_ARG_DST, mo}});
    strm_.wait();
    soff += static_cast<long>(batch) * per;
  }
  return o_.data();
}

}  // namespace clipserve::cpu

// Attention core on oneDNN batched matmuls (see attention.h).
#include "cpu/attention.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/check.h"

namespace clipserve::cpu {

namespace {
// Causal sequences up to this length (short texts) skip the matmuls: computing directly is
// cheaper than the calls and thread wake-ups.
constexpr int kDirectMaxLen = 16;
using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

dnnl::memory::desc dense(long b, long r, long c) { return {{b, r, c}, dt::f32, dims{r * c, c, 1}}; }
// A [b, r, c] buffer read as its transpose [b, c, r] (K as the right operand of Q K^T).
dnnl::memory::desc transposed(long b, long r, long c) {
  return {{b, c, r}, dt::f32, dims{r * c, 1, c}};
}
}  // namespace

Attention::Attention(dnnl::engine eng, dnnl::stream strm)
    : eng_(std::move(eng)), strm_(std::move(strm)) {
  const char* env = std::getenv("CLIPSERVE_ATTENTION");
  if (env != nullptr && std::strcmp(env, "matmul") == 0) mode_ = Mode::kMatmuls;
}

bool Attention::fused_supported(int head_dim) {
  static const bool isa = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bf16");
  return isa && head_dim % 16 == 0 && head_dim <= 128;
}

dnnl::matmul& Attention::primitive(bool scores, int batch, int tp, int d) {
  auto key = std::make_tuple(scores, batch, tp, d);
  auto it = prims_.find(key);
  if (it == prims_.end()) {
    const auto desc =
        scores ? dnnl::matmul::desc(dense(batch, tp, d), transposed(batch, tp, d),
                                    dense(batch, tp, tp))
               : dnnl::matmul::desc(dense(batch, tp, tp), dense(batch, tp, d), dense(batch, tp, d));
    it = prims_.emplace(key, dnnl::matmul(dnnl::matmul::primitive_desc(desc, eng_))).first;
  }
  return it->second;
}

void Attention::run(const float* qkv, const SeqSpan* seqs, int nseq, int width, int heads,
                    bool causal, void* out, bool bf16_out) {
  // Equal-length sequences (a batch of images) share one batched call. Causal sequences (texts,
  // any length) run one at a time padded to a multiple of 8 rows, which bounds the number of
  // distinct primitives; padded keys come after the real ones, so the causal mask hides them.
  if (!causal && mode_ == Mode::kAuto && fused_supported(width / heads)) {
    fused_attention_avx512(qkv, seqs, nseq, width, heads, out, bf16_out, k_, v_);
  } else if (!causal) {
    std::map<int, std::vector<int>> by_len;
    for (int s = 0; s < nseq; ++s) by_len[seqs[s].length].push_back(seqs[s].offset);
    for (const auto& [len, offsets] : by_len) {
      run_group(qkv, offsets, len, len, width, heads, false, out, bf16_out);
    }
  } else {
    for (int s = 0; s < nseq; ++s) {
      if (seqs[s].length <= kDirectMaxLen) {
        kernels().attention_direct(qkv, &seqs[s], 1, width, heads, true, out, bf16_out);
        continue;
      }
      const int tp = (seqs[s].length + 7) / 8 * 8;
      run_group(qkv, {seqs[s].offset}, seqs[s].length, tp, width, heads, true, out, bf16_out);
    }
  }
}

void Attention::run_group(const float* qkv, const std::vector<int>& offsets, int len, int tp,
                          int width, int heads, bool causal, void* out, bool bf16_out) {
  const int d = width / heads, count = static_cast<int>(offsets.size()), batch = count * heads;
  const long head_elems = static_cast<long>(tp) * d;
  const size_t n = static_cast<size_t>(batch) * head_elems;
  if (q_.size() < n) {
    q_.resize(n);
    k_.resize(n);
    v_.resize(n);
    o_.resize(n);
  }
  if (s_.size() < static_cast<size_t>(batch) * tp * tp)
    s_.resize(static_cast<size_t>(batch) * tp * tp);
  const long stride = 3L * width;
  // Gather per (sequence, head) dense [tp, d] blocks; padding rows are zeros.
#pragma omp parallel for collapse(2) schedule(static) if (n > 32768)
  for (int c = 0; c < count; ++c) {
    for (int h = 0; h < heads; ++h) {
      const long base = (static_cast<long>(c) * heads + h) * head_elems;
      for (int t = 0; t < tp; ++t) {
        float* dq = q_.data() + base + static_cast<long>(t) * d;
        float* dk = k_.data() + base + static_cast<long>(t) * d;
        float* dv = v_.data() + base + static_cast<long>(t) * d;
        if (t < len) {
          const float* src = qkv + (static_cast<long>(offsets[c]) + t) * stride + h * d;
          std::memcpy(dq, src, sizeof(float) * d);
          std::memcpy(dk, src + width, sizeof(float) * d);
          std::memcpy(dv, src + 2 * width, sizeof(float) * d);
        } else {
          std::memset(dq, 0, sizeof(float) * d);
          std::memset(dk, 0, sizeof(float) * d);
          std::memset(dv, 0, sizeof(float) * d);
        }
      }
    }
  }
  dnnl::memory mq(dense(batch, tp, d), eng_, q_.data());
  dnnl::memory mk(transposed(batch, tp, d), eng_, k_.data());
  dnnl::memory mv(dense(batch, tp, d), eng_, v_.data());
  dnnl::memory ms(dense(batch, tp, tp), eng_, s_.data());
  dnnl::memory mo(dense(batch, tp, d), eng_, o_.data());
  primitive(true, batch, tp, d)
      .execute(strm_, {{DNNL_ARG_SRC, mq}, {DNNL_ARG_WEIGHTS, mk}, {DNNL_ARG_DST, ms}});
  strm_.wait();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  kernels().attention_softmax(s_.data(), batch, tp, len, scale, causal);
  primitive(false, batch, tp, d)
      .execute(strm_, {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mv}, {DNNL_ARG_DST, mo}});
  strm_.wait();
  // Scatter heads back into rows [t, h*d .. (h+1)*d).
#pragma omp parallel for collapse(2) schedule(static) if (n > 32768)
  for (int c = 0; c < count; ++c) {
    for (int t = 0; t < len; ++t) {
      const long row = static_cast<long>(offsets[c]) + t;
      for (int h = 0; h < heads; ++h) {
        const float* src =
            o_.data() + (static_cast<long>(c) * heads + h) * head_elems + static_cast<long>(t) * d;
        if (bf16_out) {
          kernels().to_bf16(src, d, static_cast<uint16_t*>(out) + row * width + h * d);
        } else {
          std::memcpy(static_cast<float*>(out) + row * width + h * d, src, sizeof(float) * d);
        }
      }
    }
  }
}

}  // namespace clipserve::cpu

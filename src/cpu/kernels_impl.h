// Kernel bodies compiled twice (kernels.cpp: baseline ISA, kernels_avx512.cpp: AVX-512) inside
// different namespaces. Plain C++ written so the compiler vectorizes it (no reductions across
// the vector dimension except LayerNorm's sums, which use explicit lanes).
// Include only from those two files, inside their namespace, after <cmath>, <cstdint>,
// <cstdlib>, <cstring>. No std templates here: an instantiation emitted by the AVX-512 file
// could be picked by the linker for the generic one and fault on older CPUs.

inline uint16_t bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline void to_bf16_impl(const float* x, long n, uint16_t* y) {
#pragma omp simd
  for (long i = 0; i < n; ++i) y[i] = bf16_round(x[i]);
}

#include "cpu/row_math_impl.h"  // exp_neg, layer_norm_stats

inline void layer_norm_impl(const float* x, long rows, int width, const float* gamma,
                            const float* beta, void* y, bool bf16) {
  // Below ~32k elements a thread wake-up costs more than the work.
#pragma omp parallel for schedule(static) if (rows * width > 32768)
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    float mean, inv;
    layer_norm_stats(xr, width, mean, inv);
    if (bf16) {
      uint16_t* yr = static_cast<uint16_t*>(y) + r * width;
#pragma omp simd
      for (int c = 0; c < width; ++c) yr[c] = bf16_round((xr[c] - mean) * inv * gamma[c] + beta[c]);
    } else {
      float* yr = static_cast<float*>(y) + r * width;
#pragma omp simd
      for (int c = 0; c < width; ++c) yr[c] = (xr[c] - mean) * inv * gamma[c] + beta[c];
    }
  }
}

inline void attention_softmax_impl(float* s, int mats, int tp, int len, float scale, bool causal) {
  const long rows = static_cast<long>(mats) * tp;
#pragma omp parallel for schedule(static) if (rows * tp > 32768)
  for (long r = 0; r < rows; ++r) {
    const int i = static_cast<int>(r % tp);
    float* p = s + r * tp;
    const int n = i >= len ? 0 : (causal ? i + 1 : len);
    if (n > 0) {
      float mx = p[0] * scale;
#pragma omp simd reduction(max : mx)
      for (int j = 1; j < n; ++j) mx = p[j] * scale > mx ? p[j] * scale : mx;
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < n; ++j) {
        p[j] = exp_neg(p[j] * scale - mx);
        sum += p[j];
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int j = 0; j < n; ++j) p[j] *= inv;
    }
    for (int j = n; j < tp; ++j) p[j] = 0.0f;
  }
}

// Direct attention for short sequences (serial: a few microseconds of work, where thread
// wake-ups and matmul calls would cost more than the math).
inline void attention_direct_impl(const float* qkv, const SeqSpan* seqs, int nseq, int width,
                                  int heads, bool causal, void* out, bool bf16) {
  const int d = width / heads;
  const long stride = 3L * width;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  int max_len = 0;
  for (int s = 0; s < nseq; ++s) max_len = seqs[s].length > max_len ? seqs[s].length : max_len;
  {
    // Per-thread scratch: K^T [d, max_len], scores, output row, scaled query.
    float* scratch = static_cast<float*>(
        std::malloc(sizeof(float) * (static_cast<size_t>(d) * max_len + max_len + 2 * d)));
    float* kt = scratch;
    float* p = kt + static_cast<size_t>(d) * max_len;
    float* o = p + max_len;
    float* q = o + d;
    for (int s = 0; s < nseq; ++s) {
      for (int h = 0; h < heads; ++h) {
        const int len = seqs[s].length;
        const float* base = qkv + static_cast<long>(seqs[s].offset) * stride;
        // K transposed to [d, len] so the score loop runs contiguously over keys.
        for (int j = 0; j < len; ++j) {
          const float* k = base + j * stride + width + h * d;
          for (int c = 0; c < d; ++c) kt[static_cast<long>(c) * len + j] = k[c];
        }
        for (int i = 0; i < len; ++i) {
          const int n = causal ? i + 1 : len;
          const float* qi = base + i * stride + h * d;
          for (int c = 0; c < d; ++c) q[c] = qi[c] * scale;
          for (int j = 0; j < n; ++j) p[j] = 0.0f;
          for (int c = 0; c < d; ++c) {
            const float qc = q[c];
            const float* kc = kt + static_cast<long>(c) * len;
#pragma omp simd
            for (int j = 0; j < n; ++j) p[j] += qc * kc[j];
          }
          float mx = p[0];
          for (int j = 1; j < n; ++j) mx = p[j] > mx ? p[j] : mx;
#pragma omp simd
          for (int j = 0; j < n; ++j) p[j] = exp_neg(p[j] - mx);
          double sum = 0;
          for (int j = 0; j < n; ++j) sum += p[j];
          const float inv = static_cast<float>(1.0 / sum);
          for (int c = 0; c < d; ++c) o[c] = 0.0f;
          for (int j = 0; j < n; ++j) {
            const float pj = p[j] * inv;
            const float* vj = base + j * stride + 2 * width + h * d;
#pragma omp simd
            for (int c = 0; c < d; ++c) o[c] += pj * vj[c];
          }
          const long orow = (static_cast<long>(seqs[s].offset) + i) * width + h * d;
          if (bf16) {
            uint16_t* dst = static_cast<uint16_t*>(out) + orow;
            for (int c = 0; c < d; ++c) dst[c] = bf16_round(o[c]);
          } else {
            std::memcpy(static_cast<float*>(out) + orow, o, d * sizeof(float));
          }
        }
      }
    }
    std::free(scratch);
  }
}

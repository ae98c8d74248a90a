// Fused (flash-style) non-causal attention on AVX-512: per (sequence, head, block of query rows)
// the scores of one block of keys at a time stay in L1 while an online softmax rescales the
// running output, so the [heads, T, T] score matrix is never written (see attention.h).
// GCC 12 warns inside its own AVX-512 intrinsics (_mm512_undefined_ps, GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/attention.h"

namespace clipserve::cpu {

namespace {

constexpr int kBq = 32;   // query rows per task (4 groups of kMr)
constexpr int kBk = 128;  // keys per step of the online softmax (4 chunks of 32)
constexpr int kMr = 8;    // query rows per score micro-kernel
constexpr int kMaxD = 128;

// exp(x) for x <= 0 on 16 lanes: 2^n * p(r), the same degree-7 polynomial as the scalar
// exp_neg of kernels_impl.h; inputs below -87 give ~0.
inline __m512 exp_neg16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Horizontal max / sum (GCC 12's _mm512_reduce_* trip -Wmaybe-uninitialized).
inline float hmax(__m512 v) {
  alignas(64) float a[16];
  _mm512_store_ps(a, v);
  float m = a[0];
  for (int i = 1; i < 16; ++i) m = std::max(m, a[i]);
  return m;
}
inline float hsum(__m512 v) {
  alignas(64) float a[16];
  _mm512_store_ps(a, v);
  float s = 0;
  for (int i = 0; i < 16; ++i) s += a[i];
  return s;
}

// s[kMr][kBk] (chunk of 32 keys at `j0`) = q[kMr rows] . kt[:, j0 .. j0 + 32].
// q rows at stride qs, kt one key block [d][kBk].
inline void scores_8x32(const float* q, long qs, const float* kt, int d, int j0, float* s) {
  constexpr long lp = kBk;
  __m512 acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const float* k = kt + j0;
  for (int c = 0; c < d; ++c) {
    const __m512 k0 = _mm512_loadu_ps(k + c * lp), k1 = _mm512_loadu_ps(k + c * lp + 16);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512 b = _mm512_set1_ps(q[r * qs + c]);
      acc[r][0] = _mm512_fmadd_ps(b, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(b, k1, acc[r][1]);
    }
  }
  for (int r = 0; r < kMr; ++r) {
    _mm512_storeu_ps(s + r * kBk + j0, acc[r][0]);
    _mm512_storeu_ps(s + r * kBk + j0 + 16, acc[r][1]);
  }
}

// o[4 rows][c0 .. c0 + 16 NV) += p[4 rows][0 .. nk) . v[nk][same columns] (v rows at stride d).
template <int NV>
inline void pv_4rows_cols(const float* p, const float* v, int nk, int d, int c0, float* o) {
  __m512 acc[4][NV];
  for (int r = 0; r < 4; ++r)
    for (int x = 0; x < NV; ++x) acc[r][x] = _mm512_loadu_ps(o + r * kMaxD + c0 + 16 * x);
  for (int j = 0; j < nk; ++j) {
    __m512 vv[NV];
    for (int x = 0; x < NV; ++x)
      vv[x] = _mm512_loadu_ps(v + static_cast<long>(j) * d + c0 + 16 * x);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 b = _mm512_set1_ps(p[r * kBk + j]);
      for (int x = 0; x < NV; ++x) acc[r][x] = _mm512_fmadd_ps(b, vv[x], acc[r][x]);
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int x = 0; x < NV; ++x) _mm512_storeu_ps(o + r * kMaxD + c0 + 16 * x, acc[r][x]);
}

// o[4 rows][d] += p[4 rows][0 .. nk) . v[nk][d], d a multiple of 16.
inline void pv_4rows(const float* p, const float* v, int nk, int d, float* o) {
  int c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) pv_4rows_cols<4>(p, v, nk, d, c0, o);
  switch ((d - c0) / 16) {
    case 3:
      pv_4rows_cols<3>(p, v, nk, d, c0, o);
      break;
    case 2:
      pv_4rows_cols<2>(p, v, nk, d, c0, o);
      break;
    case 1:
      pv_4rows_cols<1>(p, v, nk, d, c0, o);
      break;
    default:
      break;
  }
}

}  // namespace

void fused_attention_avx512(const float* qkv, const SeqSpan* seqs, int nseq, int width, int heads,
                            void* out, bool bf16_out, std::vector<float>& kt_buf,
                            std::vector<float>& v_buf) {
  const int d = width / heads;
  const long stride = 3L * width;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  int max_len = 0;
  for (int s = 0; s < nseq; ++s) max_len = std::max(max_len, seqs[s].length);
  const int lp = (max_len + kBk - 1) / kBk * kBk;
  const long per = static_cast<long>(lp) * d;  // floats per (sequence, head)
  // Per (sequence, head): K^T by key blocks [lp / kBk][d][kBk] (one block's rows contiguous)
  // and V [lp][d], zero past the sequence's end.
  if (kt_buf.size() < static_cast<size_t>(nseq) * heads * per) {
    kt_buf.resize(static_cast<size_t>(nseq) * heads * per);
    v_buf.resize(kt_buf.size());
  }
  float* kt_all = kt_buf.data();
  float* v_all = v_buf.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int s = 0; s < nseq; ++s) {
    for (int h = 0; h < heads; ++h) {
      float* kt = kt_all + (static_cast<long>(s) * heads + h) * per;
      float* v = v_all + (static_cast<long>(s) * heads + h) * per;
      const int len = seqs[s].length;
      const float* base = qkv + static_cast<long>(seqs[s].offset) * stride + h * d;
      for (int j = 0; j < len; ++j) {
        const float* k = base + j * stride + width;
        float* ktb = kt + static_cast<long>(j / kBk) * d * kBk + j % kBk;
        for (int c = 0; c < d; ++c) ktb[static_cast<long>(c) * kBk] = k[c];
        std::memcpy(v + static_cast<long>(j) * d, k + width, sizeof(float) * d);
      }
      const int lpad = (len + kBk - 1) / kBk * kBk;
      for (int j = len; j < lpad; ++j) {
        float* ktb = kt + static_cast<long>(j / kBk) * d * kBk + j % kBk;
        for (int c = 0; c < d; ++c) ktb[static_cast<long>(c) * kBk] = 0.0f;
      }
      std::fill(v + static_cast<long>(len) * d, v + static_cast<long>(lpad) * d, 0.0f);
    }
  }
  // Tasks: (sequence, head, query block).
  std::vector<int> task_seq;
  for (int s = 0; s < nseq; ++s)
    for (int b = 0; b < (seqs[s].length + kBq - 1) / kBq; ++b) task_seq.push_back(s);
  std::vector<int> task_blk(task_seq.size());
  for (size_t t = 0, b = 0; t < task_seq.size(); ++t) {
    b = t > 0 && task_seq[t] == task_seq[t - 1] ? b + 1 : 0;
    task_blk[t] = static_cast<int>(b);
  }
  const long ntask = static_cast<long>(task_seq.size()) * heads;
#pragma omp parallel
  {
    alignas(64) float qb[kBq * kMaxD];
    alignas(64) float sb[kBq * kBk];
    alignas(64) float ob[kBq * kMaxD];
    float m[kBq], l[kBq];
#pragma omp for schedule(dynamic, 4)
    for (long t = 0; t < ntask; ++t) {
      const int s = task_seq[t / heads], h = static_cast<int>(t % heads);
      const int len = seqs[s].length, i0 = task_blk[t / heads] * kBq;
      const int rows = std::min(kBq, len - i0);
      const float* kt = kt_all + (static_cast<long>(s) * heads + h) * per;
      const float* v = v_all + (static_cast<long>(s) * heads + h) * per;
      // Query rows (zeros past the end), running max, sum and output.
      for (int r = 0; r < kBq; ++r) {
        if (r < rows) {
          std::memcpy(qb + r * kMaxD,
                      qkv + (static_cast<long>(seqs[s].offset) + i0 + r) * stride + h * d,
                      sizeof(float) * d);
        } else {
          std::fill(qb + r * kMaxD, qb + r * kMaxD + d, 0.0f);
        }
        m[r] = -std::numeric_limits<float>::infinity();
        l[r] = 0.0f;
        std::fill(ob + r * kMaxD, ob + r * kMaxD + d, 0.0f);
      }
      for (int j0 = 0; j0 < len; j0 += kBk) {
        const int nk = std::min(kBk, len - j0);
        const int nchunk = (nk + 31) / 32;
        for (int g = 0; g < kBq / kMr; ++g) {
          if (g * kMr >= rows) break;
          for (int ch = 0; ch < nchunk; ++ch)
            scores_8x32(qb + g * kMr * kMaxD, kMaxD, kt + static_cast<long>(j0) * d, d, ch * 32,
                        sb + g * kMr * kBk);
        }
        // Online softmax over this block: p = exp(s * scale - m_new), rescale what came before.
        const int nkp = nchunk * 32;
        for (int r = 0; r < rows; ++r) {
          float* p = sb + r * kBk;
          __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
          for (int j = 0; j < nkp; j += 16) {
            const __mmask16 k =
                j + 16 <= nk ? 0xffff : static_cast<__mmask16>((1u << std::max(nk - j, 0)) - 1);
            const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(p + j), _mm512_set1_ps(scale));
            _mm512_storeu_ps(p + j, x);
            mx = _mm512_mask_max_ps(mx, k, mx, x);
          }
          const float mnew = std::max(m[r], hmax(mx));
          const float alpha =
              m[r] == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m[r] - mnew);
          __m512 sum = _mm512_setzero_ps();
          const __m512 mv = _mm512_set1_ps(mnew);
          for (int j = 0; j < nkp; j += 16) {
            const __mmask16 k =
                j + 16 <= nk ? 0xffff : static_cast<__mmask16>((1u << std::max(nk - j, 0)) - 1);
            const __m512 e =
                _mm512_maskz_mov_ps(k, exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(p + j), mv)));
            _mm512_storeu_ps(p + j, e);
            sum = _mm512_add_ps(sum, e);
          }
          l[r] = l[r] * alpha + hsum(sum);
          m[r] = mnew;
          if (alpha != 1.0f) {
            float* o = ob + r * kMaxD;
            for (int c = 0; c < d; c += 16)
              _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), _mm512_set1_ps(alpha)));
          }
        }
        for (int r = 0; r < rows; r += 4)
          pv_4rows(sb + r * kBk, v + static_cast<long>(j0) * d, nk, d, ob + r * kMaxD);
      }
      for (int r = 0; r < rows; ++r) {
        float* o = ob + r * kMaxD;
        const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
        for (int c = 0; c < d; c += 16)
          _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), inv));
        const long orow = (static_cast<long>(seqs[s].offset) + i0 + r) * width + h * d;
        if (bf16_out) {
          uint16_t* dst = static_cast<uint16_t*>(out) + orow;
          for (int c = 0; c < d; c += 16) {
            const __m256bh b = _mm512_cvtneps_pbh(_mm512_loadu_ps(o + c));
            std::memcpy(dst + c, &b, 32);
          }
        } else {
          std::memcpy(static_cast<float*>(out) + orow, o, sizeof(float) * d);
        }
      }
    }
  }
}

}  // namespace clipserve::cpu

// Kernel bodies of int8_kernels.h, compiled twice (int8_kernels.cpp: baseline ISA,
// int8_kernels_avx512.cpp: AVX-512) inside different namespaces. Plain C++ the compiler
// vectorizes; no std templates (see kernels_impl.h). Include only from those two files, inside
// their namespace, after <cmath>, <cstdint>, <cstdlib>, <cstring> and cpu/int8_kernels.h.

// Round half to even for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits, so the FPU
// rounds to nearest even (exact: -ffp-contract=off, no -ffast-math).
inline float i8_round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

#include "cpu/row_math_impl.h"  // exp_neg, layer_norm_stats

// GELU with erf from Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): 0.5 x (1 + erf(x/sqrt2)).
inline float i8_gelu(float x) {
  const float z = x * 0.70710678118654752f;
  const float az = z < 0.0f ? -z : z;
  const float t = 1.0f / (1.0f + 0.3275911f * az);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float e = 1.0f - p * t * exp_neg(-az * az);
  return 0.5f * x * (1.0f + (z < 0.0f ? -e : e));
}

// QuickGELU x * sigmoid(1.702 x), the exponential always of a non-positive argument.
inline float i8_quick_gelu(float x) {
  const float z = 1.702f * x;
  const float e = exp_neg(z < 0.0f ? z : -z);
  return x * (z < 0.0f ? e / (1.0f + e) : 1.0f / (1.0f + e));
}

// LayerNorm of one row, the arithmetic of kernels_impl.h's layer_norm_impl (float output).
inline void i8_layer_norm_row(const float* xr, int width, const float* gamma, const float* beta,
                              float* yr) {
  float mean, inv;
  layer_norm_stats(xr, width, mean, inv);
#pragma omp simd
  for (int c = 0; c < width; ++c) yr[c] = (xr[c] - mean) * inv * gamma[c] + beta[c];
}

// One row of nn::ref::quantize_row_split (same operations, vectorized where they are
// independent per element or per lane); returns the scale.
inline float i8_quantize_row(const float* x, int n, int8_t* q, int kmax, float ratio, int* count,
                             int* col, float* val) {
  if (count != nullptr) *count = 0;
  float amax = 0.0f;
  int bad = 0;
#pragma omp simd reduction(max : amax) reduction(+ : bad)
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    amax = a > amax ? a : amax;
    bad += !(a <= 3.4028234663852886e38f);  // NaN or inf
  }
  if (bad != 0 || !(amax > 0.0f)) {
    std::memset(q, 0, static_cast<size_t>(n));
    return bad != 0 ? NAN : 0.0f;
  }
  float rest = amax;
  int k = 0;
  if (kmax > 0 && count != nullptr) {
    constexpr int kLanes = 16;
    float s[kLanes] = {};
    int i = 0;
    for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) s[l] += x[i + l] * x[i + l];
    }
    double sum = 0;
    for (int l = 0; l < kLanes; ++l) sum += s[l];
    for (; i < n; ++i) sum += double(x[i]) * x[i];
    const float thr = static_cast<float>(ratio * std::sqrt(sum / n));
    if (amax > thr) {
      // The reference's scan in column order, skipping (vectorized) 16-column chunks with no
      // value above the threshold: the same columns, and max() is exact in any order.
      rest = 0.0f;
      int c = 0;
      for (; c + kLanes <= n; c += kLanes) {
        float cm = 0.0f;
#pragma omp simd reduction(max : cm)
        for (int l = 0; l < kLanes; ++l) {
          const float a = std::fabs(x[c + l]);
          cm = a > cm ? a : cm;
        }
        if (!(cm > thr) || k >= kmax) {
          rest = cm > rest ? cm : rest;
          continue;
        }
        for (int l = 0; l < kLanes; ++l) {
          const float a = std::fabs(x[c + l]);
          if (a > thr && k < kmax) {
            col[k] = c + l;
            val[k] = x[c + l];
            ++k;
          } else {
            rest = a > rest ? a : rest;
          }
        }
      }
      for (; c < n; ++c) {
        const float a = std::fabs(x[c]);
        if (a > thr && k < kmax) {
          col[k] = c;
          val[k] = x[c];
          ++k;
        } else {
          rest = a > rest ? a : rest;
        }
      }
    }
    *count = k;
  }
  if (!(rest > 0.0f)) {
    std::memset(q, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const float inv = 127.0f / rest;
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    float v = i8_round_even(x[i] * inv);
    v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
    q[i] = static_cast<int8_t>(static_cast<int32_t>(v));
  }
  for (int j = 0; j < k; ++j) q[col[j]] = 0;
  return rest / 127.0f;
}

inline float i8_ratio() { return 6.0f; }  // nn::ref::kOutlierRatio (checked by the tests)

inline void i8_quantize_row_into(const float* x, long r, int n, const Int8Rows& o) {
  const long ko = r * o.kmax;
  o.scale[r] =
      i8_quantize_row(x, n, o.q + r * n, o.kmax, i8_ratio(), o.count ? o.count + r : nullptr,
                      o.col ? o.col + ko : nullptr, o.val ? o.val + ko : nullptr);
}

inline void quantize_impl(const float* x, long rows, int width, const float* gamma,
                          const float* beta, const Int8Rows& o) {
#pragma omp parallel if (rows * width > 32768)
  {
    float* tmp = gamma ? static_cast<float*>(std::malloc(sizeof(float) * width)) : nullptr;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; ++r) {
      const float* xr = x + r * width;
      if (gamma) {
        i8_layer_norm_row(xr, width, gamma, beta, tmp);
        xr = tmp;
      }
      i8_quantize_row_into(xr, r, width, o);
    }
    std::free(tmp);
  }
}

inline uint16_t i8_bf16_round(float f) {  // round to nearest even (as kernels_impl.h)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Writes row r (q | k | v, 3 * nheads * head_dim floats) into the bf16 head planes.
inline void i8_store_heads(const float* v, long r, const Int8Epilogue& e) {
  const long pos = e.head_pos[r];
  if (pos < 0) return;
  const int d = e.head_dim;
  for (int which = 0; which < 3; ++which) {
    for (int h = 0; h < e.nheads; ++h) {
      const float* src = v + (static_cast<long>(which) * e.nheads + h) * d;
      uint16_t* dst = e.heads + which * e.plane + pos + h * e.head_stride[r];
#pragma omp simd
      for (int c = 0; c < d; ++c) dst[c] = i8_bf16_round(src[c]);
    }
  }
}

inline void quantize_heads_impl(const float* o, long rows, const long* head_pos,
                                const long* head_stride, int nheads, int head_dim,
                                const Int8Rows& r) {
  const int width = nheads * head_dim;
#pragma omp parallel if (rows * width > 32768)
  {
    float* row = static_cast<float*>(std::malloc(sizeof(float) * width));
#pragma omp for schedule(static)
    for (long i = 0; i < rows; ++i) {
      if (head_pos[i] < 0) {
        std::memset(r.q + i * width, 0, static_cast<size_t>(width));
        r.scale[i] = 0.0f;
        if (r.count) r.count[i] = 0;
        continue;
      }
      for (int h = 0; h < nheads; ++h) {
        std::memcpy(row + h * head_dim, o + head_pos[i] + h * head_stride[i],
                    sizeof(float) * head_dim);
      }
      i8_quantize_row_into(row, i, width, r);
    }
    std::free(row);
  }
}

inline void epilogue_impl(const Int8Epilogue& e, long rows) {
  const int out = e.out;
  const Int8Rows& in = *e.in;
#pragma omp parallel if (rows * out > 32768)
  {
    float* row = static_cast<float*>(std::malloc(sizeof(float) * 2 * out));
    float* acc = row + out;
    const bool to_heads = e.heads != nullptr;
#pragma omp for schedule(static)
    for (long r = 0; r < rows; ++r) {
      const float* tr = e.t + r * out;
      const float sx = in.scale[r];
      const float* bias = e.bias;
      float* v = e.y && !to_heads ? e.y + r * out : row;
      const int nk = in.count ? in.count[r] : 0;
      if (nk > 0) {
        // Outlier columns in float: acc[o] = sum_k x_k * q_w[o][c_k].
        for (int o = 0; o < out; ++o) acc[o] = 0.0f;
        for (int k = 0; k < nk; ++k) {
          const float xk = in.val[r * in.kmax + k];
          const int8_t* w = e.wt + static_cast<long>(in.col[r * in.kmax + k]) * out;
#pragma omp simd
          for (int o = 0; o < out; ++o) acc[o] += xk * static_cast<float>(w[o]);
        }
      }
      const float* sw = e.wscale;
      // The three variants keep the same operation order: (t * s_x + s_w * acc) + b.
      if (e.act == 0) {
        if (e.residual) {
          if (nk > 0) {
#pragma omp simd
            for (int o = 0; o < out; ++o) v[o] += (tr[o] * sx + sw[o] * acc[o]) + bias[o];
          } else {
#pragma omp simd
            for (int o = 0; o < out; ++o) v[o] += tr[o] * sx + bias[o];
          }
        } else if (nk > 0) {
#pragma omp simd
          for (int o = 0; o < out; ++o) v[o] = (tr[o] * sx + sw[o] * acc[o]) + bias[o];
        } else {
#pragma omp simd
          for (int o = 0; o < out; ++o) v[o] = tr[o] * sx + bias[o];
        }
      } else {
        // Bias first (vectorized), then the activation in place in its own loop.
        if (nk > 0) {
#pragma omp simd
          for (int o = 0; o < out; ++o) v[o] = (tr[o] * sx + sw[o] * acc[o]) + bias[o];
        } else {
#pragma omp simd
          for (int o = 0; o < out; ++o) v[o] = tr[o] * sx + bias[o];
        }
        if (e.act == 2) {
#pragma omp simd
          for (int o = 0; o < out; ++o) v[o] = i8_quick_gelu(v[o]);
        } else {
#pragma omp simd
          for (int o = 0; o < out; ++o) v[o] = i8_gelu(v[o]);
        }
      }
      if (to_heads) i8_store_heads(v, r, e);
      if (e.next != nullptr) {
        const float* src = v;
        if (e.ln_g != nullptr) {
          i8_layer_norm_row(v, out, e.ln_g, e.ln_b, acc);
          src = acc;
        }
        i8_quantize_row_into(src, r, out, *e.next);
      }
    }
    std::free(row);
  }
}

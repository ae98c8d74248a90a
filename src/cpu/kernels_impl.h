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

// exp for x <= 0 (softmax after max subtraction): 2^n * p(r), degree-7 Taylor on
// |r| <= ln2/2 (error < 1 ulp of float); inputs below -87 give ~0.
inline float exp_neg(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f + 12582912.0f;  // round to nearest via 1.5*2^23
  const float n = t - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

inline void layer_norm_impl(const float* x, long rows, int width, const float* gamma,
                            const float* beta, void* y, bool bf16) {
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + r * width;
    constexpr int kLanes = 16;
    float s[kLanes] = {};
    int i = 0;
    for (; i + kLanes <= width; i += kLanes) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) s[l] += xr[i + l];
    }
    double sum = 0;
    for (int l = 0; l < kLanes; ++l) sum += s[l];
    for (; i < width; ++i) sum += xr[i];
    const float mean = static_cast<float>(sum / width);
    float v[kLanes] = {};
    i = 0;
    for (; i + kLanes <= width; i += kLanes) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const float d = xr[i + l] - mean;
        v[l] += d * d;
      }
    }
    double var = 0;
    for (int l = 0; l < kLanes; ++l) var += v[l];
    for (; i < width; ++i) var += double(xr[i] - mean) * (xr[i] - mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(var / width + 1e-5));
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
#pragma omp parallel for schedule(static)
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

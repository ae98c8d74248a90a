// Row math shared by the kernel bodies (kernels_impl.h, int8_kernels_impl.h): textually
// included into each of their translation units, inside that unit's namespace, so every ISA
// build gets its own copy (see kernels_impl.h for the rules).
#pragma once

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

// LayerNorm statistics of one row (eps 1e-5): sums in 16 float lanes, combined in double.
inline void layer_norm_stats(const float* xr, int width, float& mean_out, float& inv_out) {
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
  mean_out = mean;
  inv_out = static_cast<float>(1.0 / std::sqrt(var / width + 1e-5));
}

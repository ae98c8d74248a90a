// AVX2 variants of the 8-bit resampling kernels: the same int32 fixed-point sums as the scalar
// kernels (integer addition is exact in any order), 8 lanes at a time.
#include <immintrin.h>

#include <cstring>

#include "image/resample.h"

namespace clipserve::image {

namespace {

inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

// Two taps at once: lanes 0-3 hold pixel t's channels, lanes 4-7 pixel t+1's.
template <int C>
void horizontal_c34(const uint8_t* in, size_t in_stride, int rows, uint8_t* out, size_t out_stride,
                    int n_out, const int* xmin, const int* count, const int32_t* k, int ksize) {
  const __m128i expand3 = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  for (int r = 0; r < rows; ++r) {
    const uint8_t* s = in + r * in_stride;
    uint8_t* d = out + r * out_stride;
    for (int j = 0; j < n_out; ++j) {
      const int32_t* kj = k + static_cast<size_t>(j) * ksize;
      const uint8_t* p = s + xmin[j] * C;
      __m256i acc = _mm256_setzero_si256();
      for (int t = 0; t < count[j]; t += 2) {
        __m128i px = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + t * C));
        if constexpr (C == 3) px = _mm_shuffle_epi8(px, expand3);
        const __m256i v = _mm256_cvtepu8_epi32(px);
        const __m256i kv = _mm256_setr_m128i(_mm_set1_epi32(kj[t]), _mm_set1_epi32(kj[t + 1]));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, kv));
      }
      __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
      sum = _mm_srai_epi32(_mm_add_epi32(sum, half), kPrecisionBits);
      sum = _mm_packus_epi16(_mm_packs_epi32(sum, sum), sum);
      const uint32_t v = static_cast<uint32_t>(_mm_cvtsi128_si32(sum));
      std::memcpy(d + j * C, &v, 4);  // C == 3 writes one byte the next pixel overwrites
    }
  }
}

void horizontal_avx2(const uint8_t* in, size_t in_stride, int rows, int C, uint8_t* out,
                     size_t out_stride, int n_out, const int* xmin, const int* count,
                     const int32_t* k, int ksize) {
  if (C == 4) {
    return horizontal_c34<4>(in, in_stride, rows, out, out_stride, n_out, xmin, count, k, ksize);
  }
  if (C == 3) {
    return horizontal_c34<3>(in, in_stride, rows, out, out_stride, n_out, xmin, count, k, ksize);
  }
  kernels_scalar().horizontal(in, in_stride, rows, C, out, out_stride, n_out, xmin, count, k,
                              ksize);
}

inline __m256i load8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

void vertical_avx2(const uint8_t* in, size_t in_stride, int taps, const int32_t* k, uint8_t* out,
                   int n) {
  const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int x = 0;
  for (; x + 32 <= n; x += 32) {
    __m256i a0 = half, a1 = half, a2 = half, a3 = half;
    for (int t = 0; t < taps; ++t) {
      const uint8_t* row = in + t * in_stride + x;
      const __m256i kv = _mm256_set1_epi32(k[t]);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load8(row), kv));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load8(row + 8), kv));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(load8(row + 16), kv));
      a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(load8(row + 24), kv));
    }
    a0 = _mm256_srai_epi32(a0, kPrecisionBits);
    a1 = _mm256_srai_epi32(a1, kPrecisionBits);
    a2 = _mm256_srai_epi32(a2, kPrecisionBits);
    a3 = _mm256_srai_epi32(a3, kPrecisionBits);
    const __m256i packed =
        _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + x),
                        _mm256_permutevar8x32_epi32(packed, order));
  }
  for (; x < n; ++x) {
    int32_t ss = 1 << (kPrecisionBits - 1);
    for (int t = 0; t < taps; ++t) ss += in[t * in_stride + x] * k[t];
    out[x] = clip8(ss);
  }
}

const Kernels kAvx2{"avx2", horizontal_avx2, vertical_avx2};

}  // namespace

const Kernels* kernels_avx2() { return __builtin_cpu_supports("avx2") ? &kAvx2 : nullptr; }

}  // namespace clipserve::image

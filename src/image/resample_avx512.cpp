// AVX-512 variants of the 8-bit resampling kernels: four taps (horizontal) or 16 pixels
// (vertical) per instruction, the same exact int32 sums as the scalar kernels.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* values.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "image/resample.h"

namespace clipserve::image {

namespace {

inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

template <int C>
void horizontal_c34(const uint8_t* in, size_t in_stride, int rows, uint8_t* out, size_t out_stride,
                    int n_out, const int* xmin, const int* count, const int32_t* k, int ksize) {
  const __m128i expand3 = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  // Coefficients spread to one lane per channel, once for all rows: 4 taps per vector.
  const int groups = ksize / 4;
  struct alignas(64) Lanes {
    int32_t v[16];
  };
  thread_local std::vector<Lanes> kexp_store;
  kexp_store.resize(static_cast<size_t>(n_out) * groups);
  auto* kexp = reinterpret_cast<__m512i*>(kexp_store.data());
  for (int j = 0; j < n_out; ++j) {
    for (int g = 0; g < groups; ++g) {
      kexp[static_cast<size_t>(j) * groups + g] = _mm512_permutexvar_epi32(
          spread, _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(
                      k + static_cast<size_t>(j) * ksize + 4 * g))));
    }
  }
  auto finish = [&](__m512i acc, uint8_t* dst) {
    const __m256i s256 =
        _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(s256), _mm256_extracti128_si256(s256, 1));
    sum = _mm_srai_epi32(_mm_add_epi32(sum, half), kPrecisionBits);
    sum = _mm_packus_epi16(_mm_packs_epi32(sum, sum), sum);
    const uint32_t v = static_cast<uint32_t>(_mm_cvtsi128_si32(sum));
    std::memcpy(dst, &v, C);
  };
  auto pixels = [&](const uint8_t* p) {
    __m128i px = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (C == 3) px = _mm_shuffle_epi8(px, expand3);
    return _mm512_cvtepu8_epi32(px);
  };
  int r = 0;
  for (; r + 2 <= rows; r += 2) {  // two rows share the coefficient loads
    const uint8_t* s0 = in + r * in_stride;
    const uint8_t* s1 = s0 + in_stride;
    uint8_t* d0 = out + r * out_stride;
    uint8_t* d1 = d0 + out_stride;
    for (int j = 0; j < n_out; ++j) {
      const __m512i* kj = &kexp[static_cast<size_t>(j) * groups];
      const int off = xmin[j] * C;
      __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
      for (int t = 0, g = 0; t < count[j]; t += 4, ++g) {
        a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(pixels(s0 + off + t * C), kj[g]));
        a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(pixels(s1 + off + t * C), kj[g]));
      }
      finish(a0, d0 + j * C);
      finish(a1, d1 + j * C);
    }
  }
  for (; r < rows; ++r) {
    const uint8_t* s0 = in + r * in_stride;
    uint8_t* d0 = out + r * out_stride;
    for (int j = 0; j < n_out; ++j) {
      const __m512i* kj = &kexp[static_cast<size_t>(j) * groups];
      __m512i a0 = _mm512_setzero_si512();
      for (int t = 0, g = 0; t < count[j]; t += 4, ++g) {
        a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(pixels(s0 + xmin[j] * C + t * C), kj[g]));
      }
      finish(a0, d0 + j * C);
    }
  }
}

void horizontal_avx512(const uint8_t* in, size_t in_stride, int rows, int C, uint8_t* out,
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

inline __m512i load16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline void store16(uint8_t* p, __m512i acc) {
  const __m512i v =
      _mm512_max_epi32(_mm512_srai_epi32(acc, kPrecisionBits), _mm512_setzero_si512());
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtusepi32_epi8(v));
}

void vertical_avx512(const uint8_t* in, size_t in_stride, int taps, const int32_t* k, uint8_t* out,
                     int n) {
  const __m512i half = _mm512_set1_epi32(1 << (kPrecisionBits - 1));
  int x = 0;
  for (; x + 64 <= n; x += 64) {
    __m512i a0 = half, a1 = half, a2 = half, a3 = half;
    for (int t = 0; t < taps; ++t) {
      const uint8_t* row = in + t * in_stride + x;
      const __m512i kv = _mm512_set1_epi32(k[t]);
      a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(load16(row), kv));
      a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(load16(row + 16), kv));
      a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(load16(row + 32), kv));
      a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(load16(row + 48), kv));
    }
    store16(out + x, a0);
    store16(out + x + 16, a1);
    store16(out + x + 32, a2);
    store16(out + x + 48, a3);
  }
  for (; x + 16 <= n; x += 16) {
    __m512i a0 = half;
    for (int t = 0; t < taps; ++t) {
      a0 = _mm512_add_epi32(
          a0, _mm512_mullo_epi32(load16(in + t * in_stride + x), _mm512_set1_epi32(k[t])));
    }
    store16(out + x, a0);
  }
  for (; x < n; ++x) {
    int32_t ss = 1 << (kPrecisionBits - 1);
    for (int t = 0; t < taps; ++t) ss += in[t * in_stride + x] * k[t];
    out[x] = clip8(ss);
  }
}

const Kernels kAvx512{"avx512", horizontal_avx512, vertical_avx512};

}  // namespace

const Kernels* kernels_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? &kAvx512
                                                                                 : nullptr;
}

}  // namespace clipserve::image

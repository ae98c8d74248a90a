// Float, fp16 and int8 dot-product kernels with run-time ISA dispatch (the build targets
// baseline x86-64, so AVX-512 / AVX2 code is compiled per function with target attributes).
#include "index/dot_simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#define CLIPSERVE_DOT_X86 1
#include <immintrin.h>
#endif

namespace clipserve::index {

namespace {

float dot_scalar(const float* a, const float* b, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

#ifdef CLIPSERVE_DOT_X86
__attribute__((target("avx512f"))) float dot_avx512(const float* a, const float* b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  }
  if (i < n) {  // masked tail: no read past the end
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  // (A plain store: GCC 12 warns falsely inside _mm512_reduce_add_ps.)
  alignas(64) float t[16];
  _mm512_store_ps(t, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  float r = 0;
  for (float x : t) r += x;
  return r;
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}
#endif

using DotFn = float (*)(const float*, const float*, size_t);

struct Kernel {
  DotFn dot = dot_scalar;
  const char* isa = "scalar";
  Kernel() {
#ifdef CLIPSERVE_DOT_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
      dot = dot_avx512;
      isa = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      dot = dot_avx2;
      isa = "avx2";
    }
#endif
  }
};

const Kernel& kernel() {
  static const Kernel k;
  return k;
}

template <DotFn F>
float distance(const void* a, const void* b, const void* param) {
  return 1.0f - F(static_cast<const float*>(a), static_cast<const float*>(b),
                  *static_cast<const size_t*>(param));
}

}  // namespace

float dot_fast(const float* a, const float* b, size_t n) { return kernel().dot(a, b, n); }

DistanceFn ip_distance() {
#ifdef CLIPSERVE_DOT_X86
  if (kernel().dot == dot_avx512) return distance<dot_avx512>;
  if (kernel().dot == dot_avx2) return distance<dot_avx2>;
#endif
  return distance<dot_scalar>;
}

const char* dot_fast_isa() { return kernel().isa; }

// ---- compressed codes ----------------------------------------------------------------------

namespace {

float int8_scale(const void* code) {
  float s;
  std::memcpy(&s, code, sizeof(s));
  return s;
}
const int8_t* int8_values(const void* code) {
  return static_cast<const int8_t*>(code) + sizeof(float);
}

float fp16_scalar(const void* a, const void* b, const void* param) {
  const size_t n = *static_cast<const size_t*>(param);
  const auto* x = static_cast<const _Float16*>(a);
  const auto* y = static_cast<const _Float16*>(b);
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<float>(x[i]) * static_cast<float>(y[i]);
  return 1.0f - s;
}

float int8_scalar(const void* a, const void* b, const void* param) {
  const size_t n = *static_cast<const size_t*>(param);
  const int8_t* x = int8_values(a);
  const int8_t* y = int8_values(b);
  int32_t s = 0;
  for (size_t i = 0; i < n; ++i) s += int32_t{x[i]} * y[i];
  return 1.0f - int8_scale(a) * int8_scale(b) * static_cast<float>(s);
}

#ifdef CLIPSERVE_DOT_X86
// 16 halves -> floats (the zero-masked form: GCC 12 warns falsely on _mm512_cvtph_ps).
__attribute__((target("avx512f"))) inline __m512 load_ph16(const uint16_t* p) {
  return _mm512_maskz_cvtph_ps(static_cast<__mmask16>(0xffff),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

__attribute__((target("avx512f"))) float fp16_avx512(const void* a, const void* b,
                                                     const void* param) {
  const size_t n = *static_cast<const size_t*>(param);
  const auto* x = static_cast<const uint16_t*>(a);
  const auto* y = static_cast<const uint16_t*>(b);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(load_ph16(x + i), load_ph16(y + i), s0);
    s1 = _mm512_fmadd_ps(load_ph16(x + i + 16), load_ph16(y + i + 16), s1);
  }
  alignas(64) float t[16];
  _mm512_store_ps(t, _mm512_add_ps(s0, s1));
  float r = 0;
  for (float v : t) r += v;
  const auto* xh = static_cast<const _Float16*>(a);
  const auto* yh = static_cast<const _Float16*>(b);
  for (; i < n; ++i) r += static_cast<float>(xh[i]) * static_cast<float>(yh[i]);
  return 1.0f - r;
}

__attribute__((target("avx2,fma,f16c"))) float fp16_avx2(const void* a, const void* b,
                                                         const void* param) {
  const size_t n = *static_cast<const size_t*>(param);
  const auto* x = static_cast<const uint16_t*>(a);
  const auto* y = static_cast<const uint16_t*>(b);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))),
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i))),
                         s0);
    s1 = _mm256_fmadd_ps(
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8))),
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i + 8))), s1);
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(s0, s1));
  float r = 0;
  for (float v : t) r += v;
  const auto* xh = static_cast<const _Float16*>(a);
  const auto* yh = static_cast<const _Float16*>(b);
  for (; i < n; ++i) r += static_cast<float>(xh[i]) * static_cast<float>(yh[i]);
  return 1.0f - r;
}

__attribute__((target("avx512f,avx512bw"))) float int8_avx512(const void* a, const void* b,
                                                              const void* param) {
  const size_t n = *static_cast<const size_t*>(param);
  const int8_t* x = int8_values(a);
  const int8_t* y = int8_values(b);
  __m512i acc = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {  // 32 int8 -> 32 int16, pairwise products summed to int32
    const __m512i xa =
        _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    const __m512i yb =
        _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + i)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(xa, yb));
  }
  alignas(64) int32_t t[16];
  _mm512_store_si512(t, acc);
  int32_t s = 0;
  for (int32_t v : t) s += v;
  for (; i < n; ++i) s += int32_t{x[i]} * y[i];
  return 1.0f - int8_scale(a) * int8_scale(b) * static_cast<float>(s);
}

__attribute__((target("avx2"))) float int8_avx2(const void* a, const void* b, const void* param) {
  const size_t n = *static_cast<const size_t*>(param);
  const int8_t* x = int8_values(a);
  const int8_t* y = int8_values(b);
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i xa =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m256i yb =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xa, yb));
  }
  alignas(32) int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), acc);
  int32_t s = 0;
  for (int32_t v : t) s += v;
  for (; i < n; ++i) s += int32_t{x[i]} * y[i];
  return 1.0f - int8_scale(a) * int8_scale(b) * static_cast<float>(s);
}
#endif

}  // namespace

size_t fp16_code_bytes(size_t dim) { return dim * sizeof(_Float16); }
size_t int8_code_bytes(size_t dim) { return sizeof(float) + dim; }

void encode_fp16(const float* x, size_t dim, void* code) {
  auto* h = static_cast<_Float16*>(code);
  for (size_t i = 0; i < dim; ++i) h[i] = static_cast<_Float16>(x[i]);
}

void encode_int8(const float* x, size_t dim, void* code) {
  float m = 0;
  for (size_t i = 0; i < dim; ++i) m = std::max(m, std::abs(x[i]));
  const float s = m > 0 ? m / 127.0f : 1.0f;
  std::memcpy(code, &s, sizeof(s));
  auto* q = static_cast<int8_t*>(code) + sizeof(float);
  for (size_t i = 0; i < dim; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::lround(x[i] / s), -127L, 127L));
  }
}

DistanceFn fp16_distance() {
#ifdef CLIPSERVE_DOT_X86
  if (__builtin_cpu_supports("avx512f")) return fp16_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return fp16_avx2;
#endif
  return fp16_scalar;
}

DistanceFn int8_distance() {
#ifdef CLIPSERVE_DOT_X86
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return int8_avx512;
  if (__builtin_cpu_supports("avx2")) return int8_avx2;
#endif
  return int8_scalar;
}

double fp16_dot_reference(const void* a, const void* b, size_t dim) {
  const auto* x = static_cast<const _Float16*>(a);
  const auto* y = static_cast<const _Float16*>(b);
  double s = 0;
  for (size_t i = 0; i < dim; ++i) s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  return s;
}

double int8_dot_reference(const void* a, const void* b, size_t dim) {
  const int8_t* x = int8_values(a);
  const int8_t* y = int8_values(b);
  int64_t s = 0;
  for (size_t i = 0; i < dim; ++i) s += int64_t{x[i]} * y[i];
  return static_cast<double>(int8_scale(a)) * int8_scale(b) * static_cast<double>(s);
}

}  // namespace clipserve::index

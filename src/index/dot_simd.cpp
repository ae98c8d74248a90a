// Float dot-product kernels with run-time ISA dispatch (the build targets baseline x86-64,
// so AVX-512 / AVX2 code is compiled per function with target attributes).
#include "index/dot_simd.h"

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

}  // namespace clipserve::index

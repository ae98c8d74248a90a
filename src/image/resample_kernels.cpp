// Scalar 8-bit resampling kernels (Pillow's fixed-point arithmetic) and the runtime choice
// among the scalar, AVX2 and AVX-512 variants.
#include <cstdlib>
#include <cstring>

#include "image/resample.h"

namespace clipserve::image {

namespace {

inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

void horizontal_scalar(const uint8_t* in, size_t in_stride, int rows, int C, uint8_t* out,
                       size_t out_stride, int n_out, const int* xmin, const int* count,
                       const int32_t* k, int ksize) {
  for (int r = 0; r < rows; ++r) {
    const uint8_t* s = in + r * in_stride;
    uint8_t* d = out + r * out_stride;
    for (int j = 0; j < n_out; ++j) {
      const int32_t* kj = k + static_cast<size_t>(j) * ksize;
      const uint8_t* p = s + xmin[j] * C;
      for (int c = 0; c < C; ++c) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int t = 0; t < count[j]; ++t) ss += p[t * C + c] * kj[t];
        d[j * C + c] = clip8(ss);
      }
    }
  }
}

void vertical_scalar(const uint8_t* in, size_t in_stride, int taps, const int32_t* k, uint8_t* out,
                     int n) {
  for (int x = 0; x < n; ++x) {
    int32_t ss = 1 << (kPrecisionBits - 1);
    for (int t = 0; t < taps; ++t) ss += in[t * in_stride + x] * k[t];
    out[x] = clip8(ss);
  }
}

const Kernels kScalar{"scalar", horizontal_scalar, vertical_scalar};

}  // namespace

const Kernels& kernels_scalar() { return kScalar; }

const Kernels& kernels_best() {
  static const Kernels* best = [] {
    const char* env = std::getenv("CLIPSERVE_SIMD");
    const std::string want = env != nullptr ? env : "";
    if (want == "scalar") return &kScalar;
    if (want != "avx2") {
      if (const Kernels* k = kernels_avx512()) return k;
    }
    if (const Kernels* k = kernels_avx2()) return k;
    return &kScalar;
  }();
  return *best;
}

}  // namespace clipserve::image

// Pillow 9.4's Image.resize(size, BICUBIC) semantics per mode, torchvision 0.14's Resize/
// CenterCrop geometry, convert("RGB") and ToTensor+Normalize. The *_reference functions are the
// plain versions; resize_crop computes only the pixels a crop keeps (with SIMD kernels) and is
// tested bit-exact against resize_reference + crop.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "image/decode.h"
#include "image/pixels.h"

namespace clipserve::image {

/// Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2).
inline constexpr int kPrecisionBits = 22;

/// Per-axis bicubic coefficients as Pillow's precompute_coeffs computes them: output i reads
/// inputs xmin[i] .. xmin[i] + count[i] - 1 with weights w (double) / k (fixed point).
struct AxisCoeffs {
  int in_size = 0;
  int out_size = 0;
  int ksize = 0;
  std::vector<int> xmin, count;
  std::vector<double> w;   ///< out_size * ksize, normalised
  std::vector<int32_t> k;  ///< the same in Pillow's 8bpc fixed point
};
AxisCoeffs bicubic_coeffs(int in_size, int out_size);

/// Pillow's ImagingScaleAffine source index for each output position (NEAREST for P and 1).
std::vector<int> nearest_table(int in_size, int out_size);

/// Output geometry of Resize(S) + CenterCrop(S).
struct Geometry {
  int resized_w = 0, resized_h = 0;  ///< Resize output (== input when no resampling happens)
  int left = 0, top = 0;             ///< CenterCrop offsets in the resized image
  bool resize = false;               ///< false when torchvision returns the image untouched
};
Geometry plan_geometry(int width, int height, int size);

/// Full Pillow resize in the image's mode (RGBA/LA premultiplied; P/1 nearest; I in double).
Image resize_reference(const Image& in, int out_w, int out_h);
/// Image.crop for boxes inside the image.
Image crop_reference(const Image& in, int left, int top, int w, int h);

/// The part of the full-size source that resize_crop reads (decoders may decode only that).
Region source_region(int width, int height, Mode mode, const Geometry& g, int size);

/// resize_reference(in, g.resized_w, g.resized_h) then crop(g.left, g.top, size, size), but
/// computing only the kept pixels. `in` may be a region of the full image (origin_x/y).
Image resize_crop(const Image& in, const Geometry& g, int size);

/// convert("RGB") as Pillow does for each mode; writes h*w*3 bytes.
void convert_rgb(const Image& in, uint8_t* rgb);

/// ToTensor + Normalize: out[c][y][x] = ((float)u / 255 - mean[c]) / std[c] in float32.
void normalize_reference(const uint8_t* rgb, int w, int h, const std::array<float, 3>& mean,
                         const std::array<float, 3>& std, float* out);
/// The same through a per-channel 256-entry table (identical values by construction).
void normalize_lut(const uint8_t* rgb, int w, int h, const std::array<float, 3>& mean,
                   const std::array<float, 3>& std, float* out);

// ---- 8-bit kernels (runtime-dispatched SIMD variants; see resample_kernels.cpp) ----

/// Horizontal pass over `rows` rows: out[r][j*C + c] = clip8((2^21 + sum_t k[j*ksize + t] *
/// in[r][(xmin[j] + t)*C + c]) >> 22) for j < n_out; xmin relative to `in`.
using HorizontalFn = void (*)(const uint8_t* in, size_t in_stride, int rows, int C, uint8_t* out,
                              size_t out_stride, int n_out, const int* xmin, const int* count,
                              const int32_t* k, int ksize);
/// Vertical pass for one output row: out[x] = clip8(sum_t k[t] * rows[t][x]) for x < n, where
/// rows[t] = in + t * in_stride.
using VerticalFn = void (*)(const uint8_t* in, size_t in_stride, int taps, const int32_t* k,
                            uint8_t* out, int n);

struct Kernels {
  const char* name;
  HorizontalFn horizontal;
  VerticalFn vertical;
};
const Kernels& kernels_scalar();
const Kernels* kernels_avx2();    ///< nullptr when the CPU lacks AVX2
const Kernels* kernels_avx512();  ///< nullptr when the CPU lacks AVX-512BW
/// The best variant for this CPU (CLIPSERVE_SIMD=scalar|avx2|avx512 overrides).
const Kernels& kernels_best();

/// resize_crop with explicit kernels (tests compare variants).
Image resize_crop_with(const Image& in, const Geometry& g, int size, const Kernels& kern);

}  // namespace clipserve::image

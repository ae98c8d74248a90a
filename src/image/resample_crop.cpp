// Crop-aware resize: computes only the pixels CenterCrop keeps (horizontal pass over the
// needed rows and columns only, vertical pass over the kept rows only), through the
// runtime-selected SIMD kernels. Bit-exact with resize_reference + crop_reference because every
// output pixel is the same integer expression over the same inputs.
#include <cstring>

#include "core/check.h"
#include "image/resample.h"

namespace clipserve::image {

namespace {

inline uint8_t muldiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

struct Span {
  int lo, hi;  // [lo, hi) in full-image coordinates
};

// Source span read by outputs [first, first + n) of an axis.
Span axis_span(const AxisCoeffs& c, int first, int n) {
  const int last = first + n - 1;
  return {c.xmin[first], c.xmin[last] + c.count[last]};
}

// Coefficients of outputs [first, first + n), padded to a multiple of 4 taps with zeros (the
// SIMD kernels read taps in groups).
struct CropCoeffs {
  int ksize = 0;
  std::vector<int> xmin, count;
  std::vector<int32_t> k;
};

CropCoeffs crop_coeffs(const AxisCoeffs& c, int first, int n, int origin) {
  CropCoeffs o;
  o.ksize = (c.ksize + 3) & ~3;
  o.xmin.resize(n);
  o.count.resize(n);
  o.k.assign(static_cast<size_t>(n) * o.ksize, 0);
  for (int j = 0; j < n; ++j) {
    o.xmin[j] = c.xmin[first + j] - origin;
    o.count[j] = c.count[first + j];
    std::memcpy(&o.k[static_cast<size_t>(j) * o.ksize],
                &c.k[static_cast<size_t>(first + j) * c.ksize],
                sizeof(int32_t) * c.count[first + j]);
  }
  return o;
}

Image crop_region(const Image& in, int x0, int y0, int w, int h) {
  // x0/y0 in full-image coordinates.
  return crop_reference(in, x0 - in.origin_x, y0 - in.origin_y, w, h);
}

}  // namespace

Region source_region(int width, int height, Mode mode, const Geometry& g, int size) {
  if (!g.resize) return {g.left, g.top, g.left + size, g.top + size};
  if (mode == Mode::kP || mode == Mode::k1) {
    const std::vector<int> tx = nearest_table(width, g.resized_w);
    const std::vector<int> ty = nearest_table(height, g.resized_h);
    Region r{width, height, 0, 0};
    for (int x = g.left; x < g.left + size; ++x) {
      if (tx[x] >= 0) r.x0 = std::min(r.x0, tx[x]), r.x1 = std::max(r.x1, tx[x] + 1);
    }
    for (int y = g.top; y < g.top + size; ++y) {
      if (ty[y] >= 0) r.y0 = std::min(r.y0, ty[y]), r.y1 = std::max(r.y1, ty[y] + 1);
    }
    return r;
  }
  Region r{g.left, g.top, g.left + size, g.top + size};
  if (g.resized_w != width) {
    const Span s = axis_span(bicubic_coeffs(width, g.resized_w), g.left, size);
    r.x0 = s.lo, r.x1 = s.hi;
  }
  if (g.resized_h != height) {
    const Span s = axis_span(bicubic_coeffs(height, g.resized_h), g.top, size);
    r.y0 = s.lo, r.y1 = s.hi;
  }
  return r;
}

Image resize_crop_with(const Image& in, const Geometry& g, int size, const Kernels& kern) {
  const int W = in.full_width, H = in.full_height;
  const Region need = source_region(W, H, in.mode, g, size);
  CS_ASSERT(need.x0 >= in.origin_x && need.y0 >= in.origin_y && need.x1 <= in.origin_x + in.width &&
                need.y1 <= in.origin_y + in.height,
            "decoded region does not cover the needed pixels");
  if (!g.resize) return crop_region(in, g.left, g.top, size, size);

  Image out;
  out.allocate(in.mode, size, size, in.mode == Mode::kP || in.mode == Mode::k1);
  out.palette = in.palette;
  if (in.mode == Mode::kP || in.mode == Mode::k1) {
    const std::vector<int> tx = nearest_table(W, g.resized_w);
    const std::vector<int> ty = nearest_table(H, g.resized_h);
    for (int y = 0; y < size; ++y) {
      const int sy = ty[g.top + y];
      if (sy < 0) continue;
      const uint8_t* src = in.row(sy - in.origin_y);
      uint8_t* dst = out.row(y);
      for (int x = 0; x < size; ++x) {
        const int sx = tx[g.left + x];
        if (sx >= 0) dst[x] = src[sx - in.origin_x];
      }
    }
    return out;
  }
  if (in.mode == Mode::kI) {
    // Rare (16-bit grey PNG): the plain path on the needed region is fast enough.
    Image full = in;
    if (in.origin_x != 0 || in.origin_y != 0 || in.width != W || in.height != H) {
      CS_ASSERT(false, "mode I needs the full image");
    }
    Image r = resize_reference(full, g.resized_w, g.resized_h);
    return crop_reference(r, g.left, g.top, size, size);
  }

  const int C = channels(in.mode);
  const bool alpha = in.mode == Mode::kRGBA || in.mode == Mode::kLA;
  const bool need_h = g.resized_w != W, need_v = g.resized_h != H;
  const int rows = need.y1 - need.y0;

  // Source rows/columns the passes read, as a pointer + stride (premultiplied copy for alpha).
  const uint8_t* src = in.row(need.y0 - in.origin_y) + (need.x0 - in.origin_x) * C;
  size_t src_stride = static_cast<size_t>(in.stride());
  thread_local PixelBuffer premul;
  if (alpha) {
    const int cols = need.x1 - need.x0;
    premul.clear();
    premul.resize(static_cast<size_t>(rows) * cols * C + kPixelPadding);
    for (int y = 0; y < rows; ++y) {
      const uint8_t* s = src + y * src_stride;
      uint8_t* d = &premul[static_cast<size_t>(y) * cols * C];
      for (int x = 0; x < cols; ++x) {
        const int a = s[x * C + C - 1];
        for (int c = 0; c < C - 1; ++c) d[x * C + c] = muldiv255(s[x * C + c], a);
        d[x * C + C - 1] = static_cast<uint8_t>(a);
      }
    }
    src = premul.data();
    src_stride = static_cast<size_t>(cols) * C;
  }

  // Pass 1 (horizontal): `rows` rows x `size` columns.
  thread_local PixelBuffer tmp_buf;
  const uint8_t* mid = src;
  size_t mid_stride = src_stride;
  if (need_h) {
    const CropCoeffs cx = crop_coeffs(bicubic_coeffs(W, g.resized_w), g.left, size, need.x0);
    mid_stride = static_cast<size_t>(size) * C;
    tmp_buf.clear();
    tmp_buf.resize(static_cast<size_t>(rows) * mid_stride + kPixelPadding);
    kern.horizontal(src, src_stride, rows, C, tmp_buf.data(), mid_stride, size, cx.xmin.data(),
                    cx.count.data(), cx.k.data(), cx.ksize);
    mid = tmp_buf.data();
  }
  // Pass 2 (vertical) over the kept rows only.
  const int n = size * C;
  if (need_v) {
    const CropCoeffs cy = crop_coeffs(bicubic_coeffs(H, g.resized_h), g.top, size, need.y0);
    for (int y = 0; y < size; ++y) {
      kern.vertical(mid + cy.xmin[y] * mid_stride, mid_stride, cy.count[y],
                    &cy.k[static_cast<size_t>(y) * cy.ksize], out.row(y), n);
    }
  } else {
    for (int y = 0; y < size; ++y) std::memcpy(out.row(y), mid + y * mid_stride, n);
  }
  // Buffers grown for one huge image are not kept per thread (pixels.h: kMaxKeptScratch).
  if (premul.capacity() > kMaxKeptScratch) PixelBuffer().swap(premul);
  if (tmp_buf.capacity() > kMaxKeptScratch) PixelBuffer().swap(tmp_buf);
  if (alpha) {
    uint8_t* p = out.bytes.data();
    for (int i = 0; i < size * size; ++i, p += C) {
      const int a = p[C - 1];
      if (a == 0 || a == 255) continue;
      for (int c = 0; c < C - 1; ++c) p[c] = static_cast<uint8_t>(std::min(255, 255 * p[c] / a));
    }
  }
  return out;
}

Image resize_crop(const Image& in, const Geometry& g, int size) {
  return resize_crop_with(in, g, size, kernels_best());
}

}  // namespace clipserve::image

// Reference (plain) implementation of Pillow 9.4's resize per mode, torchvision's geometry,
// convert("RGB") and ToTensor/Normalize. Written from Pillow's documented behaviour
// (libImaging/Resample.c, Geometry.c, Convert.c); every fast path is tested against this.
#include "image/resample.h"

#include <cmath>
#include <cstring>

#include "core/check.h"

namespace clipserve::image {

namespace {

// Pillow's bicubic kernel with a = -0.5, evaluated in this order in double.
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

inline uint8_t muldiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

}  // namespace

AxisCoeffs bicubic_coeffs(int in_size, int out_size) {
  AxisCoeffs c;
  c.in_size = in_size;
  c.out_size = out_size;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.count.resize(out_size);
  c.w.assign(static_cast<size_t>(out_size) * c.ksize, 0.0);
  c.k.assign(c.w.size(), 0);
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &c.w[static_cast<size_t>(xx) * c.ksize];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    c.xmin[xx] = xmin;
    c.count[xx] = xmax;
  }
  constexpr double one = 1 << kPrecisionBits;
  for (size_t i = 0; i < c.w.size(); ++i) {
    c.k[i] = c.w[i] < 0 ? static_cast<int32_t>(-0.5 + c.w[i] * one)
                        : static_cast<int32_t>(0.5 + c.w[i] * one);
  }
  return c;
}

std::vector<int> nearest_table(int in_size, int out_size) {
  std::vector<int> t(out_size);
  const double scale = static_cast<double>(in_size) / out_size;
  double pos = 0.0 + scale * 0.5;
  for (int x = 0; x < out_size; ++x) {
    const int v = pos < 0.0 ? -1 : static_cast<int>(pos);
    t[x] = v >= 0 && v < in_size ? v : -1;  // -1: outside, Pillow leaves the pixel 0
    pos += scale;
  }
  return t;
}

Geometry plan_geometry(int width, int height, int size) {
  Geometry g;
  const int shorter = std::min(width, height), longer = std::max(width, height);
  // torchvision: new_long = int(size * long / short), a Python float division truncated.
  const int new_long =
      static_cast<int>(static_cast<double>(int64_t(size) * longer) / static_cast<double>(shorter));
  g.resized_w = width <= height ? size : new_long;
  g.resized_h = width <= height ? new_long : size;
  g.resize = !(g.resized_w == width && g.resized_h == height);
  if (!g.resize) {
    g.resized_w = width;
    g.resized_h = height;
  }
  // int(round((d) / 2.0)) with Python's round: halves go to the even neighbour.
  auto center = [](int d) {
    const int half = d / 2;
    return (d % 2 == 0) ? half : (half % 2 == 0 ? half : half + 1);
  };
  g.left = center(g.resized_w - size);
  g.top = center(g.resized_h - size);
  return g;
}

namespace {

// Pillow's RGBA -> RGBa / LA -> La conversion (premultiply colour by alpha).
Image premultiply(const Image& in) {
  Image out = in;
  const int C = channels(in.mode);
  const size_t n = static_cast<size_t>(in.width) * in.height;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* p = &out.bytes[i * C];
    const int a = p[C - 1];
    for (int c = 0; c < C - 1; ++c) p[c] = muldiv255(p[c], a);
  }
  return out;
}

// RGBa -> RGBA / La -> LA: alpha 0 and 255 keep the values, else min(255, 255 * c / a).
void unpremultiply(Image& img) {
  const int C = channels(img.mode);
  const size_t n = static_cast<size_t>(img.width) * img.height;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* p = &img.bytes[i * C];
    const int a = p[C - 1];
    if (a == 0 || a == 255) continue;
    for (int c = 0; c < C - 1; ++c) p[c] = static_cast<uint8_t>(std::min(255, 255 * p[c] / a));
  }
}

Image resample_8bpc_reference(const Image& in, int out_w, int out_h) {
  const int C = channels(in.mode);
  Image cur = in;
  if (out_w != in.width) {
    const AxisCoeffs cx = bicubic_coeffs(in.width, out_w);
    Image tmp;
    tmp.allocate(in.mode, out_w, cur.height);
    for (int y = 0; y < cur.height; ++y) {
      const uint8_t* src = cur.row(y);
      uint8_t* dst = tmp.row(y);
      for (int xx = 0; xx < out_w; ++xx) {
        const int32_t* k = &cx.k[static_cast<size_t>(xx) * cx.ksize];
        for (int c = 0; c < C; ++c) {
          int32_t ss = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < cx.count[xx]; ++x) ss += src[(x + cx.xmin[xx]) * C + c] * k[x];
          dst[xx * C + c] = clip8(ss);
        }
      }
    }
    cur = std::move(tmp);
  }
  if (out_h != in.height) {
    const AxisCoeffs cy = bicubic_coeffs(in.height, out_h);
    Image tmp;
    tmp.allocate(in.mode, cur.width, out_h);
    const int n = cur.width * C;
    for (int yy = 0; yy < out_h; ++yy) {
      const int32_t* k = &cy.k[static_cast<size_t>(yy) * cy.ksize];
      uint8_t* dst = tmp.row(yy);
      for (int x = 0; x < n; ++x) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int y = 0; y < cy.count[yy]; ++y) ss += cur.row(y + cy.xmin[yy])[x] * k[y];
        dst[x] = clip8(ss);
      }
    }
    cur = std::move(tmp);
  }
  return cur;
}

// Pillow's 32-bit (mode I) path: double weights, double sums, rounded half away from zero
// after each pass, no clipping.
Image resample_i32_reference(const Image& in, int out_w, int out_h) {
  auto round_up = [](double f) { return static_cast<int32_t>(f >= 0.0 ? f + 0.5 : f - 0.5); };
  Image cur = in;
  if (out_w != in.width) {
    const AxisCoeffs cx = bicubic_coeffs(in.width, out_w);
    Image tmp;
    tmp.allocate(Mode::kI, out_w, cur.height);
    for (int y = 0; y < cur.height; ++y) {
      for (int xx = 0; xx < out_w; ++xx) {
        const double* k = &cx.w[static_cast<size_t>(xx) * cx.ksize];
        double ss = 0.0;
        for (int x = 0; x < cx.count[xx]; ++x) {
          ss += cur.ints[static_cast<size_t>(y) * cur.width + x + cx.xmin[xx]] * k[x];
        }
        tmp.ints[static_cast<size_t>(y) * out_w + xx] = round_up(ss);
      }
    }
    cur = std::move(tmp);
  }
  if (out_h != in.height) {
    const AxisCoeffs cy = bicubic_coeffs(in.height, out_h);
    Image tmp;
    tmp.allocate(Mode::kI, cur.width, out_h);
    for (int yy = 0; yy < out_h; ++yy) {
      const double* k = &cy.w[static_cast<size_t>(yy) * cy.ksize];
      for (int x = 0; x < cur.width; ++x) {
        double ss = 0.0;
        for (int y = 0; y < cy.count[yy]; ++y) {
          ss += cur.ints[static_cast<size_t>(y + cy.xmin[yy]) * cur.width + x] * k[y];
        }
        tmp.ints[static_cast<size_t>(yy) * cur.width + x] = round_up(ss);
      }
    }
    cur = std::move(tmp);
  }
  return cur;
}

Image resample_nearest_reference(const Image& in, int out_w, int out_h) {
  const std::vector<int> tx = nearest_table(in.width, out_w);
  const std::vector<int> ty = nearest_table(in.height, out_h);
  Image out;
  out.allocate(in.mode, out_w, out_h);
  out.palette = in.palette;
  for (int y = 0; y < out_h; ++y) {
    if (ty[y] < 0) continue;
    for (int x = 0; x < out_w; ++x) {
      if (tx[x] >= 0) out.row(y)[x] = in.row(ty[y])[tx[x]];
    }
  }
  return out;
}

}  // namespace

Image resize_reference(const Image& in, int out_w, int out_h) {
  CS_ASSERT(in.origin_x == 0 && in.origin_y == 0 && in.width == in.full_width);
  if (out_w == in.width && out_h == in.height) return in;
  switch (in.mode) {
    case Mode::k1:
    case Mode::kP:
      return resample_nearest_reference(in, out_w, out_h);
    case Mode::kI:
      return resample_i32_reference(in, out_w, out_h);
    case Mode::kRGBA:
    case Mode::kLA: {
      Image out = resample_8bpc_reference(premultiply(in), out_w, out_h);
      unpremultiply(out);
      return out;
    }
    case Mode::kL:
    case Mode::kRGB:
    case Mode::kCMYK:
      return resample_8bpc_reference(in, out_w, out_h);
  }
  CS_ASSERT(false, "unknown mode");
}

Image crop_reference(const Image& in, int left, int top, int w, int h) {
  CS_ASSERT(left >= 0 && top >= 0 && left + w <= in.width && top + h <= in.height);
  Image out;
  out.allocate(in.mode, w, h);
  out.palette = in.palette;
  for (int y = 0; y < h; ++y) {
    if (in.mode == Mode::kI) {
      std::memcpy(&out.ints[static_cast<size_t>(y) * w],
                  &in.ints[static_cast<size_t>(y + top) * in.width + left], w * sizeof(int32_t));
    } else {
      const int C = channels(in.mode);
      std::memcpy(out.row(y), in.row(y + top) + left * C, static_cast<size_t>(w) * C);
    }
  }
  return out;
}

void convert_rgb(const Image& in, uint8_t* rgb) {
  const size_t n = static_cast<size_t>(in.width) * in.height;
  const uint8_t* p = in.bytes.data();
  switch (in.mode) {
    case Mode::k1:
    case Mode::kL:
      for (size_t i = 0; i < n; ++i) {
        const uint8_t v = in.mode == Mode::k1 ? (p[i] ? 255 : 0) : p[i];
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
      }
      return;
    case Mode::kP:
      for (size_t i = 0; i < n; ++i) std::memcpy(rgb + 3 * i, &in.palette[3 * p[i]], 3);
      return;
    case Mode::kLA:
      for (size_t i = 0; i < n; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = p[2 * i];
      return;
    case Mode::kRGB:
      std::memcpy(rgb, p, n * 3);
      return;
    case Mode::kRGBA:
      for (size_t i = 0; i < n; ++i) std::memcpy(rgb + 3 * i, p + 4 * i, 3);
      return;
    case Mode::kCMYK:
      // Pillow's cmyk2rgb: nk = 255 - K; R = clip(nk - MULDIV255(C, nk)), ...
      for (size_t i = 0; i < n; ++i) {
        const uint8_t* s = p + 4 * i;
        const int nk = 255 - s[3];
        for (int c = 0; c < 3; ++c) {
          const int v = nk - muldiv255(s[c], nk);
          rgb[3 * i + c] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
        }
      }
      return;
    case Mode::kI:
      for (size_t i = 0; i < n; ++i) {
        const int32_t v = in.ints[i];
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = static_cast<uint8_t>(v < 0     ? 0
                                                                            : v > 255 ? 255
                                                                                      : v);
      }
      return;
  }
}

void normalize_reference(const uint8_t* rgb, int w, int h, const std::array<float, 3>& mean,
                         const std::array<float, 3>& std, float* out) {
  const size_t plane = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) {
      const float x = static_cast<float>(rgb[3 * i + c]) / 255.0f;
      out[c * plane + i] = (x - mean[c]) / std[c];
    }
  }
}

void normalize_lut(const uint8_t* rgb, int w, int h, const std::array<float, 3>& mean,
                   const std::array<float, 3>& std, float* out) {
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int u = 0; u < 256; ++u) lut[c][u] = (static_cast<float>(u) / 255.0f - mean[c]) / std[c];
  }
  const size_t plane = static_cast<size_t>(w) * h;
  float* r = out;
  float* g = out + plane;
  float* b = out + 2 * plane;
  for (size_t i = 0; i < plane; ++i) {
    r[i] = lut[0][rgb[3 * i]];
    g[i] = lut[1][rgb[3 * i + 1]];
    b[i] = lut[2][rgb[3 * i + 2]];
  }
}

}  // namespace clipserve::image

// Format sniffing, the decompression-bomb guard, EXIF orientation, and the decoder dispatch.
#include "image/decode.h"

#include <cstring>

#include "core/check.h"

namespace clipserve::image {

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::k1:
      return "1";
    case Mode::kL:
      return "L";
    case Mode::kP:
      return "P";
    case Mode::kLA:
      return "LA";
    case Mode::kRGB:
      return "RGB";
    case Mode::kRGBA:
      return "RGBA";
    case Mode::kCMYK:
      return "CMYK";
    case Mode::kI:
      return "I";
  }
  return "?";
}

const char* format_name(Format f) {
  switch (f) {
    case Format::kJpeg:
      return "JPEG";
    case Format::kPng:
      return "PNG";
    case Format::kWebp:
      return "WEBP";
    case Format::kGif:
      return "GIF";
    case Format::kBmp:
      return "BMP";
    case Format::kTiff:
      return "TIFF";
    case Format::kUnknown:
      break;
  }
  return "unknown";
}

void Image::allocate(Mode m, int w, int h, bool zero) {
  mode = m;
  width = w;
  height = h;
  full_width = w;
  full_height = h;
  origin_x = origin_y = 0;
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
  if (m == Mode::kI) {
    ints.assign(n, 0);
    bytes.clear();
  } else {
    // Padding lets SIMD kernels load whole 4/8-byte groups at the last pixel.
    const size_t used = n * channels(m);
    bytes.clear();
    bytes.resize(used + kPixelPadding);
    std::memset(bytes.data() + (zero ? 0 : used), 0, zero ? bytes.size() : kPixelPadding);
    ints.clear();
  }
}

std::array<uint8_t, 768> grey_palette() {
  std::array<uint8_t, 768> p{};
  for (int i = 0; i < 256; ++i) p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = static_cast<uint8_t>(i);
  return p;
}

Format sniff_format(std::span<const uint8_t> b) {
  auto starts = [&](const char* magic, size_t n, size_t at = 0) {
    return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
  };
  if (starts("\xFF\xD8\xFF", 3)) return Format::kJpeg;
  if (starts("\x89PNG\r\n\x1a\n", 8)) return Format::kPng;
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return Format::kWebp;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return Format::kGif;
  if (starts("BM", 2)) return Format::kBmp;
  if (starts("II*\0", 4) || starts("MM\0*", 4) || starts("II+\0", 4) || starts("MM\0+", 4)) {
    return Format::kTiff;
  }
  return Format::kUnknown;
}

void check_dimensions(int64_t width, int64_t height, const DecodeOptions& opt,
                      const std::string& name) {
  CS_CHECK_ARG(width > 0 && height > 0, name, ": invalid image size ", width, "x", height);
  const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  if (pixels > opt.max_pixels) {
    CS_THROW(kTooLarge, name, ": image size ", width, "x", height, " (", pixels,
             " pixels) exceeds the limit of ", opt.max_pixels,
             " pixels (decompression bomb guard)");
  }
  // Beyond this the int arithmetic of the resamplers could overflow whatever the limit says.
  if (width > (1 << 28) || height > (1 << 28) || pixels > (1ull << 34)) {
    CS_THROW(kTooLarge, name, ": image size ", width, "x", height, " is too large");
  }
}

int exif_orientation_from_tiff(std::span<const uint8_t> t) {
  if (t.size() < 8) return 1;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') {
    le = true;
  } else if (t[0] == 'M' && t[1] == 'M') {
    le = false;
  } else {
    return 1;
  }
  auto u16 = [&](size_t o) -> uint32_t {
    return le ? t[o] | (t[o + 1] << 8) : (t[o] << 8) | t[o + 1];
  };
  auto u32 = [&](size_t o) -> uint32_t {
    return le ? t[o] | (t[o + 1] << 8) | (t[o + 2] << 16) | (uint32_t(t[o + 3]) << 24)
              : (uint32_t(t[o]) << 24) | (t[o + 1] << 16) | (t[o + 2] << 8) | t[o + 3];
  };
  const size_t ifd = u32(4);
  if (ifd + 2 > t.size()) return 1;
  const uint32_t count = u16(ifd);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + 12 * static_cast<size_t>(i);
    if (e + 12 > t.size()) return 1;
    if (u16(e) == 0x0112) {
      const uint32_t v = u16(e + 8);
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
    }
  }
  return 1;
}

Image apply_orientation(const Image& in, int orientation) {
  if (orientation <= 1 || orientation > 8) return in;
  const bool swap = orientation >= 5;
  const int W = in.width, H = in.height;
  Image out;
  out.allocate(in.mode, swap ? H : W, swap ? W : H);
  out.palette = in.palette;
  const int C = in.mode == Mode::kI ? 1 : channels(in.mode);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2:
          sx = W - 1 - x;
          break;  // FLIP_LEFT_RIGHT
        case 3:
          sx = W - 1 - x;
          sy = H - 1 - y;
          break;  // ROTATE_180
        case 4:
          sy = H - 1 - y;
          break;  // FLIP_TOP_BOTTOM
        case 5:
          sx = y;
          sy = x;
          break;  // TRANSPOSE
        case 6:
          sx = y;
          sy = H - 1 - x;
          break;  // ROTATE_270 (clockwise)
        case 7:
          sx = W - 1 - y;
          sy = H - 1 - x;
          break;  // TRANSVERSE
        case 8:
          sx = W - 1 - y;
          sy = x;
          break;  // ROTATE_90 (counter-clockwise)
      }
      const size_t si = static_cast<size_t>(sy) * W + sx;
      const size_t di = static_cast<size_t>(y) * out.width + x;
      if (in.mode == Mode::kI) {
        out.ints[di] = in.ints[si];
      } else {
        std::memcpy(&out.bytes[di * C], &in.bytes[si * C], C);
      }
    }
  }
  return out;
}

Image decode_image(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                   const std::string& name) {
  CS_CHECK_ARG(!bytes.empty(), name, ": empty file");
  switch (sniff_format(bytes)) {
    case Format::kJpeg:
      return decode_jpeg(bytes, opt, name);
    case Format::kPng:
      return opt.png_reference ? decode_png_libpng(bytes, opt, name) : decode_png(bytes, opt, name);
    case Format::kWebp:
      return decode_webp(bytes, opt, name);
    case Format::kGif:
      return decode_gif(bytes, opt, name);
    case Format::kBmp:
      return decode_bmp(bytes, opt, name);
    case Format::kTiff:
      return decode_tiff(bytes, opt, name);
    case Format::kUnknown:
      break;
  }
  CS_THROW(kInvalidArgument, name,
           ": unrecognised image format (expected JPEG, PNG, WebP, GIF, BMP or TIFF)");
}

}  // namespace clipserve::image

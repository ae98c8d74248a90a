// BMP decoding as Pillow 9.4's BmpImagePlugin does it: 1/4/8-bit palettes (P, or 1/L when the
// palette is black/white or a grey ramp), 16-bit 555/565, 24-bit BGR, 32-bit BGRX (RGB) or
// with an alpha mask (RGBA), bottom-up or top-down rows, RLE8/RLE4.
#include <cstring>

#include "core/check.h"
#include "image/decode.h"

namespace clipserve::image {

namespace {

uint32_t le32(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24);
}
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Decodes RLE8/RLE4 into index rows (row 0 = first row in file order).
void decode_rle(std::span<const uint8_t> d, bool rle4, int w, int h, std::vector<uint8_t>& out,
                const std::string& name) {
  size_t p = 0;
  int x = 0, y = 0;
  auto put = [&](uint8_t v) {
    if (x < w && y < h) out[static_cast<size_t>(y) * w + x] = v;
    ++x;
  };
  while (y < h) {
    CS_CHECK_ARG(p + 2 <= d.size(), name, ": truncated BMP RLE data");
    const uint8_t n = d[p], v = d[p + 1];
    p += 2;
    if (n > 0) {
      for (int i = 0; i < n; ++i) put(rle4 ? ((i & 1) ? (v & 15) : (v >> 4)) : v);
    } else if (v == 0) {
      x = 0;
      ++y;
    } else if (v == 1) {
      break;
    } else if (v == 2) {
      CS_CHECK_ARG(p + 2 <= d.size(), name, ": truncated BMP RLE data");
      x += d[p];
      y += d[p + 1];
      p += 2;
    } else {
      const size_t bytes = rle4 ? (v + 1) / 2 : v;
      CS_CHECK_ARG(p + bytes <= d.size(), name, ": truncated BMP RLE data");
      for (int i = 0; i < v; ++i)
        put(rle4 ? ((i & 1) ? (d[p + i / 2] & 15) : (d[p + i / 2] >> 4)) : d[p + i]);
      p += (bytes + 1) & ~size_t(1);
    }
  }
}

}  // namespace

Image decode_bmp(std::span<const uint8_t> b, const DecodeOptions& opt, const std::string& name) {
  CS_CHECK_ARG(b.size() >= 18, name, ": truncated BMP header");
  const uint32_t offset = le32(&b[10]);
  const uint32_t hsize = le32(&b[14]);
  CS_CHECK_ARG(hsize == 12 || hsize == 40 || hsize == 52 || hsize == 56 || hsize == 64 ||
                   hsize == 108 || hsize == 124,
               name, ": unsupported BMP header size ", hsize);
  CS_CHECK_ARG(b.size() >= 14 + hsize, name, ": truncated BMP header");
  const uint8_t* hd = &b[18];
  int64_t width, height;
  int bits;
  uint32_t compression = 0, colors = 0;
  bool top_down = false;
  int pal_entry = 4;
  uint32_t masks[4] = {0, 0, 0, 0};
  size_t after_header = 14 + hsize;
  if (hsize == 12) {
    width = le16(hd);
    height = le16(hd + 2);
    bits = le16(hd + 6);
    pal_entry = 3;
  } else {
    width = static_cast<int32_t>(le32(hd));
    const int32_t hraw = static_cast<int32_t>(le32(hd + 4));
    top_down = hraw < 0;
    height = top_down ? -int64_t(hraw) : hraw;
    bits = le16(hd + 10);
    compression = le32(hd + 12);
    colors = le32(hd + 28);
    if (compression == 3) {
      if (hsize >= 56) {
        for (int i = 0; i < 4; ++i) masks[i] = le32(hd + 36 + 4 * i);
      } else {
        CS_CHECK_ARG(b.size() >= after_header + 12, name, ": truncated BMP bitfields");
        for (int i = 0; i < 3; ++i) masks[i] = le32(&b[after_header + 4 * i]);
        after_header += 12;
      }
    }
  }
  check_dimensions(width, height, opt, name);
  const int W = static_cast<int>(width), H = static_cast<int>(height);
  Image img;
  img.palette = grey_palette();
  // Pixel layout per Pillow's BIT2MODE / MASK_MODES.
  enum { kIdx, kBGR15, kBGR16, kBGR, kBGRX, kXBGR, kABGR, kRGBA32, kBGRA } layout;
  Mode mode;
  if (bits == 1 || bits == 4 || bits == 8) {
    layout = kIdx;
    mode = Mode::kP;
  } else if (bits == 16) {
    layout = kBGR15;
    mode = Mode::kRGB;
  } else if (bits == 24) {
    layout = kBGR;
    mode = Mode::kRGB;
  } else if (bits == 32) {
    layout = kBGRX;
    mode = Mode::kRGB;
  } else {
    CS_THROW(kUnsupported, name, ": unsupported BMP pixel depth ", bits);
  }
  if (compression == 3) {
    const uint32_t r = masks[0], g = masks[1], bl = masks[2], a = masks[3];
    if (bits == 32 && r == 0xFF0000 && g == 0xFF00 && bl == 0xFF && a == 0) {
      layout = kBGRX;
    } else if (bits == 32 && r == 0xFF000000 && g == 0xFF0000 && bl == 0xFF00 && a == 0) {
      layout = kXBGR;
    } else if (bits == 32 && r == 0xFF000000 && g == 0xFF0000 && bl == 0xFF00 && a == 0xFF) {
      layout = kABGR, mode = Mode::kRGBA;
    } else if (bits == 32 && r == 0xFF && g == 0xFF00 && bl == 0xFF0000 && a == 0xFF000000) {
      layout = kRGBA32, mode = Mode::kRGBA;
    } else if (bits == 32 && ((r == 0xFF0000 && g == 0xFF00 && bl == 0xFF && a == 0xFF000000) ||
                              (r == 0 && g == 0 && bl == 0 && a == 0))) {
      layout = kBGRA, mode = Mode::kRGBA;
    } else if (bits == 24 && r == 0xFF0000 && g == 0xFF00 && bl == 0xFF) {
      layout = kBGR;
    } else if (bits == 16 && r == 0xF800 && g == 0x7E0 && bl == 0x1F) {
      layout = kBGR16;
    } else if (bits == 16 && r == 0x7C00 && g == 0x3E0 && bl == 0x1F) {
      layout = kBGR15;
    } else {
      CS_THROW(kUnsupported, name, ": unsupported BMP bitfields layout");
    }
  } else if (compression == 1 || compression == 2) {
    CS_CHECK_ARG((compression == 1 && bits == 8) || (compression == 2 && bits == 4), name,
                 ": BMP RLE compression with ", bits, " bits per pixel");
  } else if (compression != 0) {
    CS_THROW(kUnsupported, name, ": unsupported BMP compression ", compression);
  }
  if (layout == kIdx) {
    if (colors == 0) colors = 1u << bits;
    CS_CHECK_ARG(colors <= 65536, name, ": unsupported BMP palette size ", colors);
    const size_t pal_bytes = static_cast<size_t>(colors) * pal_entry;
    CS_CHECK_ARG(b.size() >= after_header + pal_bytes, name, ": truncated BMP palette");
    const uint8_t* pal = &b[after_header];
    bool grey = true;
    for (uint32_t i = 0; i < colors; ++i) {
      const uint32_t v = colors == 2 ? (i ? 255 : 0) : i;
      const uint8_t* e = pal + i * pal_entry;
      if (e[0] != v || e[1] != v || e[2] != v) grey = false;
      if (i < 256) {
        img.palette[3 * i] = e[2];
        img.palette[3 * i + 1] = e[1];
        img.palette[3 * i + 2] = e[0];
      }
    }
    if (grey && colors == 2 && bits == 1) {
      mode = Mode::k1;
    } else if (grey && bits == 8) {
      mode = Mode::kL;
    }
  }
  img.allocate(mode, W, H);
  CS_CHECK_ARG(offset < b.size(), name, ": truncated BMP (pixel data offset past the end)");
  std::span<const uint8_t> data = b.subspan(offset);
  const int C = channels(mode);
  if (compression == 1 || compression == 2) {
    std::vector<uint8_t> idx(static_cast<size_t>(W) * H, 0);
    decode_rle(data, compression == 2, W, H, idx, name);
    for (int r = 0; r < H; ++r) {
      std::memcpy(img.row(top_down ? r : H - 1 - r), &idx[static_cast<size_t>(r) * W], W);
    }
    return img;
  }
  const size_t stride = ((static_cast<size_t>(W) * bits + 31) >> 3) & ~size_t(3);
  CS_CHECK_ARG(data.size() >= stride * (H - 1) + (static_cast<size_t>(W) * bits + 7) / 8, name,
               ": truncated BMP pixel data");
  for (int r = 0; r < H; ++r) {
    const uint8_t* s = data.data() + stride * r;
    uint8_t* o = img.row(top_down ? r : H - 1 - r);
    for (int x = 0; x < W; ++x) {
      switch (layout) {
        case kIdx: {
          const int per = 8 / bits;
          const int v = (s[x / per] >> (8 - bits * (x % per + 1))) & ((1 << bits) - 1);
          o[x] = static_cast<uint8_t>(mode == Mode::k1 ? (v ? 255 : 0) : v);
          break;
        }
        case kBGR15:
        case kBGR16: {
          // Pillow's BGR;15 / BGR;16 unpackers: scale each field to 0..255 with *255/max.
          const int v = le16(s + 2 * x);
          if (layout == kBGR15) {
            o[3 * x] = static_cast<uint8_t>(((v >> 10) & 31) * 255 / 31);
            o[3 * x + 1] = static_cast<uint8_t>(((v >> 5) & 31) * 255 / 31);
          } else {
            o[3 * x] = static_cast<uint8_t>(((v >> 11) & 31) * 255 / 31);
            o[3 * x + 1] = static_cast<uint8_t>(((v >> 5) & 63) * 255 / 63);
          }
          o[3 * x + 2] = static_cast<uint8_t>((v & 31) * 255 / 31);
          break;
        }
        case kBGR:
          o[3 * x] = s[3 * x + 2], o[3 * x + 1] = s[3 * x + 1], o[3 * x + 2] = s[3 * x];
          break;
        case kBGRX:
          o[3 * x] = s[4 * x + 2], o[3 * x + 1] = s[4 * x + 1], o[3 * x + 2] = s[4 * x];
          break;
        case kXBGR:
          o[3 * x] = s[4 * x + 3], o[3 * x + 1] = s[4 * x + 2], o[3 * x + 2] = s[4 * x + 1];
          break;
        case kABGR:
          o[4 * x] = s[4 * x + 3], o[4 * x + 1] = s[4 * x + 2], o[4 * x + 2] = s[4 * x + 1];
          o[4 * x + 3] = s[4 * x];
          break;
        case kRGBA32:
          std::memcpy(o + 4 * x, s + 4 * x, 4);
          break;
        case kBGRA:
          o[4 * x] = s[4 * x + 2], o[4 * x + 1] = s[4 * x + 1], o[4 * x + 2] = s[4 * x];
          o[4 * x + 3] = s[4 * x + 3];
          break;
      }
    }
    (void)C;
  }
  return img;
}

}  // namespace clipserve::image

// TIFF decoding (first page) with libtiff, to the modes Pillow 9.4's TiffImagePlugin gives:
// 1, L, LA, RGB (also RGBX), RGBA (associated alpha is un-premultiplied like Pillow's
// "RGBa" unpacker), P, CMYK. 16-bit and float pages are rejected (Pillow cannot resize
// I;16 either); other layouts (tiles, YCbCr, planar) go through TIFFReadRGBAImage.
#include <tiffio.h>

#include <cstring>

#include "core/check.h"
#include "image/decode.h"

namespace clipserve::image {

namespace {

struct MemFile {
  const uint8_t* data;
  toff_t size;
  toff_t pos;
};

tmsize_t mem_read(thandle_t h, void* buf, tmsize_t n) {
  auto* f = static_cast<MemFile*>(h);
  if (n <= 0 || f->pos >= f->size) return 0;
  const toff_t k = std::min<toff_t>(static_cast<toff_t>(n), f->size - f->pos);
  std::memcpy(buf, f->data + f->pos, k);
  f->pos += k;
  return static_cast<tmsize_t>(k);
}
tmsize_t mem_write(thandle_t, void*, tmsize_t) { return 0; }
toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  auto* f = static_cast<MemFile*>(h);
  toff_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? f->pos : f->size;
  f->pos = base + off;
  return f->pos;
}
int mem_close(thandle_t) { return 0; }
toff_t mem_size(thandle_t h) { return static_cast<MemFile*>(h)->size; }
int mem_map(thandle_t, void**, toff_t*) { return 0; }
void mem_unmap(thandle_t, void*, toff_t) {}

thread_local std::string* g_tiff_error = nullptr;
void on_tiff_error(const char*, const char* fmt, va_list ap) {
  if (g_tiff_error == nullptr) return;
  char buf[256];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  *g_tiff_error = buf;
}
void on_tiff_warning(const char*, const char*, va_list) {}

struct TiffHandle {
  TIFF* t = nullptr;
  ~TiffHandle() {
    if (t != nullptr) TIFFClose(t);
  }
};

}  // namespace

Image decode_tiff(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                  const std::string& name) {
  std::string error;
  g_tiff_error = &error;
  TIFFSetErrorHandler(on_tiff_error);
  TIFFSetWarningHandler(on_tiff_warning);
  MemFile mf{bytes.data(), bytes.size(), 0};
  TiffHandle h;
  h.t = TIFFClientOpen(name.c_str(), "rm", &mf, mem_read, mem_write, mem_seek, mem_close, mem_size,
                       mem_map, mem_unmap);
  CS_CHECK_ARG(h.t != nullptr, name, ": corrupt TIFF: ", error);
  TIFF* t = h.t;
  uint32_t w = 0, hgt = 0;
  uint16_t bits = 1, spp = 1, photometric = 1, planar = 1, sampleformat = 1;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &hgt);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &sampleformat);
  CS_CHECK_ARG(TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric), name,
               ": TIFF without photometric interpretation");
  uint16_t extra_count = 0;
  uint16_t* extra = nullptr;
  TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &extra_count, &extra);
  const int extra0 = extra_count > 0 && extra != nullptr ? extra[0] : -1;
  check_dimensions(w, hgt, opt, name);
  if (bits != 1 && bits != 8) {
    CS_THROW(kUnsupported, name, ": ", bits, "-bit TIFF (Pillow opens it as a mode it cannot ",
             "resize)");
  }
  CS_CHECK_ARG(sampleformat == 1, name, ": unsupported TIFF sample format ", sampleformat);
  const int W = static_cast<int>(w), H = static_cast<int>(hgt);
  Image img;
  img.palette = grey_palette();
  // Pillow's OPEN_INFO: (photometric, samples, extra) -> mode.
  Mode mode;
  bool invert = false, unpremultiply = false, drop_fourth = false;
  const bool grey = photometric == PHOTOMETRIC_MINISWHITE || photometric == PHOTOMETRIC_MINISBLACK;
  if (grey && spp == 1) {
    mode = bits == 1 ? Mode::k1 : Mode::kL;
    invert = photometric == PHOTOMETRIC_MINISWHITE;
  } else if (grey && spp == 2 && bits == 8) {
    mode = Mode::kLA;
  } else if (photometric == PHOTOMETRIC_RGB && bits == 8 && spp == 3) {
    mode = Mode::kRGB;
  } else if (photometric == PHOTOMETRIC_RGB && bits == 8 && spp == 4) {
    mode = extra0 == 0 ? Mode::kRGB : Mode::kRGBA;
    drop_fourth = extra0 == 0;
    unpremultiply = extra0 == 1;
  } else if (photometric == PHOTOMETRIC_PALETTE && spp == 1 && (bits == 8 || bits == 1)) {
    mode = Mode::kP;
    uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
    CS_CHECK_ARG(TIFFGetField(t, TIFFTAG_COLORMAP, &r, &g, &b), name, ": TIFF palette missing");
    for (int i = 0; i < (1 << bits); ++i) {
      img.palette[3 * i] = static_cast<uint8_t>(r[i] / 256);
      img.palette[3 * i + 1] = static_cast<uint8_t>(g[i] / 256);
      img.palette[3 * i + 2] = static_cast<uint8_t>(b[i] / 256);
    }
  } else if (photometric == PHOTOMETRIC_SEPARATED && bits == 8 && spp == 4) {
    mode = Mode::kCMYK;
  } else if (photometric == PHOTOMETRIC_YCBCR && bits == 8 && spp == 3) {
    mode = Mode::kRGB;
  } else {
    CS_THROW(kUnsupported, name, ": unsupported TIFF layout (photometric ", photometric, ", ", spp,
             " samples of ", bits, " bits)");
  }
  img.allocate(mode, W, H);
  const bool simple =
      !TIFFIsTiled(t) && planar == PLANARCONFIG_CONTIG && photometric != PHOTOMETRIC_YCBCR;
  if (!simple) {
    // libtiff's RGBA path handles tiles, planes and YCbCr; only for RGB/RGBA results.
    CS_CHECK_ARG(mode == Mode::kRGB || mode == Mode::kRGBA, name,
                 ": unsupported TIFF layout (tiled/planar ", mode_name(mode), ")");
    std::vector<uint32_t> rgba(static_cast<size_t>(W) * H);
    CS_CHECK_ARG(TIFFReadRGBAImageOriented(t, w, hgt, rgba.data(), ORIENTATION_TOPLEFT, 0), name,
                 ": corrupt TIFF: ", error);
    const int C = channels(mode);
    for (size_t i = 0; i < rgba.size(); ++i) {
      const uint32_t v = rgba[i];
      for (int c = 0; c < C; ++c) img.bytes[i * C + c] = static_cast<uint8_t>(v >> (8 * c));
    }
    return img;
  }
  const tmsize_t line = TIFFScanlineSize(t);
  const size_t need = (static_cast<size_t>(W) * spp * bits + 7) / 8;
  CS_CHECK_ARG(line > 0 && static_cast<size_t>(line) >= need, name, ": corrupt TIFF strips");
  std::vector<uint8_t> buf(static_cast<size_t>(line));
  for (int y = 0; y < H; ++y) {
    CS_CHECK_ARG(TIFFReadScanline(t, buf.data(), static_cast<uint32_t>(y), 0) >= 0, name,
                 ": corrupt or truncated TIFF: ", error);
    uint8_t* o = img.row(y);
    if (bits == 1) {
      for (int x = 0; x < W; ++x) {
        int v = (buf[x / 8] >> (7 - x % 8)) & 1;
        if (invert) v ^= 1;
        o[x] = static_cast<uint8_t>(mode == Mode::kP ? v : v * 255);
      }
    } else if (drop_fourth) {
      for (int x = 0; x < W; ++x) std::memcpy(o + 3 * x, &buf[4 * x], 3);
    } else {
      std::memcpy(o, buf.data(), img.stride());
      if (invert) {
        for (int x = 0; x < W; ++x) o[x] = static_cast<uint8_t>(255 - o[x]);
      }
      if (unpremultiply) {
        // Pillow's "RGBa" unpacker: c = min(255, c * 255 / a) (a = 0 keeps zeros).
        for (int x = 0; x < W; ++x) {
          const int a = o[4 * x + 3];
          for (int c = 0; c < 3; ++c) {
            o[4 * x + c] = a == 0 ? 0 : static_cast<uint8_t>(std::min(255, o[4 * x + c] * 255 / a));
          }
        }
      }
    }
  }
  return img;
}

}  // namespace clipserve::image

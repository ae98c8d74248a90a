// PNG decoding to Pillow's modes (1, L, I, P, LA, RGB, RGBA; 16-bit colour keeps the high
// byte, 16-bit grey becomes I, tRNS is ignored as Image.open leaves the mode alone).
// decode_png_libpng is the plain reference; decode_png parses the chunks itself and inflates
// with libdeflate in one call (much faster than zlib), falling back to libpng for interlaced
// images and for anything it does not accept.
#include <libdeflate.h>
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <memory>

#include "core/check.h"
#include "image/decode.h"

namespace clipserve::image {

namespace {

bool valid_depth(int ctype, int depth) {
  switch (ctype) {
    case 0:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
      return depth == 8 || depth == 16;
  }
  return false;
}

Mode png_mode(int ctype, int depth) {
  switch (ctype) {
    case 0:
      return depth == 1 ? Mode::k1 : depth == 16 ? Mode::kI : Mode::kL;
    case 2:
      return Mode::kRGB;
    case 3:
      return Mode::kP;
    case 4:
      return Mode::kLA;
    default:
      return Mode::kRGBA;
  }
}

int samples_per_pixel(int ctype) {
  switch (ctype) {
    case 2:
      return 3;
    case 4:
      return 2;
    case 6:
      return 4;
    default:
      return 1;
  }
}

// Converts one unfiltered PNG row (raw, as stored) into the image row for Pillow's mode.
void expand_row(const uint8_t* raw, int width, int ctype, int depth, Image& img, int y) {
  if (img.mode == Mode::kI) {
    int32_t* out = img.ints.data() + static_cast<size_t>(y) * width;
    for (int x = 0; x < width; ++x) out[x] = (raw[2 * x] << 8) | raw[2 * x + 1];
    return;
  }
  uint8_t* out = img.row(y);
  if (depth < 8) {
    // Pillow's unpackers: "1" -> 0/255, "L;2" -> *85, "L;4" -> *17, "P;n" -> raw indices.
    const int per_byte = 8 / depth;
    const int mask = (1 << depth) - 1;
    const int scale = ctype == 3 ? 1 : (depth == 1 ? 255 : depth == 2 ? 85 : 17);
    for (int x = 0; x < width; ++x) {
      const int shift = 8 - depth * (x % per_byte + 1);
      out[x] = static_cast<uint8_t>(((raw[x / per_byte] >> shift) & mask) * scale);
    }
    return;
  }
  const int n = width * samples_per_pixel(ctype);
  if (depth == 8) {
    std::memcpy(out, raw, n);
  } else {  // 16-bit colour or grey+alpha: Pillow's ";16B" unpackers keep the high byte
    for (int i = 0; i < n; ++i) out[i] = raw[2 * i];
  }
}

// ---- reference: libpng ----

struct PngErr {
  std::jmp_buf jump;
  char message[256];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* err = static_cast<PngErr*>(png_get_error_ptr(png));
  std::snprintf(err->message, sizeof err->message, "%s", msg);
  std::longjmp(err->jump, 1);
}
void png_on_warning(png_structp, png_const_charp) {}

struct MemReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<MemReader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "truncated PNG data");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

struct PngHeader {
  int width, height, depth, ctype, interlace;
};

// Reads the header (stage 1) or the whole image (stage 2, into `raw`, rows of rowbytes).
bool libpng_run(std::span<const uint8_t> bytes, bool header_only, PngHeader* hdr, uint8_t* raw,
                size_t rowbytes, uint8_t* palette, int* palette_entries, PngErr* err) {
  MemReader reader{bytes.data(), bytes.size(), 0};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, err, png_on_error, png_on_warning);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  png_bytep* rows = nullptr;
  if (setjmp(err->jump)) {
    std::free(rows);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (info == nullptr) png_error(png, "out of memory");
  png_set_read_fn(png, &reader, png_read_mem);
  // Pillow does not check IDAT CRCs; only reject broken critical chunks.
  png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_QUIET_USE);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);
  hdr->width = static_cast<int>(png_get_image_width(png, info));
  hdr->height = static_cast<int>(png_get_image_height(png, info));
  hdr->depth = png_get_bit_depth(png, info);
  hdr->ctype = png_get_color_type(png, info);
  hdr->interlace = png_get_interlace_type(png, info);
  if (!header_only) {
    png_colorp plte = nullptr;
    int n = 0;
    if (png_get_PLTE(png, info, &plte, &n) && plte != nullptr) {
      for (int i = 0; i < n && i < 256; ++i) {
        palette[3 * i] = plte[i].red;
        palette[3 * i + 1] = plte[i].green;
        palette[3 * i + 2] = plte[i].blue;
      }
      *palette_entries = n;
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    rows = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * hdr->height));
    if (rows == nullptr) png_error(png, "out of memory");
    for (int y = 0; y < hdr->height; ++y) rows[y] = raw + rowbytes * y;
    png_read_image(png, rows);
    std::free(rows);
    rows = nullptr;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

size_t png_rowbytes(int width, int ctype, int depth) {
  return (static_cast<size_t>(width) * samples_per_pixel(ctype) * depth + 7) / 8;
}

}  // namespace

Image decode_png_libpng(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                        const std::string& name) {
  PngErr err{};
  PngHeader hdr{};
  if (!libpng_run(bytes, true, &hdr, nullptr, 0, nullptr, nullptr, &err)) {
    CS_THROW(kInvalidArgument, name, ": corrupt PNG: ", err.message);
  }
  check_dimensions(hdr.width, hdr.height, opt, name);
  CS_CHECK_ARG(valid_depth(hdr.ctype, hdr.depth), name, ": invalid PNG colour type ", hdr.ctype,
               " with bit depth ", hdr.depth);
  const size_t rowbytes = png_rowbytes(hdr.width, hdr.ctype, hdr.depth);
  std::vector<uint8_t> raw(rowbytes * hdr.height);
  Image img;
  img.palette = grey_palette();
  int entries = 0;
  if (!libpng_run(bytes, false, &hdr, raw.data(), rowbytes, img.palette.data(), &entries, &err)) {
    CS_THROW(kInvalidArgument, name, ": corrupt or truncated PNG: ", err.message);
  }
  img.allocate(png_mode(hdr.ctype, hdr.depth), hdr.width, hdr.height);
  for (int y = 0; y < hdr.height; ++y) {
    expand_row(raw.data() + rowbytes * y, hdr.width, hdr.ctype, hdr.depth, img, y);
  }
  return img;
}

// ---- fast path: own chunk parser + libdeflate + unfilter ----

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

inline uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  if (pb <= pc) return static_cast<uint8_t>(b);
  return static_cast<uint8_t>(c);
}

// Undoes one row's filter in place. `prev` is the previous unfiltered row (zeros for row 0).
template <int BPP>
void unfilter_row_fixed(int filter, uint8_t* row, const uint8_t* prev, size_t n) {
  switch (filter) {
    case 0:
      break;
    case 1:
      for (size_t i = BPP; i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + row[i - BPP]);
      break;
    case 2:
      for (size_t i = 0; i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + prev[i]);
      break;
    case 3:
      for (size_t i = 0; i < BPP && i < n; ++i)
        row[i] = static_cast<uint8_t>(row[i] + (prev[i] >> 1));
      for (size_t i = BPP; i < n; ++i) {
        row[i] = static_cast<uint8_t>(row[i] + ((row[i - BPP] + prev[i]) >> 1));
      }
      break;
    case 4:
      for (size_t i = 0; i < BPP && i < n; ++i) row[i] = static_cast<uint8_t>(row[i] + prev[i]);
      for (size_t i = BPP; i < n; ++i) {
        row[i] = static_cast<uint8_t>(row[i] + paeth(row[i - BPP], prev[i], prev[i - BPP]));
      }
      break;
  }
}

void unfilter_row(int filter, int bpp, uint8_t* row, const uint8_t* prev, size_t n) {
  switch (bpp) {
    case 1:
      return unfilter_row_fixed<1>(filter, row, prev, n);
    case 2:
      return unfilter_row_fixed<2>(filter, row, prev, n);
    case 3:
      return unfilter_row_fixed<3>(filter, row, prev, n);
    case 4:
      return unfilter_row_fixed<4>(filter, row, prev, n);
    case 6:
      return unfilter_row_fixed<6>(filter, row, prev, n);
    default:
      return unfilter_row_fixed<8>(filter, row, prev, n);
  }
}

struct DeflateDecompressor {
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  ~DeflateDecompressor() {
    if (d != nullptr) libdeflate_free_decompressor(d);
  }
};

}  // namespace

Image decode_png(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                 const std::string& name) {
  const uint8_t* p = bytes.data();
  const size_t size = bytes.size();
  size_t pos = 8;
  PngHeader hdr{};
  bool have_header = false;
  Image img;
  img.palette = grey_palette();
  std::vector<uint8_t> idat;
  bool ended = false;
  while (pos + 12 <= size) {
    const uint32_t len = be32(p + pos);
    const uint8_t* type = p + pos + 4;
    if (len > size - pos - 12) break;  // truncated chunk: let libpng produce the error
    const uint8_t* data = p + pos + 8;
    if (std::memcmp(type, "IHDR", 4) == 0) {
      if (len < 13) break;
      hdr.width = static_cast<int>(std::min<uint32_t>(be32(data), 0x7fffffff));
      hdr.height = static_cast<int>(std::min<uint32_t>(be32(data + 4), 0x7fffffff));
      hdr.depth = data[8];
      hdr.ctype = data[9];
      hdr.interlace = data[12];
      have_header = data[10] == 0 && data[11] == 0;
      if (!have_header) break;
      check_dimensions(hdr.width, hdr.height, opt, name);
    } else if (std::memcmp(type, "PLTE", 4) == 0) {
      for (uint32_t i = 0; i < len / 3 && i < 256; ++i) {
        std::memcpy(&img.palette[3 * i], data + 3 * i, 3);
      }
    } else if (std::memcmp(type, "IDAT", 4) == 0) {
      idat.insert(idat.end(), data, data + len);
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      ended = true;
      break;
    }
    pos += 12 + static_cast<size_t>(len);
  }
  if (!have_header || !ended || hdr.interlace != 0 || !valid_depth(hdr.ctype, hdr.depth) ||
      idat.empty()) {
    return decode_png_libpng(bytes, opt, name);
  }
  const size_t rowbytes = png_rowbytes(hdr.width, hdr.ctype, hdr.depth);
  const size_t expected = (rowbytes + 1) * static_cast<size_t>(hdr.height);
  std::vector<uint8_t> raw(expected);
  DeflateDecompressor dec;
  CS_CHECK_ARG(dec.d != nullptr, name, ": out of memory");
  size_t in_used = 0, out_len = 0;
  const libdeflate_result r = libdeflate_zlib_decompress_ex(
      dec.d, idat.data(), idat.size(), raw.data(), raw.size(), &in_used, &out_len);
  if (r != LIBDEFLATE_SUCCESS || out_len != expected) {
    // Too much data, a bad checksum or a broken stream: libpng decides like Pillow would.
    return decode_png_libpng(bytes, opt, name);
  }
  img.allocate(png_mode(hdr.ctype, hdr.depth), hdr.width, hdr.height);
  const int bpp = std::max(1, samples_per_pixel(hdr.ctype) * hdr.depth / 8);
  std::vector<uint8_t> zero(rowbytes, 0);
  const uint8_t* prev = zero.data();
  const bool direct = img.mode != Mode::kI && hdr.depth == 8;
  for (int y = 0; y < hdr.height; ++y) {
    uint8_t* row = raw.data() + (rowbytes + 1) * y;
    const int filter = row[0];
    if (filter > 4) return decode_png_libpng(bytes, opt, name);
    if (direct) {
      // Unfilter straight into the image row: it becomes the previous row of the next one.
      uint8_t* out = img.row(y);
      std::memcpy(out, row + 1, rowbytes);
      unfilter_row(filter, bpp, out, prev, rowbytes);
      prev = out;
    } else {
      unfilter_row(filter, bpp, row + 1, prev, rowbytes);
      expand_row(row + 1, hdr.width, hdr.ctype, hdr.depth, img, y);
      prev = row + 1;
    }
  }
  return img;
}

}  // namespace clipserve::image

// PNG decoding to Pillow's modes (1, L, I, P, LA, RGB, RGBA; 16-bit colour keeps the high
// byte, 16-bit grey becomes I, tRNS is ignored as Image.open leaves the mode alone).
// decode_png_libpng is the plain reference; decode_png parses the chunks itself and inflates
// with libdeflate in one call (much faster than zlib), falling back to libpng for interlaced
// images and for anything it does not accept.
#include <emmintrin.h>
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
  // volatile: assigned after setjmp and freed on the longjmp path.
  png_bytep* volatile rows = nullptr;
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

// Undoes one row's filter: dst[i] = src[i] + predictor (dst may equal src). `prev` is the
// previous unfiltered row (zeros for row 0).
template <int BPP>
void unfilter_row_fixed(int filter, const uint8_t* src, uint8_t* dst, const uint8_t* prev,
                        size_t n) {
  switch (filter) {
    case 0:
      if (dst != src) std::memcpy(dst, src, n);
      break;
    case 1:
      for (size_t i = 0; i < BPP && i < n; ++i) dst[i] = src[i];
      for (size_t i = BPP; i < n; ++i) dst[i] = static_cast<uint8_t>(src[i] + dst[i - BPP]);
      break;
    case 2:
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(src[i] + prev[i]);
      break;
    case 3:
      for (size_t i = 0; i < BPP && i < n; ++i)
        dst[i] = static_cast<uint8_t>(src[i] + (prev[i] >> 1));
      for (size_t i = BPP; i < n; ++i) {
        dst[i] = static_cast<uint8_t>(src[i] + ((dst[i - BPP] + prev[i]) >> 1));
      }
      break;
    case 4:
      for (size_t i = 0; i < BPP && i < n; ++i) dst[i] = static_cast<uint8_t>(src[i] + prev[i]);
      for (size_t i = BPP; i < n; ++i) {
        dst[i] = static_cast<uint8_t>(src[i] + paeth(dst[i - BPP], prev[i], prev[i - BPP]));
      }
      break;
  }
}

// SSE2 Avg/Paeth for 3- and 4-byte pixels: one pixel per step in 16-bit lanes (the
// dependency on the left pixel is inherent), branch-free predictor choice. Loads read 4
// bytes per pixel, so callers keep a few readable bytes after each row.
template <int BPP>
bool unfilter_row_sse2(int filter, const uint8_t* src, uint8_t* dst, const uint8_t* prev,
                       size_t n) {
  if (filter != 3 && filter != 4) return false;
  const __m128i zero = _mm_setzero_si128();
  auto load = [&](const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm_unpacklo_epi8(_mm_cvtsi32_si128(v), zero);
  };
  auto store = [&](uint8_t* p, __m128i v) {
    const int32_t w = _mm_cvtsi128_si32(_mm_packus_epi16(v, v));
    std::memcpy(p, &w, BPP);
  };
  auto abs16 = [&](__m128i v) { return _mm_max_epi16(v, _mm_sub_epi16(zero, v)); };
  const __m128i mask = _mm_set1_epi16(0xff);
  __m128i a = zero, c = zero;
  const size_t pixels = n / BPP;
  for (size_t i = 0; i < pixels; ++i) {
    const __m128i b = load(prev + i * BPP);
    const __m128i x = load(src + i * BPP);
    __m128i pred;
    if (filter == 3) {
      pred = _mm_srli_epi16(_mm_add_epi16(a, b), 1);
    } else {
      const __m128i pa = abs16(_mm_sub_epi16(b, c));
      const __m128i pb = abs16(_mm_sub_epi16(a, c));
      const __m128i pc = abs16(_mm_sub_epi16(_mm_add_epi16(a, b), _mm_add_epi16(c, c)));
      const __m128i smallest = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
      const __m128i use_a = _mm_cmpeq_epi16(smallest, pa);
      const __m128i use_b = _mm_andnot_si128(use_a, _mm_cmpeq_epi16(smallest, pb));
      const __m128i use_c = _mm_andnot_si128(_mm_or_si128(use_a, use_b), _mm_set1_epi16(-1));
      pred = _mm_or_si128(_mm_or_si128(_mm_and_si128(use_a, a), _mm_and_si128(use_b, b)),
                          _mm_and_si128(use_c, c));
      c = b;
    }
    a = _mm_and_si128(_mm_add_epi16(x, pred), mask);
    store(dst + i * BPP, a);
  }
  return true;
}

void unfilter_row(int filter, int bpp, const uint8_t* src, uint8_t* dst, const uint8_t* prev,
                  size_t n) {
  switch (bpp) {
    case 1:
      return unfilter_row_fixed<1>(filter, src, dst, prev, n);
    case 2:
      return unfilter_row_fixed<2>(filter, src, dst, prev, n);
    case 3:
      if (unfilter_row_sse2<3>(filter, src, dst, prev, n)) return;
      return unfilter_row_fixed<3>(filter, src, dst, prev, n);
    case 4:
      if (unfilter_row_sse2<4>(filter, src, dst, prev, n)) return;
      return unfilter_row_fixed<4>(filter, src, dst, prev, n);
    case 6:
      return unfilter_row_fixed<6>(filter, src, dst, prev, n);
    default:
      return unfilter_row_fixed<8>(filter, src, dst, prev, n);
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
  if (opt.reuse != nullptr) img = std::move(*opt.reuse);
  img.palette = grey_palette();
  // Per-thread scratch: the compressed stream and the inflated rows.
  thread_local PixelBuffer idat, raw;
  idat.clear();
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
  if (have_header && valid_depth(hdr.ctype, hdr.depth)) {
    // Deflate expands at most ~1032:1: data that cannot hold the declared rows is refused
    // before anything the size of the image is allocated (here or in libpng's path).
    size_t available = idat.size();
    if (!ended && pos + 8 < size && std::memcmp(p + pos + 4, "IDAT", 4) == 0) {
      available += size - pos - 8;  // a truncated last IDAT chunk
    }
    const size_t min_raw =
        png_rowbytes(hdr.width, hdr.ctype, hdr.depth) * static_cast<size_t>(hdr.height);
    if (available * 1032 + 1024 < min_raw) {
      CS_THROW(kInvalidArgument, name, ": ", available, " bytes of image data cannot hold a ",
               hdr.width, "x", hdr.height, " PNG (truncated or corrupt)");
    }
  }
  if (!have_header || !ended || hdr.interlace != 0 || !valid_depth(hdr.ctype, hdr.depth) ||
      idat.empty()) {
    return decode_png_libpng(bytes, opt, name);
  }
  const size_t rowbytes = png_rowbytes(hdr.width, hdr.ctype, hdr.depth);
  const size_t expected = (rowbytes + 1) * static_cast<size_t>(hdr.height);
  raw.resize(expected + 8);  // + 8: the SSE2 unfilter reads 4 bytes per pixel
  struct Release {           // don't keep huge buffers alive per thread
    ~Release() {
      if (raw.capacity() > kMaxKeptScratch) PixelBuffer().swap(raw);
      if (idat.capacity() > kMaxKeptScratch) PixelBuffer().swap(idat);
    }
  } release;
  DeflateDecompressor dec;
  CS_CHECK_ARG(dec.d != nullptr, name, ": out of memory");
  size_t in_used = 0, out_len = 0;
  const libdeflate_result r = libdeflate_zlib_decompress_ex(
      dec.d, idat.data(), idat.size(), raw.data(), expected, &in_used, &out_len);
  if (r != LIBDEFLATE_SUCCESS || out_len != expected) {
    // Too much data, a bad checksum or a broken stream: libpng decides like Pillow would.
    return decode_png_libpng(bytes, opt, name);
  }
  img.allocate(png_mode(hdr.ctype, hdr.depth), hdr.width, hdr.height, /*zero=*/false);
  const int bpp = std::max(1, samples_per_pixel(hdr.ctype) * hdr.depth / 8);
  std::vector<uint8_t> zero(rowbytes + 8, 0);
  const uint8_t* prev = zero.data();
  const bool direct = img.mode != Mode::kI && hdr.depth == 8;
  for (int y = 0; y < hdr.height; ++y) {
    uint8_t* row = raw.data() + (rowbytes + 1) * y;
    const int filter = row[0];
    if (filter > 4) return decode_png_libpng(bytes, opt, name);
    if (direct) {
      // Unfilter straight into the image row: it becomes the previous row of the next one.
      uint8_t* out = img.row(y);
      unfilter_row(filter, bpp, row + 1, out, prev, rowbytes);
      prev = out;
    } else {
      unfilter_row(filter, bpp, row + 1, row + 1, prev, rowbytes);
      expand_row(row + 1, hdr.width, hdr.ctype, hdr.depth, img, y);
      prev = row + 1;
    }
  }
  return img;
}

}  // namespace clipserve::image

// JPEG decoding with libjpeg-turbo using the settings Pillow 9.4 uses (library defaults:
// ISLOW IDCT, fancy upsampling), optionally only a region (skip/crop scanlines) or with
// DCT-domain downscaling (fast mode).
#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>

// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

#include "core/check.h"
#include "image/decode.h"

namespace clipserve::image {

namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int level) {
  // Warnings are ignored as Pillow does, except running out of data: Pillow raises
  // "image file is truncated" there instead of returning grey rows.
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    reinterpret_cast<ErrorManager*>(cinfo->err)->truncated = true;
  }
}

void on_output_message(j_common_ptr) {}

// Reads the orientation from the APP1 Exif marker saved by jpeg_save_markers.
int orientation_from_markers(j_decompress_ptr cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 &&
        std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      return exif_orientation_from_tiff({m->data + 6, m->data_length - 6});
    }
  }
  return 1;
}

struct Decoded {
  Mode mode;
  int width, height;       // output (possibly scaled) size
  int origin_x, origin_y;  // region origin
  int rows, cols;          // stored rows/columns
  int orientation;
};

// Everything that can longjmp lives in this function; it touches only C data and the
// caller-provided buffer callback so no C++ destructor is skipped.
using AllocFn = uint8_t* (*)(void* ctx, const Decoded& d);

bool run_decode(std::span<const uint8_t> bytes, const DecodeOptions& opt, bool header_only,
                AllocFn alloc, void* ctx, Decoded* out, ErrorManager* err) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error_exit;
  err->pub.emit_message = on_emit_message;
  err->pub.output_message = on_output_message;
  err->truncated = false;
  err->message[0] = 0;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&cinfo, TRUE);
  if (err->truncated) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  Decoded d{};
  switch (cinfo.num_components) {
    case 1:
      d.mode = Mode::kL;
      cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case 3:
      d.mode = Mode::kRGB;
      cinfo.out_color_space = JCS_RGB;
      break;
    case 4:
      d.mode = Mode::kCMYK;
      cinfo.out_color_space = JCS_CMYK;
      break;
    default:
      std::snprintf(err->message, sizeof err->message, "cannot handle %d-layer JPEG images",
                    cinfo.num_components);
      jpeg_destroy_decompress(&cinfo);
      return false;
  }
  d.orientation = orientation_from_markers(&cinfo);
  d.width = static_cast<int>(cinfo.image_width);
  d.height = static_cast<int>(cinfo.image_height);
  if (header_only) {
    *out = d;
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  if (opt.jpeg_scale_denom > 1) {
    cinfo.scale_num = 1;
    cinfo.scale_denom = static_cast<unsigned>(opt.jpeg_scale_denom);
  }
  jpeg_start_decompress(&cinfo);
  d.width = static_cast<int>(cinfo.output_width);
  d.height = static_cast<int>(cinfo.output_height);
  int y0 = 0, y1 = d.height;
  JDIMENSION x0 = 0, w = cinfo.output_width;
  if (opt.region != nullptr) {
    const Region& r = *opt.region;
    y0 = std::max(0, r.y0);
    y1 = std::min(d.height, r.y1);
    int rx0 = std::max(0, r.x0), rx1 = std::min(d.width, r.x1);
    if (y1 <= y0 || rx1 <= rx0) {  // empty region: nothing needed, return one row
      y0 = 0;
      y1 = 1;
      rx0 = 0;
      rx1 = d.width;
    }
    if (rx0 > 0 || rx1 < d.width) {
      // libjpeg-turbo widens the crop to iMCU boundaries. Fancy upsampling of the first and
      // last cropped columns reads their neighbours, so keep one more iMCU each side and
      // use only the interior (identical to a full decode there).
      int imcu = cinfo.max_h_samp_factor * DCTSIZE / static_cast<int>(cinfo.scale_denom);
      if (imcu < 1) imcu = 1;
      int cx0 = std::max(0, rx0 - imcu);
      int cx1 = std::min(d.width, rx1 + imcu);
      x0 = static_cast<JDIMENSION>(cx0);
      w = static_cast<JDIMENSION>(cx1 - cx0);
      jpeg_crop_scanline(&cinfo, &x0, &w);
    }
  }
  d.origin_x = static_cast<int>(x0);
  d.origin_y = y0;
  d.cols = static_cast<int>(w);
  d.rows = y1 - y0;
  uint8_t* pixels = alloc(ctx, d);
  const int stride = d.cols * cinfo.output_components;
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  for (int y = 0; y < d.rows && !err->truncated;) {
    JSAMPROW rows[16];
    const int n = std::min(16, d.rows - y);
    for (int i = 0; i < n; ++i) rows[i] = pixels + static_cast<size_t>(y + i) * stride;
    y += static_cast<int>(jpeg_read_scanlines(&cinfo, rows, static_cast<JDIMENSION>(n)));
  }
  if (err->truncated) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (d.rows == d.height) {
    jpeg_finish_decompress(&cinfo);
  } else {
    jpeg_abort_decompress(&cinfo);
  }
  jpeg_destroy_decompress(&cinfo);
  *out = d;
  return !err->truncated;
}

[[noreturn]] void throw_jpeg_error(const ErrorManager& err, const std::string& name) {
  if (err.truncated) {
    CS_THROW(kInvalidArgument, name, ": truncated JPEG file (data ends before the image does)");
  }
  CS_THROW(kInvalidArgument, name, ": corrupt JPEG: ", err.message);
}

struct AllocCtx {
  Image* img;
  const DecodeOptions* opt;
  const std::string* name;
  bool too_large;
};

uint8_t* allocate(void* vctx, const Decoded& d) {
  auto* ctx = static_cast<AllocCtx*>(vctx);
  ctx->img->allocate(d.mode, d.cols, d.rows, /*zero=*/false);
  return ctx->img->bytes.data();
}

}  // namespace

ImageInfo probe_jpeg(std::span<const uint8_t> bytes, const std::string& name) {
  ErrorManager err;
  Decoded d{};
  if (!run_decode(bytes, DecodeOptions{}, true, nullptr, nullptr, &d, &err)) {
    throw_jpeg_error(err, name);
  }
  return ImageInfo{Format::kJpeg, d.mode, d.width, d.height};
}

Image decode_jpeg(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                  const std::string& name) {
  ErrorManager err;
  Decoded d{};
  if (!run_decode(bytes, opt, true, nullptr, nullptr, &d, &err)) throw_jpeg_error(err, name);
  check_dimensions(d.width, d.height, opt, name);
  Image img;
  if (opt.reuse != nullptr) img = std::move(*opt.reuse);
  AllocCtx ctx{&img, &opt, &name, false};
  if (!run_decode(bytes, opt, false, allocate, &ctx, &d, &err)) throw_jpeg_error(err, name);
  img.origin_x = d.origin_x;
  img.origin_y = d.origin_y;
  img.full_width = d.width;
  img.full_height = d.height;
  img.exif_orientation = d.orientation;
  if (img.mode == Mode::kCMYK) {
    // Pillow reads every 4-component JPEG as Adobe-inverted CMYK ("CMYK;I").
    for (uint8_t& v : img.bytes) v = static_cast<uint8_t>(255 - v);
  }
  return img;
}

}  // namespace clipserve::image

// Image decoders: each returns the pixels and the mode Pillow 9.4's Image.open gives for the
// same file (JPEG, PNG, WebP, GIF, BMP, TIFF), with a decompression-bomb guard and errors that
// name the input.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "image/pixels.h"

namespace clipserve::image {

enum class Format : uint8_t { kUnknown, kJpeg, kPng, kWebp, kGif, kBmp, kTiff };
const char* format_name(Format f);
/// Recognises the format from the first bytes (magic numbers), as Pillow does.
Format sniff_format(std::span<const uint8_t> bytes);

/// Rows/columns [x0, x1) x [y0, y1) of the full image that a caller needs.
struct Region {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

struct DecodeOptions {
  uint64_t max_pixels = 2ull * 89478485ull;
  /// JPEG only: decode only (at least) this part of the image. The result's origin_x/origin_y
  /// say where its pixel (0, 0) lies in the full image. Pixels are identical to a full decode.
  const Region* region = nullptr;
  /// JPEG only: libjpeg-turbo DCT-domain downscaling by 1/scale_denom (1, 2, 4 or 8); not
  /// what Pillow does (fast mode only). Region is then in scaled coordinates.
  int jpeg_scale_denom = 1;
  /// Decoders may take this image's buffers (their capacity) instead of allocating: callers
  /// decoding many images reuse memory and avoid page faults. Left empty afterwards.
  Image* reuse = nullptr;
  /// Use libpng/zlib instead of clipserve's own PNG path (reference for tests).
  bool png_reference = false;
};

/// Header-only facts: size, Pillow mode and EXIF orientation.
struct ImageInfo {
  Format format = Format::kUnknown;
  Mode mode = Mode::kRGB;
  int width = 0;
  int height = 0;
};

/// Decodes the whole image (or opt.region for JPEG). Throws Error naming `name`:
/// kInvalidArgument for corrupt/truncated/unknown data, kTooLarge above opt.max_pixels,
/// kUnsupported for valid files in modes Pillow cannot resize (16-bit TIFF, ...).
Image decode_image(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                   const std::string& name);

/// JPEG header facts without decoding pixels (for planning a region decode).
ImageInfo probe_jpeg(std::span<const uint8_t> bytes, const std::string& name);

// Per-format decoders (decode_<format>.cpp), all with the same contract as decode_image.
Image decode_jpeg(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                  const std::string& name);
Image decode_png(std::span<const uint8_t> bytes, const DecodeOptions& opt, const std::string& name);
Image decode_png_libpng(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                        const std::string& name);
Image decode_webp(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                  const std::string& name);
Image decode_gif(std::span<const uint8_t> bytes, const DecodeOptions& opt, const std::string& name);
Image decode_bmp(std::span<const uint8_t> bytes, const DecodeOptions& opt, const std::string& name);
Image decode_tiff(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                  const std::string& name);

/// Throws kTooLarge when width*height exceeds the guard, kInvalidArgument for empty sizes.
void check_dimensions(int64_t width, int64_t height, const DecodeOptions& opt,
                      const std::string& name);

/// EXIF orientation (1..8) from a TIFF-structured EXIF block ("II*\0" / "MM\0*"), 1 if none.
int exif_orientation_from_tiff(std::span<const uint8_t> tiff);

/// Applies an EXIF orientation like ImageOps.exif_transpose (returns a new image).
Image apply_orientation(const Image& img, int orientation);

}  // namespace clipserve::image

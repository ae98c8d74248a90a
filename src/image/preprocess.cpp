// open_clip's eval transform end to end: decode -> Resize(S, bicubic) -> CenterCrop(S) ->
// convert("RGB") -> ToTensor -> Normalize. The exact path decodes only what the crop needs
// (JPEG region decode) and resizes only the kept pixels; opt.reference runs the plain chain;
// opt.fast adds DCT-domain JPEG downscaling (not bit-exact).
#include <cstring>

#include "clipserve/image.h"
#include "core/check.h"
#include "core/file.h"
#include "image/decode.h"
#include "image/resample.h"

namespace clipserve {

PreprocessOptions PreprocessOptions::from(const PreprocessConfig& cfg) {
  PreprocessOptions o;
  o.size = cfg.size;
  o.mean = cfg.mean;
  o.std = cfg.std;
  o.squash_rgb_first = cfg.resize_mode == "squash_rgb_first";
  return o;
}

namespace {

using image::Geometry;
using image::Image;
using image::kMaxKeptScratch;

// Largest libjpeg-turbo scale 1/d (d = 8, 4, 2) that keeps the decoded image at least as
// large as the resize target (Pillow's draft() rule); 1 when none does.
int jpeg_scale_for(int w, int h, const Geometry& g) {
  for (int d : {8, 4, 2}) {
    if ((w + d - 1) / d >= g.resized_w && (h + d - 1) / d >= g.resized_h) return d;
  }
  return 1;
}

Image crop_reference_chain(std::span<const uint8_t> bytes, const PreprocessOptions& opt,
                           const std::string& name) {
  image::DecodeOptions dopt;
  dopt.max_pixels = opt.max_pixels;
  dopt.png_reference = true;
  Image img = image::decode_image(bytes, dopt, name);
  if (opt.apply_exif_orientation) img = image::apply_orientation(img, img.exif_orientation);
  const Geometry g = image::plan_geometry(img.width, img.height, opt.size);
  if (g.resize) img = image::resize_reference(img, g.resized_w, g.resized_h);
  return image::crop_reference(img, g.left, g.top, opt.size, opt.size);
}

// Decoded pixels are kept per thread and reused by the next image (no page faults).
thread_local Image t_scratch;

void keep_scratch(Image&& img) {
  if (img.bytes.capacity() + img.ints.capacity() * 4 <= kMaxKeptScratch) t_scratch = std::move(img);
}

Image crop_fast_chain(std::span<const uint8_t> bytes, const PreprocessOptions& opt,
                      const std::string& name) {
  const int S = opt.size;
  image::DecodeOptions dopt;
  dopt.max_pixels = opt.max_pixels;
  dopt.reuse = &t_scratch;
  if (image::sniff_format(bytes) == image::Format::kJpeg && !opt.apply_exif_orientation) {
    const image::ImageInfo info = image::probe_jpeg(bytes, name);
    image::check_dimensions(info.width, info.height, dopt, name);
    Geometry g = image::plan_geometry(info.width, info.height, S);
    int w = info.width, h = info.height;
    if (opt.fast && g.resize) {
      dopt.jpeg_scale_denom = jpeg_scale_for(w, h, g);
      w = (w + dopt.jpeg_scale_denom - 1) / dopt.jpeg_scale_denom;
      h = (h + dopt.jpeg_scale_denom - 1) / dopt.jpeg_scale_denom;
      g.resize = !(w == g.resized_w && h == g.resized_h);
    }
    const image::Region region = image::source_region(w, h, info.mode, g, S);
    dopt.region = &region;
    Image img = image::decode_jpeg(bytes, dopt, name);
    CS_ASSERT(img.full_width == w && img.full_height == h);
    Image crop = image::resize_crop(img, g, S);
    keep_scratch(std::move(img));
    return crop;
  }
  Image img = image::decode_image(bytes, dopt, name);
  if (opt.apply_exif_orientation) img = image::apply_orientation(img, img.exif_orientation);
  const Geometry g = image::plan_geometry(img.width, img.height, S);
  Image crop = image::resize_crop(img, g, S);
  keep_scratch(std::move(img));
  return crop;
}

// OwlViTImageProcessor on Image.open(f).convert("RGB"): the conversion comes first (alpha
// dropped, 16-bit gray clipped, palette looked up), then an S x S resize of the RGB image.
Image squash_rgb_first_chain(std::span<const uint8_t> bytes, const PreprocessOptions& opt,
                             const std::string& name, int* width, int* height) {
  image::DecodeOptions dopt;
  dopt.max_pixels = opt.max_pixels;
  dopt.png_reference = opt.reference;
  Image img = image::decode_image(bytes, dopt, name);
  if (opt.apply_exif_orientation) img = image::apply_orientation(img, img.exif_orientation);
  if (width != nullptr) *width = img.width;
  if (height != nullptr) *height = img.height;
  Image rgb;
  rgb.allocate(image::Mode::kRGB, img.width, img.height, false);
  image::convert_rgb(img, rgb.bytes.data());
  const int S = opt.size;
  image::Geometry g;
  g.resized_w = S;
  g.resized_h = S;
  g.resize = img.width != S || img.height != S;
  if (opt.reference) return g.resize ? image::resize_reference(rgb, S, S) : rgb;
  return image::resize_crop(rgb, g, S);
}

std::vector<uint8_t> rgb8(std::span<const uint8_t> bytes, const PreprocessOptions& opt,
                          const std::string& name, int* width = nullptr, int* height = nullptr) {
  CS_CHECK_ARG(opt.size > 0 && opt.size <= 8192, name, ": invalid preprocess size ", opt.size);
  if (width != nullptr) *width = 0;
  if (height != nullptr) *height = 0;
  if (opt.squash_rgb_first) {
    const Image out = squash_rgb_first_chain(bytes, opt, name, width, height);
    CS_ASSERT(out.mode == image::Mode::kRGB && out.width == opt.size && out.height == opt.size);
    return std::vector<uint8_t>(out.bytes.begin(),
                                out.bytes.begin() + static_cast<long>(opt.size) * opt.size * 3);
  }
  const Image crop =
      opt.reference ? crop_reference_chain(bytes, opt, name) : crop_fast_chain(bytes, opt, name);
  std::vector<uint8_t> rgb(static_cast<size_t>(opt.size) * opt.size * 3);
  image::convert_rgb(crop, rgb.data());
  return rgb;
}

}  // namespace

std::vector<uint8_t> preprocess_image_rgb8(std::span<const uint8_t> bytes,
                                           const PreprocessOptions& opt, const std::string& name) {
  return rgb8(bytes, opt, name);
}

void normalize_rgb8(const uint8_t* rgb, const PreprocessOptions& opt, float* out) {
  image::normalize_lut(rgb, opt.size, opt.size, opt.mean, opt.std, out);
}

void preprocess_image(std::span<const uint8_t> bytes, const PreprocessOptions& opt, float* out,
                      const std::string& name) {
  preprocess_image(bytes, opt, out, name, nullptr, nullptr);
}

void preprocess_image(std::span<const uint8_t> bytes, const PreprocessOptions& opt, float* out,
                      const std::string& name, int* width, int* height) {
  const std::vector<uint8_t> rgb = rgb8(bytes, opt, name, width, height);
  if (opt.reference) {
    image::normalize_reference(rgb.data(), opt.size, opt.size, opt.mean, opt.std, out);
  } else {
    image::normalize_lut(rgb.data(), opt.size, opt.size, opt.mean, opt.std, out);
  }
}

std::vector<float> preprocess_file(const std::string& path, const PreprocessOptions& opt) {
  const MappedFile file(path);
  std::vector<float> out(static_cast<size_t>(3) * opt.size * opt.size);
  preprocess_image(file.bytes(), opt, out.data(), path);
  return out;
}

}  // namespace clipserve

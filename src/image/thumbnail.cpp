// make_thumbnail_jpeg (see thumbnail.h): decode, Pillow-bicubic downscale, RGB, libjpeg encode.
#include "image/thumbnail.h"

#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/check.h"
#include "image/decode.h"
#include "image/resample.h"

namespace clipserve::image {

std::vector<uint8_t> make_thumbnail_jpeg(std::span<const uint8_t> bytes, int max_side,
                                         const std::string& name, int quality) {
  CS_CHECK_ARG(max_side >= 1, "thumbnail size must be >= 1");
  Image img = decode_image(bytes, DecodeOptions{}, name);
  const int longer = std::max(img.width, img.height);
  if (longer > max_side) {
    const double s = static_cast<double>(max_side) / longer;
    const int w = std::max(1, static_cast<int>(std::lround(img.width * s)));
    const int h = std::max(1, static_cast<int>(std::lround(img.height * s)));
    img = resize_reference(img, w, h);
  }
  std::vector<uint8_t> rgb(static_cast<size_t>(img.width) * img.height * 3);
  convert_rgb(img, rgb.data());

  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  err.error_exit = [](j_common_ptr) { std::abort(); };  // cannot happen for valid RGB rows
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&c, &out, &out_size);
  c.image_width = static_cast<JDIMENSION>(img.width);
  c.image_height = static_cast<JDIMENSION>(img.height);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, std::clamp(quality, 1, 100), TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = rgb.data() + static_cast<size_t>(c.next_scanline) * img.width * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> jpeg(out, out + out_size);
  jpeg_destroy_compress(&c);
  std::free(out);
  return jpeg;
}

}  // namespace clipserve::image

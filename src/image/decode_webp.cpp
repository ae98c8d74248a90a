// WebP decoding as Pillow 9.4 does it: libwebp's WebPAnimDecoder (RGBA, fancy upsampling),
// first frame, mode RGBA when the file has alpha and RGB otherwise.
#include <webp/decode.h>
#include <webp/demux.h>

#include <cstring>

#include "core/check.h"
#include "image/decode.h"

namespace clipserve::image {

namespace {
struct AnimDecoder {
  WebPAnimDecoder* d = nullptr;
  ~AnimDecoder() {
    if (d != nullptr) WebPAnimDecoderDelete(d);
  }
};
}  // namespace

Image decode_webp(std::span<const uint8_t> bytes, const DecodeOptions& opt,
                  const std::string& name) {
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(bytes.data(), bytes.size(), &features) != VP8_STATUS_OK) {
    CS_THROW(kInvalidArgument, name, ": corrupt or truncated WebP header");
  }
  // The size limit before libwebp allocates the canvas. (No bytes-per-pixel bound is
  // possible: a one-symbol VP8L Huffman code costs 0 bits per pixel, so a tiny valid file can
  // declare a huge solid image; the pixel limit is what bounds the cost.)
  check_dimensions(features.width, features.height, opt, name);
  WebPData data{bytes.data(), bytes.size()};
  WebPAnimDecoderOptions dopt;
  CS_ASSERT(WebPAnimDecoderOptionsInit(&dopt));
  dopt.color_mode = MODE_RGBA;
  dopt.use_threads = 0;
  AnimDecoder dec;
  dec.d = WebPAnimDecoderNew(&data, &dopt);
  CS_CHECK_ARG(dec.d != nullptr, name, ": corrupt WebP file");
  WebPAnimInfo info;
  CS_CHECK_ARG(WebPAnimDecoderGetInfo(dec.d, &info), name, ": corrupt WebP file");
  check_dimensions(info.canvas_width, info.canvas_height, opt, name);
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.d, &rgba, &timestamp) || rgba == nullptr) {
    CS_THROW(kInvalidArgument, name, ": corrupt or truncated WebP image data");
  }
  Image img;
  const int w = static_cast<int>(info.canvas_width), h = static_cast<int>(info.canvas_height);
  const size_t n = static_cast<size_t>(w) * h;
  if (features.has_alpha) {
    img.allocate(Mode::kRGBA, w, h, /*zero=*/false);
    std::memcpy(img.bytes.data(), rgba, n * 4);
  } else {
    img.allocate(Mode::kRGB, w, h, /*zero=*/false);
    uint8_t* out = img.bytes.data();
    for (size_t i = 0; i < n; ++i) {
      out[3 * i] = rgba[4 * i];
      out[3 * i + 1] = rgba[4 * i + 1];
      out[3 * i + 2] = rgba[4 * i + 2];
    }
  }
  return img;
}

}  // namespace clipserve::image

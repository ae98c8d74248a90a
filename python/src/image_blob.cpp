// Blobs for paths and decoded pixels from Python, and the front-end that preprocesses them:
// the decoded image goes through the same Pillow-exact resize, crop and convert as a file.
#include "image_blob.h"

#include <cstring>
#include <random>

#include "core/check.h"
#include "core/file.h"
#include "image/decode.h"
#include "image/resample.h"

namespace clipserve::python {

namespace {

// Magic + a per-process random token: bytes from outside this process cannot pose as a blob
// (they would take the ordinary decode path and fail as an unknown image format).
constexpr char kMagic[8] = {'\0', 'C', 'S', 'P', 'Y', 'I', 'M', 'G'};
constexpr size_t kTokenSize = 16;
constexpr size_t kHeaderSize = 8 + kTokenSize + 4 + 8;  // magic, token, kind+mode+pad, w, h

const std::array<uint8_t, kTokenSize>& token() {
  static const std::array<uint8_t, kTokenSize> t = [] {
    std::array<uint8_t, kTokenSize> a{};
    std::random_device rd;
    for (auto& b : a) b = static_cast<uint8_t>(rd());
    return a;
  }();
  return t;
}

enum Kind : uint8_t { kPath = 'P', kPixels = 'R' };

std::vector<uint8_t> header(Kind kind, image::Mode mode, int32_t w, int32_t h, size_t extra) {
  std::vector<uint8_t> b(kHeaderSize);
  b.reserve(kHeaderSize + extra);
  std::memcpy(b.data(), kMagic, 8);
  std::memcpy(b.data() + 8, token().data(), kTokenSize);
  b[24] = kind;
  b[25] = static_cast<uint8_t>(mode);
  std::memcpy(b.data() + 28, &w, 4);
  std::memcpy(b.data() + 32, &h, 4);
  return b;
}

bool is_blob(std::span<const uint8_t> b) {
  return b.size() >= kHeaderSize && std::memcmp(b.data(), kMagic, 8) == 0 &&
         std::memcmp(b.data() + 8, token().data(), kTokenSize) == 0;
}

bool parse_mode(const std::string& s, image::Mode* m) {
  static const std::pair<const char*, image::Mode> kModes[] = {
      {"1", image::Mode::k1},       {"L", image::Mode::kL},     {"P", image::Mode::kP},
      {"LA", image::Mode::kLA},     {"RGB", image::Mode::kRGB}, {"RGBA", image::Mode::kRGBA},
      {"CMYK", image::Mode::kCMYK}, {"I", image::Mode::kI}};
  for (const auto& [name, mode] : kModes) {
    if (s == name) {
      *m = mode;
      return true;
    }
  }
  return false;
}

size_t bytes_per_pixel(image::Mode m) {
  return m == image::Mode::kI ? sizeof(int32_t) : static_cast<size_t>(image::channels(m));
}

// Resize(S) + CenterCrop(S) + convert("RGB") + ToTensor + Normalize of decoded pixels, as
// preprocess_image does after decoding.
void preprocess_pixels(const image::Image& img, const PreprocessOptions& opt, float* out) {
  const int S = opt.size;
  const image::Geometry g = image::plan_geometry(img.width, img.height, S);
  const image::Image crop = image::resize_crop(img, g, S);
  std::vector<uint8_t> rgb(static_cast<size_t>(S) * S * 3);
  image::convert_rgb(crop, rgb.data());
  normalize_rgb8(rgb.data(), opt, out);
}

}  // namespace

std::vector<uint8_t> pack_path(const std::string& path) {
  auto b = header(kPath, image::Mode::kRGB, 0, 0, path.size());
  b.insert(b.end(), path.begin(), path.end());
  return b;
}

std::vector<uint8_t> pack_pixels(const RawPixels& px, const std::string& name) {
  image::Mode mode;
  CS_CHECK_ARG(parse_mode(px.mode, &mode), name, ": pixel mode '", px.mode,
               "' is not one of 1, L, P, LA, RGB, RGBA, CMYK, I");
  image::DecodeOptions dopt;
  image::check_dimensions(px.width, px.height, dopt, name);
  const size_t want = static_cast<size_t>(px.width) * px.height * bytes_per_pixel(mode);
  CS_CHECK_ARG(px.data.size() == want, name, ": ", px.width, "x", px.height, " ", px.mode,
               " pixels need ", want, " bytes, got ", px.data.size());
  CS_CHECK_ARG(mode != image::Mode::kP || px.palette.size() <= 768, name, ": palette of ",
               px.palette.size(), " bytes (at most 768)");
  auto b = header(kPixels, mode, px.width, px.height, 768 + px.data.size());
  std::array<uint8_t, 768> pal = image::grey_palette();
  std::memcpy(pal.data(), px.palette.data(), px.palette.size());
  b.insert(b.end(), pal.begin(), pal.end());
  b.insert(b.end(), px.data.begin(), px.data.end());
  return b;
}

void preprocess_blob(std::span<const uint8_t> blob, const PreprocessOptions& opt, float* out,
                     const std::string& name) {
  if (!is_blob(blob)) {
    preprocess_image(blob, opt, out, name);
    return;
  }
  const auto kind = static_cast<Kind>(blob[24]);
  if (kind == kPath) {
    const std::string path(reinterpret_cast<const char*>(blob.data()) + kHeaderSize,
                           blob.size() - kHeaderSize);
    const MappedFile file(path);
    preprocess_image(file.bytes(), opt, out, name);
    return;
  }
  CS_ASSERT(kind == kPixels);
  image::Image img;
  int32_t w, h;
  std::memcpy(&w, blob.data() + 28, 4);
  std::memcpy(&h, blob.data() + 32, 4);
  const auto mode = static_cast<image::Mode>(blob[25]);
  const uint8_t* pal = blob.data() + kHeaderSize;
  const uint8_t* data = pal + 768;
  const size_t n = static_cast<size_t>(w) * h * bytes_per_pixel(mode);
  CS_ASSERT(blob.size() == kHeaderSize + 768 + n);  // pack_pixels checked the sizes
  img.allocate(mode, w, h, /*zero=*/false);
  if (mode == image::Mode::kI) {
    std::memcpy(img.ints.data(), data, n);
  } else {
    std::memcpy(img.bytes.data(), data, n);
  }
  std::memcpy(img.palette.data(), pal, 768);
  img.full_width = w;
  img.full_height = h;
  preprocess_pixels(img, opt, out);
}

EngineFrontends python_frontends(const ModelConfig& cfg) {
  EngineFrontends fe = Engine::default_frontends(cfg);
  const PreprocessOptions popt = PreprocessOptions::from(cfg.preprocess);
  fe.preprocess = [popt](std::span<const uint8_t> bytes, float* out, const std::string& name,
                         double* /*decode_ms*/) { preprocess_blob(bytes, popt, out, name); };
  return fe;
}

}  // namespace clipserve::python

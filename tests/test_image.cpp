// Image decoding + preprocessing: bit-exact against open_clip/Pillow goldens (the in-repo set
// always, ../shared's set when present), the fast paths against the plain references on
// random images, and bad input (truncated, corrupt, oversized) giving clear errors.
#include <zlib.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

// jpeglib.h needs size_t/FILE first.
#include <jpeglib.h>

#include <nlohmann/json.hpp>

#include "clipserve/error.h"
#include "clipserve/image.h"
#include "core/file.h"
#include "core/npy.h"
#include "image/decode.h"
#include "image/resample.h"
#include "testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;
using image::Image;
using image::Mode;

std::string image_dir() { return test::data_dir() + "/image"; }

Image decode_file(const std::string& path, bool reference_png = false) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  image::DecodeOptions opt;
  opt.png_reference = reference_png;
  return image::decode_image(bytes, opt, path);
}

std::vector<uint8_t> rgb_of(const Image& img) {
  std::vector<uint8_t> rgb(static_cast<size_t>(img.width) * img.height * 3);
  image::convert_rgb(img, rgb.data());
  return rgb;
}

struct IndexEntry {
  std::string file, mode;
  int size;
  std::string golden;
};

std::vector<IndexEntry> read_index() {
  std::ifstream in(image_dir() + "/index.txt");
  std::vector<IndexEntry> v;
  IndexEntry e;
  while (in >> e.file >> e.mode >> e.size >> e.golden) v.push_back(e);
  return v;
}

// ---------------- geometry ----------------

TEST(ImageGeometry, TorchvisionRules) {
  auto g = image::plan_geometry(500, 375, 224);
  EXPECT_EQ(g.resized_w, 298);
  EXPECT_EQ(g.resized_h, 224);
  EXPECT_EQ(g.left, 37);
  EXPECT_TRUE(g.resize);
  g = image::plan_geometry(229, 224, 224);  // no resize, 2.5 rounds to 2
  EXPECT_FALSE(g.resize);
  EXPECT_EQ(g.left, 2);
  g = image::plan_geometry(343, 336, 336);  // 3.5 rounds to 4
  EXPECT_EQ(g.left, 4);
  g = image::plan_geometry(1, 120, 224);
  EXPECT_EQ(g.resized_w, 224);
  EXPECT_EQ(g.resized_h, 26880);
  EXPECT_EQ(g.top, 13328);
  g = image::plan_geometry(220, 530, 224);
  EXPECT_EQ(g.resized_h, 539);
  EXPECT_EQ(g.top, 158);
}

// ---------------- in-repo goldens ----------------

TEST(ImageGolden, InRepoCropsMatchPillow) {
  const auto index = read_index();
  ASSERT_GT(index.size(), 50u);
  for (const auto& e : index) {
    if (e.mode == "transposed") continue;
    const std::string path = image_dir() + "/" + e.file;
    const Image decoded = decode_file(path);
    EXPECT_STREQ(image::mode_name(decoded.mode), e.mode.c_str()) << path;
    const Image golden = decode_file(image_dir() + "/" + e.golden);
    ASSERT_EQ(golden.mode, Mode::kRGB);
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    for (bool reference : {false, true}) {
      PreprocessOptions opt;
      opt.size = e.size;
      opt.reference = reference;
      const std::vector<uint8_t> rgb = preprocess_image_rgb8(bytes, opt, path);
      const std::vector<uint8_t> want = rgb_of(golden);
      ASSERT_EQ(rgb.size(), want.size());
      EXPECT_TRUE(rgb == want) << path << " S=" << e.size << " reference=" << reference;
      // The float tensor is ToTensor/Normalize of exactly that crop.
      std::vector<float> t(rgb.size()), ref(rgb.size());
      preprocess_image(bytes, opt, t.data(), path);
      image::normalize_reference(want.data(), e.size, e.size, opt.mean, opt.std, ref.data());
      EXPECT_EQ(std::memcmp(t.data(), ref.data(), t.size() * sizeof(float)), 0) << path;
    }
  }
}

TEST(ImageGolden, ExifOrientationIgnoredByDefaultAppliedOnRequest) {
  const std::string path = image_dir() + "/exif_orientation6.jpg";
  const Image img = decode_file(path);
  EXPECT_EQ(img.exif_orientation, 6);
  EXPECT_EQ(img.width, 96);  // stored pixel order, as Pillow's Image.open
  const Image t = image::apply_orientation(img, img.exif_orientation);
  const Image golden = decode_file(image_dir() + "/golden/exif_transposed.png");
  ASSERT_EQ(t.width, golden.width);
  ASSERT_EQ(t.height, golden.height);
  EXPECT_TRUE(rgb_of(t) == rgb_of(golden));
  // Every orientation is a permutation whose inverse brings the pixels back.
  const int inverse[9] = {0, 1, 2, 3, 4, 5, 8, 7, 6};
  for (int o = 1; o <= 8; ++o) {
    const Image back = image::apply_orientation(image::apply_orientation(img, o), inverse[o]);
    EXPECT_TRUE(rgb_of(back) == rgb_of(img)) << "orientation " << o;
  }
  PreprocessOptions opt;
  opt.size = 32;
  opt.apply_exif_orientation = true;
  const auto bytes = read_file_bytes(path);
  const auto a = preprocess_image_rgb8(bytes, opt, path);
  opt.reference = true;
  EXPECT_TRUE(a == preprocess_image_rgb8(bytes, opt, path));
  opt.apply_exif_orientation = false;
  EXPECT_FALSE(a == preprocess_image_rgb8(bytes, opt, path));
}

// ---------------- ../shared goldens (open_clip tensors) ----------------

TEST(ImageGolden, SharedOpenClipTensorsBitIdentical) {
  CS_REQUIRE_SHARED(fixtures);
  const std::string dir = fixtures + "/golden/preprocess";
  const auto manifest = nlohmann::json::parse(read_file_text(dir + "/manifest.json"));
  int checked = 0;
  for (const auto& im : manifest["images"]) {
    const std::string path = dir + "/" + im["file"].get<std::string>();
    const std::vector<uint8_t> bytes = read_file_bytes(path);
    for (const auto& [size_str, gold] : im["goldens"].items()) {
      const NpyArray want = read_npy(dir + "/" + gold["npy"].get<std::string>());
      ASSERT_EQ(want.dtype, "<f4");
      for (bool reference : {false, true}) {
        PreprocessOptions opt;
        opt.size = std::stoi(size_str);
        opt.reference = reference;
        std::vector<float> got(static_cast<size_t>(3) * opt.size * opt.size);
        preprocess_image(bytes, opt, got.data(), path);
        ASSERT_EQ(want.bytes.size(), got.size() * sizeof(float)) << path;
        EXPECT_EQ(std::memcmp(want.bytes.data(), got.data(), want.bytes.size()), 0)
            << path << " S=" << opt.size << " reference=" << reference;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 2 * (43 + 7));  // the README's 43 images at 224 and 7 at 336
}

// ---------------- fast vs reference on random images ----------------

Image random_image(std::mt19937& rng, Mode mode, int w, int h) {
  Image img;
  img.allocate(mode, w, h);
  std::uniform_int_distribution<int> byte(0, 255);
  img.palette = image::grey_palette();
  for (auto& v : img.palette) v = static_cast<uint8_t>(byte(rng));
  if (mode == Mode::kI) {
    std::uniform_int_distribution<int> v16(0, 65535);
    for (auto& v : img.ints) v = v16(rng);
    return img;
  }
  const size_t n = static_cast<size_t>(w) * h * image::channels(mode);
  // Smooth-ish content with some noise and some extreme alphas.
  for (size_t i = 0; i < n; ++i) {
    int v = byte(rng);
    if (mode == Mode::k1) v = v < 128 ? 0 : 255;
    img.bytes[i] = static_cast<uint8_t>(v);
  }
  if (mode == Mode::kRGBA || mode == Mode::kLA) {
    const int C = image::channels(mode);
    for (size_t i = C - 1; i < n; i += C) {
      const int r = byte(rng);
      if (r < 40) img.bytes[i] = 0;
      if (r > 215) img.bytes[i] = 255;
    }
  }
  return img;
}

TEST(ImageResample, CropAwareKernelsMatchReference) {
  std::mt19937 rng(42);
  std::vector<const image::Kernels*> variants{&image::kernels_scalar()};
  if (auto* k = image::kernels_avx2()) variants.push_back(k);
  if (auto* k = image::kernels_avx512()) variants.push_back(k);
  std::printf("kernel variants tested:");
  for (auto* k : variants) std::printf(" %s", k->name);
  std::printf("\n");
  const Mode modes[] = {Mode::kL,    Mode::kLA, Mode::kRGB, Mode::kRGBA,
                        Mode::kCMYK, Mode::kP,  Mode::k1,   Mode::kI};
  std::uniform_int_distribution<int> dim(1, 260);
  const int sizes[] = {1, 7, 32, 64, 224};
  int cases = 0;
  for (int iter = 0; iter < 60; ++iter) {
    for (Mode mode : modes) {
      const int w = dim(rng), h = dim(rng);
      const int S = sizes[iter % 5];
      const Image img = random_image(rng, mode, w, h);
      const image::Geometry g = image::plan_geometry(w, h, S);
      Image ref = g.resize ? image::resize_reference(img, g.resized_w, g.resized_h) : img;
      ref = image::crop_reference(ref, g.left, g.top, S, S);
      for (const auto* kern : variants) {
        const Image got = image::resize_crop_with(img, g, S, *kern);
        ASSERT_EQ(got.mode, ref.mode);
        EXPECT_TRUE(rgb_of(got) == rgb_of(ref))
            << image::mode_name(mode) << " " << w << "x" << h << " S=" << S << " " << kern->name;
        if (mode != Mode::kI) {
          EXPECT_EQ(std::memcmp(got.bytes.data(), ref.bytes.data(),
                                static_cast<size_t>(S) * S * image::channels(mode)),
                    0);
        }
        ++cases;
      }
      // A region of the image (as the JPEG region decode gives) is enough.
      const image::Region r = image::source_region(w, h, mode, g, S);
      if (mode != Mode::kI) {
        Image part = image::crop_reference(img, r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
        part.origin_x = r.x0;
        part.origin_y = r.y0;
        part.full_width = w;
        part.full_height = h;
        const Image got = image::resize_crop(part, g, S);
        EXPECT_TRUE(rgb_of(got) == rgb_of(ref)) << "region " << image::mode_name(mode);
      }
    }
  }
  EXPECT_GT(cases, 400);
}

TEST(ImageResample, LargeDownscalesMatchReference) {
  std::mt19937 rng(7);
  for (auto [w, h, S] : {std::tuple{2000, 1500, 224}, {1000, 3000, 336}, {640, 425, 224}}) {
    for (Mode mode : {Mode::kRGB, Mode::kRGBA, Mode::kL}) {
      const Image img = random_image(rng, mode, w, h);
      const image::Geometry g = image::plan_geometry(w, h, S);
      const Image ref = image::crop_reference(
          image::resize_reference(img, g.resized_w, g.resized_h), g.left, g.top, S, S);
      EXPECT_TRUE(rgb_of(image::resize_crop(img, g, S)) == rgb_of(ref))
          << w << "x" << h << " " << image::mode_name(mode);
    }
  }
}

TEST(ImageResample, NormalizeLutMatchesDivision) {
  std::vector<uint8_t> rgb(256 * 3);
  for (int i = 0; i < 256 * 3; ++i) rgb[i] = static_cast<uint8_t>(i / 3);
  PreprocessOptions opt;
  std::vector<float> a(rgb.size()), b(rgb.size());
  image::normalize_reference(rgb.data(), 256, 1, opt.mean, opt.std, a.data());
  image::normalize_lut(rgb.data(), 256, 1, opt.mean, opt.std, b.data());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
}

// ---------------- decoders: fast paths vs references ----------------

std::vector<uint8_t> encode_jpeg(std::mt19937& rng, int w, int h, int comps, int hs, int vs,
                                 bool progressive, bool smooth = false) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = comps;
  c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 85, TRUE);
  if (comps == 3) {
    c.comp_info[0].h_samp_factor = hs;
    c.comp_info[0].v_samp_factor = vs;
  }
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  std::vector<uint8_t> row(static_cast<size_t>(w) * comps);
  std::uniform_int_distribution<int> noise(-20, 20);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w * comps; ++x) {
      const int v = smooth ? static_cast<int>(128 + 100 * std::sin(x / 40.0) * std::cos(y / 30.0))
                           : (x * 7 + y * 3) % 256 + noise(rng);
      row[x] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> out(buf, buf + size);
  std::free(buf);
  jpeg_destroy_compress(&c);
  return out;
}

TEST(ImageDecode, JpegRegionDecodeMatchesFullDecode) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> dim(8, 300);
  const int sampling[][2] = {{1, 1}, {2, 1}, {2, 2}, {1, 2}};
  for (int iter = 0; iter < 40; ++iter) {
    const int w = dim(rng), h = dim(rng);
    const int comps = iter % 8 == 0 ? 1 : iter % 8 == 1 ? 4 : 3;
    const auto* s = sampling[iter % 4];
    const auto jpg = encode_jpeg(rng, w, h, comps, s[0], s[1], iter % 3 == 0);
    image::DecodeOptions opt;
    const Image full = image::decode_jpeg(jpg, opt, "mem.jpg");
    std::uniform_int_distribution<int> xs(0, w - 1), ys(0, h - 1);
    image::Region r;
    r.x0 = xs(rng);
    r.x1 = std::min(w, r.x0 + 1 + xs(rng) / 2);
    r.y0 = ys(rng);
    r.y1 = std::min(h, r.y0 + 1 + ys(rng) / 2);
    opt.region = &r;
    const Image part = image::decode_jpeg(jpg, opt, "mem.jpg");
    ASSERT_LE(part.origin_x, r.x0);
    ASSERT_GE(part.origin_x + part.width, r.x1);
    const int C = image::channels(full.mode);
    for (int y = r.y0; y < r.y1; ++y) {
      ASSERT_EQ(std::memcmp(full.row(y) + r.x0 * C,
                            part.row(y - part.origin_y) + (r.x0 - part.origin_x) * C,
                            static_cast<size_t>(r.x1 - r.x0) * C),
                0)
          << w << "x" << h << " comps " << comps << " sampling " << s[0] << "x" << s[1] << " row "
          << y;
    }
  }
}

std::vector<uint8_t> png_chunk(const char* type, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  const uint32_t n = static_cast<uint32_t>(data.size());
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(type[i]));
  for (uint8_t v : data) out.push_back(v);
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type), 4);
  crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  return out;
}

// A PNG with random filter bytes and random data: every decoder must agree on the pixels.
std::vector<uint8_t> random_png(std::mt19937& rng, int w, int h, int ctype, int depth) {
  const int spp = ctype == 2 ? 3 : ctype == 4 ? 2 : ctype == 6 ? 4 : 1;
  const size_t rowbytes = (static_cast<size_t>(w) * spp * depth + 7) / 8;
  std::vector<uint8_t> raw;
  std::uniform_int_distribution<int> byte(0, 255), filter(0, 4);
  for (int y = 0; y < h; ++y) {
    raw.push_back(static_cast<uint8_t>(filter(rng)));
    for (size_t i = 0; i < rowbytes; ++i) raw.push_back(static_cast<uint8_t>(byte(rng) & 0xF7));
  }
  uLongf zsize = compressBound(raw.size());
  std::vector<uint8_t> z(zsize);
  compress(z.data(), &zsize, raw.data(), raw.size());
  z.resize(zsize);
  std::vector<uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr{uint8_t(w >> 24),
                            uint8_t(w >> 16),
                            uint8_t(w >> 8),
                            uint8_t(w),
                            uint8_t(h >> 24),
                            uint8_t(h >> 16),
                            uint8_t(h >> 8),
                            uint8_t(h),
                            uint8_t(depth),
                            uint8_t(ctype),
                            0,
                            0,
                            0};
  auto add = [&](const std::vector<uint8_t>& c) { png.insert(png.end(), c.begin(), c.end()); };
  add(png_chunk("IHDR", ihdr));
  if (ctype == 3) {
    std::vector<uint8_t> plte(3 * 20);
    for (auto& v : plte) v = static_cast<uint8_t>(byte(rng));
    add(png_chunk("PLTE", plte));
  }
  // Split the stream over two IDAT chunks.
  const size_t half = z.size() / 2;
  add(png_chunk("IDAT", std::vector<uint8_t>(z.begin(), z.begin() + half)));
  add(png_chunk("IDAT", std::vector<uint8_t>(z.begin() + half, z.end())));
  add(png_chunk("IEND", {}));
  return png;
}

TEST(ImageDecode, PngFastPathMatchesLibpng) {
  std::mt19937 rng(5);
  const int kinds[][2] = {{0, 1}, {0, 2}, {0, 4}, {0, 8}, {0, 16}, {2, 8}, {2, 16}, {3, 1},
                          {3, 2}, {3, 4}, {3, 8}, {4, 8}, {4, 16}, {6, 8}, {6, 16}};
  std::uniform_int_distribution<int> dim(1, 90);
  for (int iter = 0; iter < 4; ++iter) {
    for (const auto& k : kinds) {
      const auto png = random_png(rng, dim(rng), dim(rng), k[0], k[1]);
      image::DecodeOptions opt;
      const Image fast = image::decode_png(png, opt, "mem.png");
      const Image ref = image::decode_png_libpng(png, opt, "mem.png");
      ASSERT_EQ(fast.mode, ref.mode);
      // (Palettes may differ past 2^depth entries, which no pixel can use: libpng drops them.)
      EXPECT_TRUE(fast.bytes == ref.bytes && fast.ints == ref.ints && rgb_of(fast) == rgb_of(ref))
          << "colour type " << k[0] << " depth " << k[1];
    }
  }
}

// ---------------- bad input ----------------

void expect_error(std::span<const uint8_t> bytes, const std::string& name, ErrorCode code) {
  PreprocessOptions opt;
  opt.size = 32;
  std::vector<float> out(3 * 32 * 32);
  for (bool reference : {false, true}) {
    opt.reference = reference;
    try {
      preprocess_image(bytes, opt, out.data(), name);
      ADD_FAILURE() << name << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(ImageErrors, TruncatedFilesFailWithTheirName) {
  for (const char* f : {"rgb_420.jpg", "rgb_444_progressive.jpg", "rgba.png", "palette.png",
                        "palette.gif", "rgb24.bmp", "lossy.webp", "gray.tif", "interlaced.png"}) {
    const auto bytes = read_file_bytes(image_dir() + "/" + f);
    for (double frac : {0.1, 0.5, 0.9}) {
      const size_t n = static_cast<size_t>(bytes.size() * frac);
      expect_error(std::span(bytes.data(), n), std::string("trunc_") + f,
                   ErrorCode::kInvalidArgument);
    }
  }
}

TEST(ImageErrors, GarbageAndEmpty) {
  std::vector<uint8_t> junk(1000);
  std::mt19937 rng(1);
  for (auto& v : junk) v = static_cast<uint8_t>(rng());
  expect_error(junk, "junk.bin", ErrorCode::kInvalidArgument);
  expect_error({}, "empty.jpg", ErrorCode::kInvalidArgument);
  // A valid JPEG header followed by garbage.
  auto jpg = read_file_bytes(image_dir() + "/rgb_420.jpg");
  for (size_t i = 700; i < jpg.size(); i += 3) jpg[i] = static_cast<uint8_t>(rng());
  PreprocessOptions opt;
  std::vector<float> out(3 * 224 * 224);
  try {
    preprocess_image(jpg, opt, out.data(), "noisy.jpg");  // libjpeg may recover, as Pillow
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("noisy.jpg"), std::string::npos);
  }
}

TEST(ImageErrors, DecompressionBombGuard) {
  std::mt19937 rng(2);
  // A 20000 x 20000 PNG header (400 M pixels) is rejected before any allocation.
  auto png = random_png(rng, 4, 4, 2, 8);
  const uint32_t big = 20000;
  for (int i = 0; i < 2; ++i) {
    for (int b = 0; b < 4; ++b) png[16 + 4 * i + b] = static_cast<uint8_t>(big >> (24 - 8 * b));
  }
  // Fix the IHDR CRC.
  uLong crc = crc32(0, png.data() + 12, 17);
  for (int b = 0; b < 4; ++b) png[29 + b] = static_cast<uint8_t>(crc >> (24 - 8 * b));
  expect_error(png, "bomb.png", ErrorCode::kTooLarge);
  // A configurable limit.
  PreprocessOptions opt;
  opt.max_pixels = 1000;
  const auto jpg = read_file_bytes(image_dir() + "/rgb_420.jpg");
  std::vector<float> out(3 * 224 * 224);
  EXPECT_THROW(preprocess_image(jpg, opt, out.data(), "x.jpg"), Error);
  opt.max_pixels = 157 * 103;
  EXPECT_NO_THROW(preprocess_image(jpg, opt, out.data(), "x.jpg"));
}

// ---------------- fast mode ----------------

TEST(ImageFastMode, CloseToExact) {
  std::mt19937 rng(9);
  const auto jpg = encode_jpeg(rng, 1200, 900, 3, 2, 2, false, /*smooth=*/true);
  PreprocessOptions opt;
  std::vector<float> exact(3 * 224 * 224), fast(exact.size());
  preprocess_image(jpg, opt, exact.data(), "a.jpg");
  opt.fast = true;
  preprocess_image(jpg, opt, fast.data(), "a.jpg");
  EXPECT_GT(test::max_abs_diff(exact, fast), 0.0f);  // it really took the other path
  EXPECT_GT(test::cosine(exact, fast), 0.99);
}

// ---------------- CLI ----------------

TEST(ImageCli, PreprocessWritesNpyAndReportsFailures) {
  const std::string out = test::temp_dir();
  const std::string bad = out + "/bad.jpg";
  std::ofstream(bad) << "not an image";
  const std::string good = image_dir() + "/rgba.png";
  const auto [status, text] = test::run_command(test::cli_path() + " preprocess --size 80 --out " +
                                                out + "/o " + good + " " + bad + " 2>&1");
  EXPECT_NE(status, 0);
  EXPECT_NE(text.find("bad.jpg"), std::string::npos) << text;
  const NpyArray a = read_npy(out + "/o/rgba.png.npy");
  EXPECT_EQ(a.dtype, "<f4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 80, 80}));
  PreprocessOptions opt;
  opt.size = 80;
  const auto want = preprocess_file(good, opt);
  EXPECT_EQ(std::memcmp(a.bytes.data(), want.data(), a.bytes.size()), 0);
  EXPECT_FALSE(fs::exists(out + "/o/bad.jpg.npy"));
}

}  // namespace
}  // namespace clipserve

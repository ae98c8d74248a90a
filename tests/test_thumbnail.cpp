// Thumbnails of image documents: bounded size, aspect kept, never upscaled, a real JPEG of the
// same picture; undecodable input is an error naming it.
#include <gtest/gtest.h>

#include "clipserve/error.h"
#include "engine_testing.h"
#include "image/decode.h"
#include "image/thumbnail.h"

namespace clipserve::image {
namespace {

TEST(Thumbnail, LongSideBoundedAspectKeptJpegOut) {
  const auto png = test::read_bytes(test::data_dir() + "/image/rgba.png");
  const Image src = decode_image(png, DecodeOptions{}, "rgba.png");
  const auto jpeg = make_thumbnail_jpeg(png, 64, "rgba.png");
  ASSERT_EQ(sniff_format(jpeg), Format::kJpeg);
  const Image t = decode_image(jpeg, DecodeOptions{}, "thumb");
  EXPECT_EQ(std::max(t.width, t.height), 64);
  const double want = static_cast<double>(src.width) / src.height;
  EXPECT_NEAR(static_cast<double>(t.width) / t.height, want, 0.05);
  EXPECT_EQ(t.mode, Mode::kRGB);
}

TEST(Thumbnail, SmallImagesAreNotUpscaledAndEveryFormatWorks) {
  for (const char* f : {"gray.jpg", "palette.gif", "lossy.webp", "rgb24.bmp", "gray16.png"}) {
    const auto bytes = test::read_bytes(test::data_dir() + "/image/" + f);
    const Image src = decode_image(bytes, DecodeOptions{}, f);
    const Image t = decode_image(make_thumbnail_jpeg(bytes, 4096, f), DecodeOptions{}, "t");
    EXPECT_EQ(t.width, src.width) << f;
    EXPECT_EQ(t.height, src.height) << f;
  }
}

TEST(Thumbnail, CorruptInputIsAnErrorNamingIt) {
  auto bytes = test::read_bytes(test::data_dir() + "/image/rgb_420.jpg");
  bytes.resize(100);
  try {
    make_thumbnail_jpeg(bytes, 256, "doc7");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("doc7"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace clipserve::image

// Tests of src/core: .npy round trips and malformed input, argument parsing, file errors.
#include <filesystem>

#include "cli/command.h"
#include "clipserve/error.h"
#include "core/file.h"
#include "core/npy.h"
#include "testing.h"

namespace clipserve {
namespace {

TEST(Npy, RoundTrip) {
  std::vector<float> v = {1.5f, -2.f, 3.25f, 0.f, 7.f, 8.f};
  std::string path = test::temp_dir() + "/a.npy";
  write_npy_f32(path, v, {2, 3});
  NpyArray a = read_npy(path);
  EXPECT_EQ(a.dtype, "<f4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.to_f32(), v);
  EXPECT_EQ((std::filesystem::file_size(path) - 6 * 4) % 64, 0u);  // header aligned to 64
}

TEST(Npy, RejectsTruncatedAndGarbage) {
  std::vector<float> v(12, 1.f);
  auto bytes = encode_npy_f32(v, {3, 4});
  for (size_t cut : {size_t(0), size_t(5), size_t(20), bytes.size() - 1}) {
    std::span<const uint8_t> s(bytes.data(), cut);
    EXPECT_THROW(parse_npy(s, "x.npy"), Error) << cut;
  }
  std::vector<uint8_t> junk(100, 'a');
  EXPECT_THROW(parse_npy(junk, "junk"), Error);
}

TEST(File, MissingFileNamesPath) {
  try {
    MappedFile f("/nonexistent/file.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.bin"), std::string::npos);
  }
}

TEST(Args, ParsesOptionsFlagsAndLists) {
  cli::Args a;
  a.option("model").option("batch").flag("raw");
  const char* argv[] = {"embed", "--model", "m", "--batch=1,16", "--raw", "x.npy", "--", "--y"};
  a.parse(8, const_cast<char**>(argv));
  EXPECT_EQ(a.get_or("model", ""), "m");
  EXPECT_TRUE(a.has("raw"));
  EXPECT_EQ(a.get_int_list("batch", {}), (std::vector<int>{1, 16}));
  EXPECT_EQ(a.positional(), (std::vector<std::string>{"x.npy", "--y"}));
  cli::Args b;
  const char* bad[] = {"x", "--nope"};
  EXPECT_THROW(b.parse(2, const_cast<char**>(bad)), Error);
}

}  // namespace
}  // namespace clipserve

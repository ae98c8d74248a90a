// libFuzzer target: the whole preprocess chain (every decoder by magic number, the exact and
// reference paths, fast mode) must give a tensor or a clipserve::Error, never crash.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "clipserve/error.h"
#include "clipserve/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  clipserve::PreprocessOptions opt;
  opt.size = 16 + (size % 3) * 24;  // 16, 40, 64
  opt.max_pixels = 4u << 20;        // keep the fuzzer's memory use bounded
  std::vector<float> out(static_cast<size_t>(3) * opt.size * opt.size);
  const std::span<const uint8_t> bytes(data, size);
  for (int variant = 0; variant < 3; ++variant) {
    opt.reference = variant == 1;
    opt.fast = variant == 2;
    try {
      clipserve::preprocess_image(bytes, opt, out.data(), "fuzz");
    } catch (const clipserve::Error&) {
    }
  }
  return 0;
}

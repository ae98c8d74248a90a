// libFuzzer target: the bmp decoder alone (bytes without the right magic are given it so the
// fuzzer explores past the header); a decoded image or a clipserve::Error, never a crash.
#include <cstddef>
#include <cstdint>

#include "clipserve/error.h"
#include "image/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  clipserve::image::DecodeOptions opt;
  opt.max_pixels = 4u << 20;
  try {
    clipserve::image::decode_bmp({data, size}, opt, "fuzz");
  } catch (const clipserve::Error&) {
  }
  return 0;
}

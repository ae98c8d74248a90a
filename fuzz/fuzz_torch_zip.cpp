// libFuzzer target: the zip reader and restricted unpickler behind torch .bin/.pt loading must
// turn any input into a WeightMap or a clipserve::Error: no crash, hang, leak or execution.
#include <cstddef>
#include <cstdint>
#include <span>

#include "clipserve/error.h"
#include "model/torch_zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    clipserve::parse_torch_checkpoint(std::span<const uint8_t>(data, size), "fuzz");
  } catch (const clipserve::Error&) {
  }
  return 0;
}

// libFuzzer target: open_clip_config.json parsing must turn any input into a config or a
// clipserve::Error, and a parsed config must survive a serialization round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "clipserve/error.h"
#include "clipserve/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    clipserve::ModelConfig c = clipserve::parse_model_config(text, "fuzz");
    clipserve::ModelConfig back =
        clipserve::parse_model_config(clipserve::model_config_to_json(c), "round trip");
    if (!(back == c)) std::abort();
  } catch (const clipserve::Error&) {
  }
  return 0;
}

// Images handed over from Python (file paths, decoded PIL / numpy pixels) packed into the byte
// blobs the Engine's preprocessing front-end receives, so they are read, resized and cropped
// on the engine's worker pool exactly like encoded images.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "clipserve/engine.h"
#include "clipserve/image.h"

namespace clipserve::python {

/// Decoded pixels in one of Pillow's modes ("1" as 0/255 bytes, "L", "P", "LA", "RGB",
/// "RGBA", "CMYK", "I" as native int32), rows top to bottom, channels interleaved.
struct RawPixels {
  std::string mode;
  int width = 0;
  int height = 0;
  std::span<const uint8_t> data;
  std::span<const uint8_t> palette;  ///< mode P: up to 256 RGB triples; the rest is grey
};

/// A blob that makes the front-end read `path` itself (on the worker pool).
std::vector<uint8_t> pack_path(const std::string& path);
/// A blob carrying decoded pixels. Throws Error(kInvalidArgument) naming `name` when the mode
/// is unknown or the buffer does not hold width x height pixels of that mode.
std::vector<uint8_t> pack_pixels(const RawPixels& px, const std::string& name);

/// The model's real front-ends (Engine::default_frontends) with a preprocess step that also
/// understands the blobs above. Encoded image bytes take the unchanged default path.
EngineFrontends python_frontends(const ModelConfig& cfg);

/// The preprocess step of python_frontends on its own: blob or encoded bytes -> 3 x S x S.
void preprocess_blob(std::span<const uint8_t> blob, const PreprocessOptions& opt, float* out,
                     const std::string& name);

}  // namespace clipserve::python

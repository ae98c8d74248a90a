// Pictures of detections: the original image (RGB) with each box outlined in its label's
// colour and a "label score" tag in a small built-in bitmap font, written as PNG
// (`clipserve detect --draw DIR`).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace clipserve::owlvit {

struct DrawBox {
  std::array<float, 4> box{};  ///< x0, y0, x1, y1 in pixels (may lie partly outside)
  int label_index = 0;         ///< picks the colour
  std::string text;            ///< tag drawn above the box (ASCII; others drawn as '?')
};

/// Decodes `image` (any format clipserve decodes; EXIF orientation ignored, like the boxes),
/// draws the boxes and writes `path` as an 8-bit RGB PNG. Throws Error naming `name` / `path`.
void draw_detections_png(std::span<const uint8_t> image, const std::vector<DrawBox>& boxes,
                         const std::string& path, const std::string& name);

}  // namespace clipserve::owlvit

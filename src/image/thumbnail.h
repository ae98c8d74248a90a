// Small JPEG previews of images (collections keep one per image document for the web page).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace clipserve::image {

/// Decodes `bytes` (any format decode_image reads), scales it so its longer side is at most
/// `max_side` (never up; aspect kept; Pillow's bicubic), converts to RGB and encodes a
/// baseline JPEG at `quality`. Throws Error naming `name` for undecodable input.
std::vector<uint8_t> make_thumbnail_jpeg(std::span<const uint8_t> bytes, int max_side,
                                         const std::string& name, int quality = 82);

}  // namespace clipserve::image

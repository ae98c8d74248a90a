// Decoded images in the pixel modes Pillow's Image.open produces (the mode decides how
// Pillow resizes and converts, so clipserve keeps it until convert("RGB")).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace clipserve::image {

/// Pillow's modes that clipserve decodes to. k1 holds 0/255 bytes like Pillow's "1".
enum class Mode : uint8_t { k1, kL, kP, kLA, kRGB, kRGBA, kCMYK, kI };

/// Bytes per pixel for the 8-bit modes; kI holds int32 pixels in Image::ints instead.
inline int channels(Mode m) {
  switch (m) {
    case Mode::k1:
    case Mode::kL:
    case Mode::kP:
    case Mode::kI:
      return 1;
    case Mode::kLA:
      return 2;
    case Mode::kRGB:
      return 3;
    case Mode::kRGBA:
    case Mode::kCMYK:
      return 4;
  }
  return 1;
}

const char* mode_name(Mode m);

/// An allocator that leaves new elements uninitialised (big pixel buffers that are about to be
/// overwritten should not pay for zero-filling).
template <typename T>
struct UninitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using PixelBuffer = std::vector<uint8_t, UninitAllocator<uint8_t>>;

/// Scratch buffers larger than this are released after use instead of being kept per thread.
inline constexpr size_t kMaxKeptScratch = size_t(64) << 20;

/// Extra zero bytes after the pixels of 8-bit images (SIMD over-reads land there).
inline constexpr size_t kPixelPadding = 64;

/// A decoded image, rows top to bottom, channels interleaved.
struct Image {
  Mode mode = Mode::kRGB;
  int width = 0;
  int height = 0;
  std::vector<uint8_t> bytes;          ///< 8-bit modes: width*height*channels(mode) + kPixelPadding
  std::vector<int32_t> ints;           ///< mode kI: width*height values
  std::array<uint8_t, 768> palette{};  ///< mode kP: 256 RGB entries
  int exif_orientation = 1;            ///< 1..8 from EXIF, 1 when absent
  /// Where pixel (0, 0) lies in the full image, and the full image's size (a decoder asked
  /// for a region may return only part of the image).
  int origin_x = 0;
  int origin_y = 0;
  int full_width = 0;
  int full_height = 0;

  int stride() const { return width * channels(mode); }
  const uint8_t* row(int y) const { return bytes.data() + static_cast<size_t>(y) * stride(); }
  uint8_t* row(int y) { return bytes.data() + static_cast<size_t>(y) * stride(); }
  /// Sizes the buffers for mode m; pixels are zeroed unless zero == false (padding always is).
  void allocate(Mode m, int w, int h, bool zero = true);
};

/// A palette initialised like Pillow's ImagingPaletteNew: entry i = (i, i, i), so indices past
/// a short PLTE / colour table map to grey.
std::array<uint8_t, 768> grey_palette();

}  // namespace clipserve::image

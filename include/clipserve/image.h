// Image decoding and preprocessing identical to open_clip's eval transform on Pillow 9.4 +
// torchvision 0.14: Resize(S, bicubic) on the decoded image, CenterCrop(S), convert("RGB"),
// ToTensor, Normalize.
//
//   clipserve::PreprocessOptions opt;                 // S = 224, OpenAI mean/std
//   std::vector<float> t = clipserve::preprocess_file("cat.jpg", opt);   // 3 x S x S
//
// Thread-safety: all functions are reentrant.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "clipserve/model_config.h"

namespace clipserve {

struct PreprocessOptions {
  int size = 224;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  /// Opt-in fast mode: may differ from open_clip (e.g. DCT-domain JPEG downscaling).
  bool fast = false;
  /// Pillow (and so open_clip) ignores EXIF orientation; set to apply it.
  bool apply_exif_orientation = false;
  /// Decompression-bomb guard: images with more pixels are rejected (Pillow: 2 x 89,478,485).
  uint64_t max_pixels = 2ull * 89478485ull;
  /// Use the plain reference implementation (full decode, full resize, then crop): slow, for
  /// tests. The default path gives bit-identical results.
  bool reference = false;
  /// transformers' OwlViTImageProcessor instead of open_clip's transform: convert("RGB")
  /// first, then Pillow bicubic straight to S x S (aspect ratio not kept, nothing cropped).
  /// Set by from() for resize_mode "squash_rgb_first" (OWL-ViT models).
  bool squash_rgb_first = false;

  static PreprocessOptions from(const PreprocessConfig& cfg);
};

/// Decodes `bytes` and writes the 3 x S x S float32 tensor to `out`.
/// Throws Error(kInvalidArgument / kTooLarge / kUnsupported) naming `name`.
void preprocess_image(std::span<const uint8_t> bytes, const PreprocessOptions& opt, float* out,
                      const std::string& name = "<memory>");
std::vector<float> preprocess_file(const std::string& path, const PreprocessOptions& opt);
/// preprocess_image that also reports the decoded image's width and height (after the EXIF
/// orientation when opt.apply_exif_orientation): detection boxes are scaled to it. Only the
/// squash_rgb_first transform reports them; the open_clip transform sets both to 0.
void preprocess_image(std::span<const uint8_t> bytes, const PreprocessOptions& opt, float* out,
                      const std::string& name, int* width, int* height);

/// The S x S x 3 uint8 RGB crop (rows, columns, RGB) that ToTensor/Normalize turn into the
/// tensor: for callers that normalize elsewhere (e.g. on a GPU). Same errors as above.
std::vector<uint8_t> preprocess_image_rgb8(std::span<const uint8_t> bytes,
                                           const PreprocessOptions& opt,
                                           const std::string& name = "<memory>");
/// ToTensor + Normalize of an S x S x 3 uint8 crop into 3 x S x S float32, exactly as
/// torchvision computes it ((u / 255.f - mean) / std, a true float32 division).
void normalize_rgb8(const uint8_t* rgb, const PreprocessOptions& opt, float* out);

}  // namespace clipserve

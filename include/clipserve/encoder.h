// Encoder: a loaded CLIP model on one backend; computes image and text embeddings from
// preprocessed pixels and token ids (see tokenizer.h and image.h for those).
//
//   clipserve::EncoderOptions opt;          // backend "cpu" (oneDNN), fp32
//   auto enc = clipserve::Encoder::load("models/vit-b-32", opt);
//   std::vector<float> feats(n * enc->embed_dim());
//   enc->encode_images(pixels, n, feats.data());      // pixels: n x 3 x S x S float32
//   enc->encode_texts({{49406, 320, 1125, 49407}}, out); // ids with start/end, no padding
//
// Outputs are the raw (unnormalized) features open_clip's encode_image / encode_text return.
// Thread-safety: an Encoder is NOT thread-safe; use one per thread or the Engine (engine.h),
// which serializes and batches requests. Every backend call (weight packing in load(), each
// encode) runs on the process's one compute thread (texts first), whichever thread calls, so
// the process keeps one OpenMP thread pool (docs/backends.md, "One compute thread").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clipserve/model_config.h"

namespace clipserve {

struct EncoderOptions {
  std::string backend = "cpu";     ///< "cpu" (oneDNN) or "reference" (plain, slow, exact)
  std::string precision = "fp32";  ///< "fp32"; "bf16" or "int8" on the cpu backend
  int threads = 0;                 ///< 0 = all cores
};

class Encoder {
 public:
  virtual ~Encoder() = default;

  /// Loads a model directory (open_clip_config.json + open_clip_model.safetensors).
  /// Throws Error naming the file / tensor on any problem.
  static std::unique_ptr<Encoder> load(const std::string& model_dir, const EncoderOptions& opt);

  virtual const ModelConfig& config() const = 0;
  int embed_dim() const { return config().embed_dim; }
  /// logit_scale.exp() as open_clip computes it (float32).
  virtual float logit_scale() const = 0;

  /// pixels: n x 3 x S x S float32 (S = config().vision.image_size); out: n x embed_dim.
  virtual void encode_images(const float* pixels, int n, float* out) = 0;
  /// Each row: token ids with start and end token, no padding, at most context_length ids.
  /// The pooled position is the first position of the largest id (open_clip's argmax).
  virtual void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) = 0;
};

}  // namespace clipserve

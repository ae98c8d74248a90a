// Backend interface: one loaded CLIP model on one compute backend (plain reference or the
// oneDNN CPU backend), encoding preprocessed image batches and token-id batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve::nn {

struct BackendOptions {
  std::string precision = "fp32";  ///< "fp32", "bf16" (cpu backend) or "int8"
  /// int8 on the reference backend only: activation scales per token (as the cpu backend) or,
  /// when false, one per tensor (per sequence there), for accuracy comparisons.
  bool int8_per_token = true;
  /// int8, both backends: split each row's outlier columns (|x| > 6 rms, at most 8) off the
  /// int8 part and add them in float (nn/ref_int8.h); false: plain per-token int8.
  bool int8_outliers = true;
  int threads = 0;  ///< 0 = all cores
  /// bf16 requested on a CPU without AVX512-BF16 runs fp32; set to false to throw instead.
  bool allow_precision_fallback = true;
};

/// Not thread-safe: one caller at a time (the Engine serializes).
class Backend {
 public:
  virtual ~Backend() = default;

  /// pixels: n x 3 x S x S float32 (S = cfg.vision.image_size); out: n x embed_dim, the raw
  /// (unnormalized) features of open_clip's encode_image.
  virtual void encode_images(const float* pixels, int n, float* out) = 0;
  /// The vision tower's last hidden state over every token, before ln_post (transformers'
  /// `vision_model(...).last_hidden_state`): out is n x tokens x width, token 0 the class
  /// token, then the patches row-major. Detection heads (OWL-ViT) read all of it.
  virtual void encode_image_tokens(const float* pixels, int n, float* out) = 0;
  /// Each row: token ids with start and end token, no padding, 1..context_length ids, each
  /// in [0, vocab_size). The pooled position is the first position of the largest id.
  virtual void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) = 0;

  virtual const ModelConfig& config() const = 0;
  /// "reference" or "cpu".
  virtual std::string name() const = 0;
  /// The precision actually used ("fp32" when bf16 fell back).
  virtual std::string precision() const = 0;

  /// Runs only the matmuls a forward pass of `batch` items would run (same shapes, same
  /// primitives, same weights; activations left as they are): `clipserve bench` times this as
  /// the GEMM floor. `text_tokens`: tokens per text (up to EOT) for the text tower. Returns
  /// false when the backend cannot (reference).
  virtual bool run_gemms_only(bool image_tower, int batch, int text_tokens) {
    (void)image_tower, (void)batch, (void)text_tokens;
    return false;
  }
  /// FLOPs of those matmuls (2 * M * N * K summed).
  static double gemm_flops(const ModelConfig& cfg, bool image_tower, int batch, int text_tokens);
};

/// Plain loops, double accumulation: the ground truth the optimized backends are tested against.
std::unique_ptr<Backend> make_reference_backend(const ModelConfig& cfg,
                                                std::shared_ptr<const WeightMap> weights,
                                                const BackendOptions& opt);
/// oneDNN matmuls with weights reordered once here; `weights` may be dropped afterwards.
std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& cfg,
                                          std::shared_ptr<const WeightMap> weights,
                                          const BackendOptions& opt);
/// `name`: "reference" or "cpu"; throws Error(kInvalidArgument) for others.
std::unique_ptr<Backend> make_backend(const std::string& name, const ModelConfig& cfg,
                                      std::shared_ptr<const WeightMap> weights,
                                      const BackendOptions& opt);

/// Validates a token batch against cfg (throws Error naming the row) and returns each row's
/// pooled (EOT) position: the first index of the row's largest id.
std::vector<int> check_text_batch(const ModelConfig& cfg,
                                  const std::vector<std::vector<int32_t>>& ids);

}  // namespace clipserve::nn

// Encoder (include/clipserve/encoder.h): a model directory loaded onto one backend, every
// backend call on the process's compute thread.
#include "clipserve/encoder.h"

#include <cmath>

#include "core/check.h"
#include "core/compute_thread.h"
#include "model/model_dir.h"
#include "nn/backend.h"

namespace clipserve {

namespace {

class BackendEncoder final : public Encoder {
 public:
  BackendEncoder(std::unique_ptr<nn::Backend> backend, float logit_scale)
      : backend_(std::move(backend)), logit_scale_(logit_scale) {}

  const ModelConfig& config() const override { return backend_->config(); }
  float logit_scale() const override { return logit_scale_; }
  void encode_images(const float* pixels, int n, float* out) override {
    CS_CHECK_ARG(n >= 0, "encode_images: negative batch size ", n);
    CS_CHECK_ARG(n == 0 || (pixels != nullptr && out != nullptr), "encode_images: null buffer");
    run_on_compute_thread([&] { backend_->encode_images(pixels, n, out); });
  }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) override {
    CS_CHECK_ARG(ids.empty() || out != nullptr, "encode_texts: null output buffer");
    // Texts first: a query waits for the running call only, not for queued image batches.
    run_on_compute_thread([&] { backend_->encode_texts(ids, out); }, ComputePriority::kHigh);
  }

 private:
  std::unique_ptr<nn::Backend> backend_;
  float logit_scale_;
};

}  // namespace

std::unique_ptr<Encoder> Encoder::load(const std::string& model_dir, const EncoderOptions& opt) {
  LoadedModel m = load_model_dir(model_dir);
  auto weights = std::make_shared<const WeightMap>(std::move(m.weights));
  nn::BackendOptions bo;
  bo.precision = opt.precision;
  bo.threads = opt.threads;
  // Built where it will run: weight packing opens parallel regions too (compute_thread.h).
  std::unique_ptr<nn::Backend> backend;
  run_on_compute_thread([&] { backend = nn::make_backend(opt.backend, m.config, weights, bo); });
  // open_clip: logit_scale.exp() in float32.
  const float scale = std::exp(weights->at("logit_scale").data[0]);
  return std::make_unique<BackendEncoder>(std::move(backend), scale);
}

}  // namespace clipserve

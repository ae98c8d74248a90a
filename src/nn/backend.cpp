// Backend factory and the input checks every backend shares.
#include "nn/backend.h"

#include "core/check.h"

namespace clipserve::nn {

std::vector<int> check_text_batch(const ModelConfig& cfg,
                                  const std::vector<std::vector<int32_t>>& ids) {
  std::vector<int> eot(ids.size());
  for (size_t r = 0; r < ids.size(); ++r) {
    const auto& row = ids[r];
    CS_CHECK_ARG(!row.empty(), "text ", r, ": no token ids");
    CS_CHECK_ARG(static_cast<int>(row.size()) <= cfg.text.context_length, "text ", r, ": ",
                 row.size(), " token ids, more than the context length ", cfg.text.context_length);
    int best = 0;
    for (size_t i = 0; i < row.size(); ++i) {
      CS_CHECK_ARG(row[i] >= 0 && row[i] < cfg.text.vocab_size, "text ", r, ": token id ", row[i],
                   " at position ", i, " is outside the vocabulary [0, ", cfg.text.vocab_size, ")");
      if (row[i] > row[best]) best = static_cast<int>(i);
    }
    eot[r] = best;
  }
  return eot;
}

double Backend::gemm_flops(const ModelConfig& cfg, bool image_tower, int batch, int text_tokens) {
  const bool img = image_tower;
  const double w = img ? cfg.vision.width : cfg.text.width;
  const double hidden = static_cast<int>(w * (img ? cfg.vision.mlp_ratio : cfg.text.mlp_ratio));
  const double layers = img ? cfg.vision.layers : cfg.text.layers;
  const double rows = double(batch) * (img ? cfg.vision.tokens() : text_tokens);
  double f = 2.0 * rows * layers * (3 * w * w + w * w + 2 * w * hidden);
  if (img) {
    const double p = cfg.vision.patch_size, g = cfg.vision.grid();
    f += 2.0 * batch * g * g * 3 * p * p * w;
  }
  return f;
}

std::unique_ptr<Backend> make_backend(const std::string& name, const ModelConfig& cfg,
                                      std::shared_ptr<const WeightMap> weights,
                                      const BackendOptions& opt) {
  if (name == "reference") return make_reference_backend(cfg, std::move(weights), opt);
  if (name == "cpu") return make_cpu_backend(cfg, std::move(weights), opt);
  CS_THROW(kInvalidArgument, "unknown backend '", name, "' (expected cpu or reference)");
}

}  // namespace clipserve::nn

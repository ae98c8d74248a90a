// Engine::load and the default front-ends: wires the real Encoder, Tokenizer and image
// preprocessing into the engine (kept apart so tests can build engines on test doubles).
#include <filesystem>

#include "clipserve/engine.h"
#include "clipserve/image.h"
#include "clipserve/tokenizer.h"

namespace clipserve {

EngineFrontends Engine::default_frontends(const ModelConfig& cfg, uint64_t max_pixels) {
  EngineFrontends fe;
  fe.tokenize = [](std::string_view text, int context_length) {
    return Tokenizer::get().encode(text, context_length).ids;
  };
  PreprocessOptions popt = PreprocessOptions::from(cfg.preprocess);
  if (max_pixels > 0) popt.max_pixels = max_pixels;
  fe.preprocess = [popt](std::span<const uint8_t> bytes, float* out, const std::string& name,
                         double* /*decode_ms: image.h decodes and resizes in one call*/) {
    preprocess_image(bytes, popt, out, name);
  };
  return fe;
}

std::unique_ptr<Engine> Engine::load(const std::string& model_dir, const EngineOptions& opt) {
  auto encoder = Encoder::load(model_dir, opt.encoder);
  EngineOptions o = opt;
  if (o.model_id.empty()) {
    o.model_id = std::filesystem::path(model_dir).lexically_normal().filename().string();
    if (o.model_id.empty()) {
      o.model_id = std::filesystem::path(model_dir).lexically_normal().parent_path().filename();
    }
  }
  auto fe = default_frontends(encoder->config());
  auto engine = create(std::move(encoder), std::move(fe), o);
  engine->warm_up();  // marks it ready at once when o.warmup is false
  return engine;
}

}  // namespace clipserve

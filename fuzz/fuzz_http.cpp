// libFuzzer target for HTTP request framing and routing without sockets: raw bytes go through
// the server's framer and, when they frame a request, through every route (real tokenizer
// and image decoders, a hash encoder standing in for the model). Any input must give a
// well-formed HTTP response or "incomplete" — never a crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "clipserve/encoder.h"
#include "clipserve/engine.h"
#include "server/server.h"

namespace {

// Deterministic features from the input bytes; the model is not what is being fuzzed.
class FuzzEncoder : public clipserve::Encoder {
 public:
  FuzzEncoder() {
    cfg_.name = "fuzz";
    cfg_.embed_dim = 4;
    cfg_.vision.image_size = 8;
    cfg_.vision.patch_size = 8;
    cfg_.preprocess.size = 8;
  }
  const clipserve::ModelConfig& config() const override { return cfg_; }
  float logit_scale() const override { return 100.0f; }
  void encode_images(const float* pixels, int n, float* out) override {
    for (int i = 0; i < n * 4; ++i) out[i] = pixels[i % (3 * 64)] + 0.5f + 0.01f * (i % 4);
  }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) override {
    for (size_t i = 0; i < ids.size(); ++i) {
      for (int d = 0; d < 4; ++d) out[i * 4 + d] = 1.0f + static_cast<float>(ids[i].size() % 7) + d;
    }
  }

 private:
  clipserve::ModelConfig cfg_;
};

struct Fixture {
  Fixture() {
    clipserve::EngineOptions eo;
    eo.preprocess_threads = 1;
    eo.max_batch = 2;
    auto enc = std::make_unique<FuzzEncoder>();
    auto fe = clipserve::Engine::default_frontends(enc->config());
    engine = clipserve::Engine::create(std::move(enc), std::move(fe), eo);
    engine->warm_up();
    clipserve::server::ServerOptions so;
    so.max_body_bytes = 1 << 20;
    so.bounds.max_label_sets = 8;
    server = std::make_unique<clipserve::server::Server>(*engine, so);
  }
  std::unique_ptr<clipserve::Engine> engine;
  std::unique_ptr<clipserve::server::Server> server;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();  // one engine for the whole run
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const std::string r = f->server->handle_raw(raw);
  if (r.empty()) return 0;  // incomplete request
  if (r.rfind("HTTP/1.1 ", 0) != 0 || r.find("\r\n\r\n") == std::string::npos) std::abort();
  const int status = std::atoi(r.c_str() + 9);
  if (status < 100 || status > 599) std::abort();
  if (status >= 500 && status != 503 && status != 501 && status != 505) {
    std::abort();  // a 500 is a bug: every bad input must get a 4xx naming it
  }
  return 0;
}

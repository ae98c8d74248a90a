// Engine and server test helpers: test doubles (an Encoder whose "embeddings" are a hash of its
// input: deterministic, NOT a model; matching fake tokenize / preprocess front-ends) and the
// real synthetic tiny model generated with `clipserve synth-model`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "clipserve/encoder.h"
#include "clipserve/engine.h"
#include "clipserve/error.h"
#include "testing.h"

namespace clipserve::test {

inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// Fills dim floats in [-1, 1) from a seed (splitmix64).
inline void hash_features(uint64_t seed, int dim, float* out) {
  for (int d = 0; d < dim; ++d) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    out[d] = static_cast<float>((z >> 40) * (1.0 / (1ull << 24)) * 2.0 - 1.0);
  }
}

/// Hash-based encoder: each output row depends only on its own input row, so batching can be
/// checked exactly. Records the batch sizes it saw; can be slowed down or held at a gate.
class HashEncoder : public Encoder {
 public:
  explicit HashEncoder(int dim = 8, int image_size = 8) {
    cfg_.name = "hash-test-encoder";
    cfg_.embed_dim = dim;
    cfg_.vision.image_size = image_size;
    cfg_.vision.patch_size = image_size;
    cfg_.preprocess.size = image_size;
  }
  const ModelConfig& config() const override { return cfg_; }
  float logit_scale() const override { return 100.0f; }

  void encode_images(const float* pixels, int n, float* out) override {
    enter(n, true, 0);
    const size_t elems = size_t(3) * cfg_.vision.image_size * cfg_.vision.image_size;
    for (int i = 0; i < n; ++i) {
      hash_features(fnv1a(pixels + i * elems, elems * sizeof(float)), cfg_.embed_dim,
                    out + size_t(i) * cfg_.embed_dim);
    }
  }
  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) override {
    size_t longest = 0;
    for (const auto& r : ids) longest = std::max(longest, r.size());
    enter(static_cast<int>(ids.size()), false, static_cast<int>(longest));
    for (size_t i = 0; i < ids.size(); ++i) {
      hash_features(fnv1a(ids[i].data(), ids[i].size() * sizeof(int32_t)) ^ 0x7e57, cfg_.embed_dim,
                    out + i * cfg_.embed_dim);
    }
  }

  // Observations and controls (thread-safe).
  struct Call {
    bool image;
    int n;
    int longest;  // texts: longest row
  };
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<int> batch_sizes(bool image) const {
    std::vector<int> out;
    for (const auto& c : calls()) {
      if (c.image == image) out.push_back(c.n);
    }
    return out;
  }
  void clear_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }
  void set_delay_ms(int ms) { delay_ms_ = ms; }
  /// While closed, encode calls block (after recording themselves) until open_gate().
  void close_gate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = false;
  }
  void open_gate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      gate_open_ = true;
    }
    cv_.notify_all();
  }
  /// Waits until `n` encode calls were recorded.
  void wait_calls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return calls_.size() >= n; });
  }

 private:
  void enter(int n, bool image, int longest) {
    std::unique_lock<std::mutex> lock(mu_);
    calls_.push_back({image, n, longest});
    cv_.notify_all();
    cv_.wait(lock, [&] { return gate_open_; });
    lock.unlock();
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
  }

  ModelConfig cfg_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  bool gate_open_ = true;
  std::atomic<int> delay_ms_{0};
};

/// Fake front-ends: tokenize maps each byte to an id (start/end added, truncated to the
/// context, a 0xFF byte is "invalid UTF-8"); preprocess fills the tensor from a hash of the
/// bytes and rejects bodies starting with "BAD".
/// `on_preprocess` (optional) runs first in every preprocess call with the input's name.
inline EngineFrontends fake_frontends(std::function<void(const std::string&)> on_preprocess = {}) {
  EngineFrontends fe;
  fe.tokenize = [](std::string_view text, int context_length) {
    std::vector<int32_t> ids{49406};
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<uint8_t>(text[i]);
      if (c == 0xFF) {
        throw Error(ErrorCode::kInvalidArgument,
                    "invalid UTF-8 at byte offset " + std::to_string(i));
      }
      ids.push_back(c + 1);
    }
    if (static_cast<int>(ids.size()) > context_length - 1) ids.resize(context_length - 1);
    ids.push_back(49407);
    return ids;
  };
  fe.preprocess = [on_preprocess](std::span<const uint8_t> bytes, float* out,
                                  const std::string& name, double* decode_ms) {
    if (on_preprocess) on_preprocess(name);
    if (bytes.size() >= 3 && std::memcmp(bytes.data(), "BAD", 3) == 0) {
      throw Error(ErrorCode::kInvalidArgument, name + ": not a decodable image (test double)");
    }
    // The encoder's image size is not known here; tests use 8 x 8 (192 floats).
    hash_features(fnv1a(bytes.data(), bytes.size()), 3 * 8 * 8, out);
    if (decode_ms) *decode_ms = 0.001;
  };
  return fe;
}

/// A synthetic tiny model (tests/data/engine/tiny_config.json, seed 0: the weights of
/// ../shared/fixtures/models/tiny) generated once per test process with the CLI.
inline const std::string& tiny_model_dir() {
  static const std::string dir = [] {
    const std::string d = temp_dir() + "/tiny";
    auto [rc, out] = run_command(cli_path() + " synth-model --config " + data_dir() +
                                 "/engine/tiny_config.json --seed 0 --out " + d + " 2>&1");
    if (rc != 0) throw std::runtime_error("clipserve synth-model failed: " + out);
    return d;
  }();
  return dir;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace clipserve::test

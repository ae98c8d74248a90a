// OWL-ViT detection speed: the vision tower over all tokens + heads per batch (backend level,
// with the GEMM floor), and the Detector end to end: first request after ready vs steady
// state, and a new query on a cached image. One JSON line per case on stdout.
//
//   build/bench/bench_detect --model DIR --image F [--precision fp32,bf16] [--batch 1,4]
//                            [--threads 2] [--iters 5] [--cases backend,detector]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "clipserve/detect.h"
#include "clipserve/image.h"
#include "core/file.h"
#include "model/owlvit_format.h"
#include "nn/backend.h"
#include "owlvit/heads.h"

namespace {

using clipserve::Detector;
using clipserve::DetectorOptions;
using clipserve::DetectParams;
using Clock = std::chrono::steady_clock;

double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    if (end > pos) out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// The image with one pixel changed per variant: a new content hash, the same work.
std::vector<uint8_t> variant(const std::vector<uint8_t>& bytes, int i) {
  std::vector<uint8_t> b = bytes;
  // Trailing bytes after a JPEG's EOI / PNG's IEND are ignored by the decoders.
  const std::string tag = "variant" + std::to_string(i);
  b.insert(b.end(), tag.begin(), tag.end());
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, image, precisions = "fp32,bf16", batches = "1,4", cases = "backend,detector";
  int threads = 2, iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    if (k == "--image") image = v;
    if (k == "--precision") precisions = v;
    if (k == "--batch") batches = v;
    if (k == "--threads") threads = std::stoi(v);
    if (k == "--iters") iters = std::stoi(v);
    if (k == "--cases") cases = v;
  }
  if (model.empty() || image.empty()) {
    std::fprintf(stderr,
                 "usage: bench_detect --model DIR --image F [--precision fp32,bf16] "
                 "[--batch 1,4] [--threads 2] [--iters 5]\n");
    return 2;
  }
  const std::vector<uint8_t> bytes = clipserve::read_file_bytes(image);
  clipserve::LoadedOwlVit m = clipserve::load_owlvit(model);
  const clipserve::ModelConfig& cfg = m.config;
  auto towers =
      std::shared_ptr<const clipserve::WeightMap>(std::shared_ptr<void>(), &m.weights.towers);
  const auto heads = clipserve::owlvit::bind_head_weights(cfg, m.weights.towers, m.weights.heads);
  const int S = cfg.vision.image_size, tokens = cfg.vision.tokens(), d = cfg.vision.width;
  clipserve::PreprocessOptions pre = clipserve::PreprocessOptions::from(cfg.preprocess);
  std::vector<float> px(3L * S * S);
  clipserve::preprocess_image(bytes, pre, px.data(), image);

  for (const std::string& prec : split(precisions)) {
    // ---- backend level: vision tower (all tokens) + heads ----
    clipserve::nn::BackendOptions bo;
    bo.precision = prec;
    bo.threads = threads;
    auto be = clipserve::nn::make_backend("cpu", cfg, towers, bo);
    for (const std::string& bs : split(cases.find("backend") != std::string::npos ? batches : "")) {
      const int n = std::stoi(bs);
      std::vector<float> pixels(px.size() * n), hidden(static_cast<size_t>(n) * tokens * d);
      for (int i = 0; i < n; ++i) std::copy(px.begin(), px.end(), pixels.begin() + i * px.size());
      be->encode_image_tokens(pixels.data(), n, hidden.data());  // primitives created
      be->run_gemms_only(true, n, 0);
      std::vector<double> tower, head, floor;
      for (int it = 0; it < iters; ++it) {
        auto t0 = Clock::now();
        be->encode_image_tokens(pixels.data(), n, hidden.data());
        auto t1 = Clock::now();
        for (int i = 0; i < n; ++i) {
          clipserve::owlvit::run_image_heads(heads,
                                             hidden.data() + static_cast<long>(i) * tokens * d,
                                             clipserve::owlvit::HeadImpl::kFast);
        }
        auto t2 = Clock::now();
        be->run_gemms_only(true, n, 0);
        auto t3 = Clock::now();
        tower.push_back(ms(t0, t1));
        head.push_back(ms(t1, t2));
        floor.push_back(ms(t2, t3));
      }
      const double gflop = clipserve::nn::Backend::gemm_flops(cfg, true, n, 0) / 1e9;
      nlohmann::ordered_json j = {{"case", "backend"},
                                  {"model", model},
                                  {"image_size", S},
                                  {"tokens", tokens},
                                  {"precision", be->precision()},
                                  {"threads", threads},
                                  {"batch", n},
                                  {"tower_ms", median(tower)},
                                  {"heads_ms", median(head)},
                                  {"gemm_floor_ms", median(floor)},
                                  {"ms_per_image", (median(tower) + median(head)) / n},
                                  {"tower_gemm_gflop", gflop}};
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
    be.reset();

    // ---- Detector end to end ----
    if (cases.find("detector") == std::string::npos) continue;
    DetectorOptions o;
    o.precision = prec;
    o.threads = threads;
    o.max_batch = 4;
    auto t_load = Clock::now();
    auto det = Detector::load(model, o);
    const double load_ms = ms(t_load, Clock::now());
    DetectParams p;
    int serial = 0;
    auto one = [&](const std::vector<uint8_t>& img) {
      // New image bytes and new query texts each time: nothing cached.
      const std::string q = "a photo of object number " + std::to_string(serial++);
      auto t0 = Clock::now();
      det->detect(img, {q, "a cat"}, p, "bench");
      return ms(t0, Clock::now());
    };
    const double first = one(variant(bytes, 1000));
    std::vector<double> steady;
    for (int it = 0; it < iters; ++it) steady.push_back(one(variant(bytes, it)));
    // A new query about an image already seen: the class head only.
    std::vector<double> cached;
    const auto seen = variant(bytes, 0);
    for (int it = 0; it < iters; ++it) {
      det->detect(seen, {"a warm-up query " + std::to_string(it)}, p, "bench");  // text cached
      auto t0 = Clock::now();
      auto r = det->detect(seen, {"a warm-up query " + std::to_string(it)}, p, "bench");
      cached.push_back(ms(t0, Clock::now()));
      if (!r.image_cached) std::fprintf(stderr, "bench: image was not cached\n");
    }
    std::vector<double> new_text;
    for (int it = 0; it < iters; ++it) {
      auto t0 = Clock::now();
      det->detect(seen, {"an unseen query " + std::to_string(it)}, p, "bench");
      new_text.push_back(ms(t0, Clock::now()));
    }
    nlohmann::ordered_json j = {{"case", "detector"},
                                {"model", model},
                                {"precision", det->precision()},
                                {"threads", threads},
                                {"load_ms", load_ms},
                                {"first_request_ms", first},
                                {"steady_median_ms", median(steady)},
                                {"first_over_steady", first / std::max(median(steady), 1e-9)},
                                {"cached_image_cached_query_ms", median(cached)},
                                {"cached_image_new_query_ms", median(new_text)}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

// OWL-ViT detection speed: the vision tower over all tokens + heads per batch (backend level,
// with the GEMM floor), and the Detector end to end: first request after ready vs steady
// state, and a new query on a cached image; the text tower for new queries (case text) beside
// its weight-streaming bound (text weight bytes / measured memory read bandwidth) and the
// class head alone, and each precision's query embeddings vs fp32 (case text_accuracy). One
// JSON line per case on stdout.
//
//   build/bench/bench_detect --model DIR --image F [--precision fp32,bf16] [--batch 1,4]
//                            [--threads 2] [--iters 5] [--cases backend,detector,text]
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
#include "clipserve/tokenizer.h"
#include "core/compute_thread.h"
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

// Sequential read bandwidth (GB/s) over `bytes`, with the OpenMP threads in use: the best of
// `reps` passes after one untimed pass (so a buffer that fits a cache is measured warm, like
// weights re-read by back-to-back requests).
double read_bandwidth(size_t bytes, int reps) {
  std::vector<float> buf(bytes / sizeof(float), 1.0f);
  const long n = static_cast<long>(buf.size());
  double best = 1e30;
  volatile float sink = 0;
  for (int r = 0; r <= reps; ++r) {
    auto t0 = Clock::now();
    float total = 0;
    const float* b = buf.data();
#pragma omp parallel reduction(+ : total)
    {
      // 64 independent lanes per thread: the adds never limit the loads.
      float acc[64] = {};
#pragma omp for schedule(static)
      for (long i = 0; i < n / 64; ++i) {
#pragma omp simd
        for (int l = 0; l < 64; ++l) acc[l] += b[i * 64 + l];
      }
      for (float a : acc) total += a;
    }
    sink = sink + total;
    const double t = ms(t0, Clock::now());
    if (r > 0) best = std::min(best, t);
  }
  return static_cast<double>(bytes) / (best * 1e6);
}

// ids of a query of `tokens` ids (start, words, end), as the tokenizer makes them.
std::vector<int32_t> query_ids(int tokens, int salt) {
  std::vector<int32_t> r(tokens, 320 + salt);
  r.front() = 49406;
  r.back() = 49407;
  return r;
}

// Normalized query embeddings of 30 real queries (10 objects x 3 phrasings), to compare the
// precisions' text towers with fp32.
std::vector<float> accuracy_queries(clipserve::nn::Backend& be, int width) {
  std::vector<std::vector<int32_t>> ids;
  for (const char* w : {"cat", "dog", "red mug", "car", "person", "tree", "bicycle",
                        "traffic light", "spoon", "laptop"}) {
    for (const char* t : {"a photo of a ", "", "an image of a "})
      ids.push_back(clipserve::Tokenizer::get().encode(std::string(t) + w, 16).ids);
  }
  std::vector<float> raw(ids.size() * width);
  be.encode_texts(ids, raw.data());
  return clipserve::owlvit::normalize_text_queries(raw.data(), static_cast<int>(ids.size()), width);
}

// The text tower's cost for new queries: encode_texts over `q` queries of `tokens` ids each,
// its GEMM-only floor, and the weight bytes it streams (all text blocks' linear layers).
void bench_text(const clipserve::ModelConfig& cfg,
                const std::shared_ptr<const clipserve::WeightMap>& towers,
                const clipserve::owlvit::HeadWeights& heads, const float* hidden,
                const std::string& model, const std::string& prec, int threads, int iters,
                double bw_weights, double bw_dram, const std::vector<float>& fp32_queries) {
  clipserve::nn::BackendOptions bo;
  bo.precision = prec;
  bo.threads = threads;
  auto be = clipserve::nn::make_backend("cpu", cfg, towers, bo);
  const double w = cfg.text.width, hid = static_cast<int>(w * cfg.text.mlp_ratio);
  const double params = cfg.text.layers * (4 * w * w + 2 * w * hid);
  const double bytes_per = be->precision() == "int8" ? 1 : be->precision() == "bf16" ? 2 : 4;
  const double weight_mb = params * bytes_per / 1e6;
  const auto img =
      clipserve::owlvit::run_image_heads(heads, hidden, clipserve::owlvit::HeadImpl::kFast);
  // Accuracy of this precision's query embeddings: cosine with fp32's, min and mean.
  const std::vector<float> mine = accuracy_queries(*be, cfg.text.width);
  double cos_min = 1, cos_sum = 0;
  const int nq = static_cast<int>(mine.size()) / cfg.text.width;
  for (int i = 0; i < nq; ++i) {
    double d = 0;
    for (int j = 0; j < cfg.text.width; ++j) {
      d += double(mine[i * cfg.text.width + j]) * fp32_queries[i * cfg.text.width + j];
    }
    cos_min = std::min(cos_min, d);
    cos_sum += d;
  }
  nlohmann::ordered_json acc = {{"case", "text_accuracy"},
                                {"model", model},
                                {"precision", be->precision()},
                                {"queries", nq},
                                {"query_cosine_vs_fp32_min", cos_min},
                                {"query_cosine_vs_fp32_mean", cos_sum / nq}};
  std::printf("%s\n", acc.dump().c_str());
  for (int q : {1, 4}) {
    for (int tokens : {6, 16}) {
      std::vector<std::vector<int32_t>> ids;
      for (int i = 0; i < q; ++i) ids.push_back(query_ids(tokens, i));
      std::vector<float> out(static_cast<size_t>(q) * cfg.embed_dim);
      be->encode_texts(ids, out.data());
      be->run_gemms_only(false, q, tokens);
      std::vector<double> t_text, t_floor, t_head;
      for (int it = 0; it < iters; ++it) {
        auto t0 = Clock::now();
        be->encode_texts(ids, out.data());
        auto t1 = Clock::now();
        be->run_gemms_only(false, q, tokens);
        auto t2 = Clock::now();
        const auto qe = clipserve::owlvit::normalize_text_queries(out.data(), q, cfg.text.width);
        const auto logits = clipserve::owlvit::class_logits(img, qe.data(), q, nullptr,
                                                            clipserve::owlvit::HeadImpl::kFast);
        auto t3 = Clock::now();
        t_text.push_back(ms(t0, t1));
        t_floor.push_back(ms(t1, t2));
        t_head.push_back(ms(t2, t3));
      }
      nlohmann::ordered_json j = {{"case", "text"},
                                  {"model", model},
                                  {"precision", be->precision()},
                                  {"threads", threads},
                                  {"queries", q},
                                  {"tokens", tokens},
                                  {"text_tower_ms", median(t_text)},
                                  {"text_gemm_floor_ms", median(t_floor)},
                                  {"class_head_ms", median(t_head)},
                                  {"text_weight_mb", weight_mb},
                                  {"read_gbps_weight_sized", bw_weights},
                                  {"read_gbps_1gib", bw_dram},
                                  {"streaming_bound_ms", weight_mb / bw_weights},
                                  {"streaming_bound_dram_ms", weight_mb / bw_dram}};
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
  }
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

  // Every backend call below runs on the compute thread, as the Detector's do: one OpenMP pool
  // in the process (core/compute_thread.h), so the cases do not slow each other down.
  if (cases.find("text") != std::string::npos)
    clipserve::run_on_compute_thread([&] {
      omp_set_num_threads(threads);
      const double w = cfg.text.width, hid = static_cast<int>(w * cfg.text.mlp_ratio);
      const size_t fp32_bytes =
          static_cast<size_t>(cfg.text.layers * (4 * w * w + 2 * w * hid)) * 4;
      const double bw_weights = read_bandwidth(fp32_bytes, 5),
                   bw_dram = read_bandwidth(1ul << 30, 3);
      auto be = clipserve::nn::make_backend("cpu", cfg, towers, {});
      std::vector<float> hidden(static_cast<size_t>(tokens) * d);
      be->encode_image_tokens(px.data(), 1, hidden.data());
      const std::vector<float> fp32_queries = accuracy_queries(*be, cfg.text.width);
      be.reset();
      for (const std::string& prec : split(precisions)) {
        bench_text(cfg, towers, heads, hidden.data(), model, prec, threads, iters, bw_weights,
                   bw_dram, fp32_queries);
      }
    });
  for (const std::string& prec : split(precisions)) {
    // ---- backend level: vision tower (all tokens) + heads ----
    if (cases.find("backend") != std::string::npos)
      clipserve::run_on_compute_thread([&] {
        clipserve::nn::BackendOptions bo;
        bo.precision = prec;
        bo.threads = threads;
        auto be = clipserve::nn::make_backend("cpu", cfg, towers, bo);
        for (const std::string& bs : split(batches)) {
          const int n = std::stoi(bs);
          std::vector<float> pixels(px.size() * n), hidden(static_cast<size_t>(n) * tokens * d);
          for (int i = 0; i < n; ++i)
            std::copy(px.begin(), px.end(), pixels.begin() + i * px.size());
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
      });

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
    std::vector<double> new_text, new_pre, new_encode, new_post;
    for (int it = 0; it < iters; ++it) {
      auto t0 = Clock::now();
      auto r = det->detect(seen, {"an unseen query " + std::to_string(it)}, p, "bench");
      new_text.push_back(ms(t0, Clock::now()));
      new_pre.push_back(r.timings.preprocess_ms);
      new_encode.push_back(r.timings.encode_ms);
      new_post.push_back(r.timings.postprocess_ms);
    }
    // The same after 200 ms idle (a person re-querying): on this VM the memory system and the
    // second vCPU come back slower after idle, whatever the engine.
    std::vector<double> new_idle;
    for (int it = 0; it < iters; ++it) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto t0 = Clock::now();
      det->detect(seen, {"an unseen query after idle " + std::to_string(it)}, p, "bench");
      new_idle.push_back(ms(t0, Clock::now()));
    }
    // Four new queries in one request: one text batch.
    std::vector<double> new4;
    for (int it = 0; it < iters; ++it) {
      std::vector<std::string> qs;
      for (int k = 0; k < 4; ++k) qs.push_back("four unseen queries " + std::to_string(it * 4 + k));
      auto t0 = Clock::now();
      det->detect(seen, qs, p, "bench");
      new4.push_back(ms(t0, Clock::now()));
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
                                {"cached_image_new_query_ms", median(new_text)},
                                {"new_query_tokenize_ms", median(new_pre)},
                                {"new_query_text_tower_ms", median(new_encode)},
                                {"new_query_head_post_ms", median(new_post)},
                                {"new_query_after_200ms_idle_ms", median(new_idle)},
                                {"cached_image_4_new_queries_ms", median(new4)}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

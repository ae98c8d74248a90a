// Synthetic weights (SYNTHETIC.md v1). Every double operation is written out separately and
// the project builds with -ffp-contract=off, so the results are bit-identical to numpy's.
#include "model/synthetic.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <thread>

#include "core/check.h"
#include "core/file.h"
#include "model/layout.h"
#include "model/safetensors.h"

namespace clipserve {

uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t splitmix64(uint64_t s) {
  uint64_t z = s + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The name part before the last one ("ln_1" in "transformer.resblocks.0.ln_1.weight").
std::string second_last_part(const std::string& name) {
  size_t last = name.rfind('.');
  if (last == std::string::npos) return "";
  size_t prev = name.rfind('.', last - 1);
  size_t start = prev == std::string::npos || last == 0 ? 0 : prev + 1;
  return name.substr(start, last - start);
}

std::string last_part(const std::string& name) {
  size_t last = name.rfind('.');
  return last == std::string::npos ? name : name.substr(last + 1);
}

double inv_sqrt(int64_t n) { return 1.0 / std::sqrt(static_cast<double>(n)); }

}  // namespace

SyntheticRule synthetic_rule(const std::string& name, const std::vector<int64_t>& shape,
                             const ModelConfig& cfg) {
  SyntheticRule r;
  const bool ln = second_last_part(name).rfind("ln_", 0) == 0;
  if (name == "logit_scale") {
    r.constant = true;
    r.center = static_cast<double>(static_cast<float>(std::log(100.0)));
  } else if (last_part(name) == "weight" && ln) {
    r = {false, 1.0, 0.1};
  } else if (last_part(name) == "bias" && ln) {
    r = {false, 0.0, 0.1};
  } else if (ends_with(name, "bias")) {
    r = {false, 0.0, 0.02};
  } else if (name == "visual.class_embedding" || name == "visual.positional_embedding") {
    r = {false, 0.0, inv_sqrt(cfg.vision.width)};
  } else if (name == "positional_embedding") {
    r = {false, 0.0, 0.01};
  } else if (name == "token_embedding.weight") {
    r = {false, 0.0, 0.02};
  } else if (name == "visual.proj" || name == "text_projection") {
    CS_CHECK_ARG(shape.size() == 2, "synthetic: tensor '", name, "' must be 2-D");
    r = {false, 0.0, inv_sqrt(shape[0])};
  } else if (name == "visual.conv1.weight") {
    r = {false, 0.0, inv_sqrt(3 * int64_t(cfg.vision.patch_size) * cfg.vision.patch_size)};
  } else if (ends_with(name, "weight") && shape.size() == 2) {
    r = {false, 0.0, inv_sqrt(shape[1])};
  } else {
    CS_THROW(kInvalidArgument, "synthetic: no rule in SYNTHETIC.md for tensor '", name, "'");
  }
  return r;
}

void synthetic_fill(const std::string& name, const SyntheticRule& rule, uint64_t seed,
                    uint64_t first, size_t n, float* out) {
  if (rule.constant) {
    std::fill(out, out + n, static_cast<float>(rule.center));
    return;
  }
  const uint64_t key = fnv1a64(name) ^ (seed * 0x9E3779B97F4A7C15ull);
  const double a = std::sqrt(3.0) * rule.std;
  const double scale = 0x1p-53;
  for (size_t i = 0; i < n; ++i) {
    double u = static_cast<double>(splitmix64(key + first + i) >> 11) * scale;
    double x = 2.0 * u - 1.0;
    double ax = a * x;
    out[i] = static_cast<float>(rule.center + ax);
  }
}

WeightMap synthetic_weights(const ModelConfig& cfg, uint64_t seed, int threads) {
  auto specs = expected_tensors(cfg);
  WeightMap m("synthetic(" + cfg.name + ", seed " + std::to_string(seed) + ")");
  struct Job {
    const TensorSpec* spec;
    SyntheticRule rule;
    float* data;
    uint64_t first;
    size_t n;
  };
  std::vector<Job> jobs;
  std::vector<std::vector<float>> buffers(specs.size());
  constexpr size_t kChunk = 1 << 20;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    int64_t numel = 1;
    for (auto d : s.shape) numel *= d;
    buffers[i].resize(static_cast<size_t>(numel));
    SyntheticRule rule = synthetic_rule(s.name, s.shape, cfg);
    for (size_t first = 0; first < size_t(numel); first += kChunk) {
      jobs.push_back(
          {&s, rule, buffers[i].data() + first, first, std::min(kChunk, size_t(numel) - first)});
    }
  }
  unsigned nthreads =
      threads > 0 ? unsigned(threads) : std::max(1u, std::thread::hardware_concurrency());
  nthreads = std::min<unsigned>(nthreads, std::max<size_t>(jobs.size(), 1));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      const Job& job = jobs[j];
      synthetic_fill(job.spec->name, job.rule, seed, job.first, job.n, job.data);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < nthreads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (size_t i = 0; i < specs.size(); ++i)
    m.add_owned(specs[i].name, specs[i].shape, std::move(buffers[i]));
  return m;
}

void write_synthetic_model(const ModelConfig& cfg, uint64_t seed, const std::string& dir,
                           int threads) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  CS_CHECK_ARG(!ec, dir, ": cannot create directory: ", ec.message());
  WeightMap w = synthetic_weights(cfg, seed, threads);
  std::vector<std::string> order;
  for (const auto& s : expected_tensors(cfg)) order.push_back(s.name);
  write_safetensors(dir + "/open_clip_model.safetensors", w, order,
                    {{"format", "pt"}, {"synthetic_spec", "v1"}, {"seed", std::to_string(seed)}});
  std::string json = model_config_to_json(cfg);
  write_file_atomic(dir + "/open_clip_config.json",
                    {reinterpret_cast<const uint8_t*>(json.data()), json.size()});
}

}  // namespace clipserve

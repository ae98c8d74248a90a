// Tokenizer throughput on the visible golden strings (single thread, warm BPE cache, as open_clip's
// own cache is warm after its first call). Reports strings/s; run with --benchmark_repetitions=N
// and read the median.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "clipserve/tokenizer.h"
#include "text/bpe.h"

namespace {

std::vector<std::string> load_strings() {
  const std::string shared = CLIPSERVE_SHARED_DIR "/fixtures/golden/tokenizer/visible.jsonl";
  std::string jsonl;
  if (std::filesystem::exists(shared)) {
    std::ifstream f(shared, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    jsonl = ss.str();
  } else {
    std::ifstream f(CLIPSERVE_TEST_DATA "/tokenizer/visible.jsonl.gz", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    jsonl = clipserve::text::gunzip(ss.str());
  }
  std::vector<std::string> out;
  std::istringstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
  }
  return out;
}

const std::vector<std::string>& strings() {
  static const std::vector<std::string> s = load_strings();
  return s;
}

// One iteration tokenizes every visible golden string once.
void BM_TokenizeVisible(benchmark::State& state) {
  const auto& tok = clipserve::Tokenizer::get();
  const auto& texts = strings();
  for (const auto& t : texts) benchmark::DoNotOptimize(tok.encode(t));  // warm the cache
  for (auto _ : state) {
    for (const auto& t : texts) benchmark::DoNotOptimize(tok.encode(t));
  }
  state.counters["strings_per_s"] = benchmark::Counter(
      static_cast<double>(texts.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TokenizeVisible)->Unit(benchmark::kMillisecond);

// A typical zero-shot prompt.
void BM_TokenizeShortAscii(benchmark::State& state) {
  const auto& tok = clipserve::Tokenizer::get();
  const std::string text = "a photo of a dog.";
  for (auto _ : state) benchmark::DoNotOptimize(tok.encode(text));
  state.counters["strings_per_s"] =
      benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_TokenizeShortAscii);

}  // namespace

BENCHMARK_MAIN();

// `clipserve bench`: times encode per tower / batch / precision / threads after warm-up, with
// the GEMM floor (the same matmul primitives alone) measured interleaved in the same run.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/command.h"
#include "clipserve/model_config.h"
#include "clipserve/tokenizer.h"
#include "core/check.h"
#include "cpu/threading.h"
#include "model/model_dir.h"
#include "model/synthetic.h"
#include "nn/backend.h"

namespace clipserve::cli {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<std::string> split_list(const std::vector<std::string>& values,
                                    const std::string& fallback) {
  std::vector<std::string> out;
  for (const std::string& v : values.empty() ? std::vector<std::string>{fallback} : values) {
    for (auto& item : split_comma_list(v)) out.push_back(std::move(item));
  }
  return out;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

struct Stats {
  double median, min, max;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {med, v.front(), v.back()};
}

int run(int argc, char** argv) {
  Args args;
  args.option("model").option("arch").option("tower").option("batch").option("precision");
  args.option("threads").option("backend").option("iters").option("warmup").option("tokens");
  args.option("text").flag("json");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.has("model") != args.has("arch"),
               "give exactly one of --model DIR or --arch NAME (synthetic weights, seed 0)");
  CS_CHECK_ARG(args.positional().empty(), "unexpected argument '", args.positional().front(), "'");
  const auto towers = split_list(args.values("tower"), "image");
  const auto batches = args.get_int_list("batch", {1});
  const auto precisions = split_list(args.values("precision"), "fp32");
  const auto threads_list = args.get_int_list("threads", {0});
  const std::string backend_name = args.get_or("backend", "cpu");
  const int iters = args.get_int("iters", 10), warmup = args.get_int("warmup", 2);
  CS_CHECK_ARG(iters > 0 && warmup >= 0, "--iters must be positive and --warmup >= 0");
  for (const auto& t : towers) CS_CHECK_ARG(t == "image" || t == "text", "unknown --tower ", t);
  for (int b : batches) CS_CHECK_ARG(b > 0 && b <= 4096, "--batch values must be in [1, 4096]");
  const bool json = args.has("json");

  // Load (warm page cache) through to the first embedding: the model files' own load path.
  const auto t_load = Clock::now();
  ModelConfig cfg;
  std::shared_ptr<const WeightMap> weights;
  std::string model_name;
  if (args.has("model")) {
    LoadedModel m = load_model_dir(*args.get("model"));
    cfg = m.config;
    weights = std::make_shared<const WeightMap>(std::move(m.weights));
    model_name = *args.get("model");
  } else {
    cfg = builtin_model_config(*args.get("arch"));
    weights = std::make_shared<const WeightMap>(synthetic_weights(cfg, 0));
    model_name = *args.get("arch") + " (synthetic)";
  }
  const double read_ms = ms_since(t_load);

  // Text rows: the tokenized --text, or --tokens N ids (start, filler, end).
  std::vector<int32_t> text_row;
  if (args.has("text")) {
    text_row = Tokenizer::get().encode(*args.get("text"), cfg.text.context_length).ids;
  } else {
    const int n = args.get_int("tokens", cfg.text.context_length);
    CS_CHECK_ARG(n >= 2 && n <= cfg.text.context_length, "--tokens must be in [2, ",
                 cfg.text.context_length, "]");
    text_row.assign(n, 320);
    text_row.front() = Tokenizer::kStartToken;
    text_row.back() = Tokenizer::kEndToken;
  }
  const int text_tokens = static_cast<int>(text_row.size());

  const int S = cfg.vision.image_size;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  std::vector<float> pixels(static_cast<size_t>(max_batch) * 3 * S * S);
  for (auto& x : pixels) x = normal(rng);
  std::vector<float> out(static_cast<size_t>(max_batch) * cfg.embed_dim);

  if (!json) {
    std::printf("model %s, backend %s, weights read in %.0f ms\n", model_name.c_str(),
                backend_name.c_str(), read_ms);
    std::printf("%-6s %5s %6s %4s %4s %10s %10s %10s %10s %10s %8s %7s\n", "tower", "batch", "prec",
                "thr", "tok", "median_ms", "min_ms", "max_ms", "items/s", "gemm_ms", "GFLOP/s",
                "effic");
  }
  for (const std::string& precision : precisions) {
    for (int threads : threads_list) {
      nn::BackendOptions opt;
      opt.precision = precision;
      opt.threads = threads;
      const auto t0 = Clock::now();
      auto backend = nn::make_backend(backend_name, cfg, weights, opt);
      const double create_ms = ms_since(t0);
      backend->encode_images(pixels.data(), 1, out.data());
      const double first_ms = ms_since(t0);
      for (const std::string& tower : towers) {
        const bool image = tower == "image";
        for (int batch : batches) {
          std::vector<std::vector<int32_t>> ids(batch, text_row);
          auto encode = [&] {
            if (image) {
              backend->encode_images(pixels.data(), batch, out.data());
            } else {
              backend->encode_texts(ids, out.data());
            }
          };
          auto gemms = [&] { return backend->run_gemms_only(image, batch, text_tokens); };
          const bool has_floor = gemms();
          for (int i = 0; i < warmup; ++i) {
            encode();
            if (has_floor) gemms();
          }
          // Interleaved so both see the same machine load.
          std::vector<double> full, floor;
          for (int i = 0; i < iters; ++i) {
            auto a = Clock::now();
            encode();
            full.push_back(ms_since(a));
            if (has_floor) {
              a = Clock::now();
              gemms();
              floor.push_back(ms_since(a));
            }
          }
          const Stats f = stats(full);
          const double floor_ms = has_floor ? stats(floor).median : 0.0;
          const double flops = nn::Backend::gemm_flops(cfg, image, batch, text_tokens);
          const double eff = has_floor ? floor_ms / f.median : 0.0;
          const int eff_threads = threads > 0 ? threads : 0;
          if (json) {
            nlohmann::json j{{"model", model_name},
                             {"backend", backend_name},
                             {"tower", tower},
                             {"batch", batch},
                             {"precision", backend->precision()},
                             {"requested_precision", precision},
                             {"threads", eff_threads},
                             {"tokens", image ? cfg.vision.tokens() : text_tokens},
                             {"median_ms", f.median},
                             {"min_ms", f.min},
                             {"max_ms", f.max},
                             {"items_per_s", batch * 1000.0 / f.median},
                             {"gemm_floor_ms", has_floor ? nlohmann::json(floor_ms) : nullptr},
                             {"gemm_gflops", has_floor ? flops / floor_ms / 1e6 : 0.0},
                             {"efficiency", has_floor ? nlohmann::json(eff) : nullptr},
                             {"iters", iters},
                             {"omp_wait_policy", cpu::omp_wait_policy()},
                             {"load_ms", read_ms + create_ms},
                             {"first_embedding_ms", read_ms + first_ms},
                             {"peak_rss_mb", peak_rss_mb()}};
            std::printf("%s\n", j.dump().c_str());
          } else {
            std::printf("%-6s %5d %6s %4d %4d %10.2f %10.2f %10.2f %10.1f %10.2f %8.0f %7.2f\n",
                        tower.c_str(), batch, backend->precision().c_str(), eff_threads,
                        image ? cfg.vision.tokens() : text_tokens, f.median, f.min, f.max,
                        batch * 1000.0 / f.median, floor_ms, has_floor ? flops / floor_ms / 1e6 : 0,
                        eff);
          }
          std::fflush(stdout);
        }
      }
      if (!json) {
        std::printf(
            "  (%s, threads %d: backend ready in %.0f ms, first embedding %.0f ms after "
            "start incl. reading weights; peak RSS %.0f MB)\n",
            backend->precision().c_str(), threads, create_ms, read_ms + first_ms, peak_rss_mb());
      }
    }
  }
  return 0;
}

const bool registered = register_command({
    "bench",
    "time image/text encoding against the GEMM floor",
    "usage: clipserve bench (--model DIR | --arch NAME) [--tower image,text] [--batch 1,16]\n"
    "                       [--precision fp32,bf16,int8] [--threads N,...] [--backend "
    "cpu|reference]\n"
    "                       [--tokens N | --text STRING] [--iters N] [--warmup N] [--json]\n\n"
    "Times encode after warm-up for every combination and reports median/min/max per call,\n"
    "items/s, and the GEMM floor: the same matmul primitives run alone (interleaved with the\n"
    "full passes), efficiency = floor / median. --arch uses synthetic weights (seed 0).\n"
    "--json prints one object per case with the keys model, tower, batch, precision, threads,\n"
    "median_ms, min_ms, max_ms, items_per_s, gemm_floor_ms, efficiency (and more).\n"
    "  --tokens N      text length in tokens incl. start/end (default: the context length)\n"
    "  --text STRING   a text to tokenize instead of --tokens\n"
    "  --threads N     0 = all cores (default)\n"
    "  --iters N       timed calls per case (default 10); --warmup N (default 2)\n",
    run,
});

}  // namespace
}  // namespace clipserve::cli

// Times clipserve's decode + preprocess per image, single thread, in exact (default), fast
// and reference modes. Prints one JSON line per (file, mode): median/min ms over --reps runs.
// Used by bench/preprocess_vs_pillow.sh, which times Pillow on the same files in the same run.
//   bench_preprocess [--size S] [--reps N] [--modes exact,fast,reference] FILE...
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "clipserve/image.h"
#include "core/file.h"

int main(int argc, char** argv) {
  int size = 224, reps = 20;
  std::string modes = "exact,fast";
  bool compare = false;  // --compare-fast: print fast mode's difference from exact instead
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--size") && i + 1 < argc) {
      size = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--compare-fast")) {
      compare = true;
    } else if (!std::strcmp(argv[i], "--modes") && i + 1 < argc) {
      modes = argv[++i];
    } else {
      files.push_back(argv[i]);
    }
  }
  std::vector<float> out(static_cast<size_t>(3) * size * size);
  for (const std::string& path : files) {
    const std::vector<uint8_t> bytes = clipserve::read_file_bytes(path);
    if (compare) {
      clipserve::PreprocessOptions opt;
      opt.size = size;
      std::vector<float> fast(out.size());
      try {
        clipserve::preprocess_image(bytes, opt, out.data(), path);
        opt.fast = true;
        clipserve::preprocess_image(bytes, opt, fast.data(), path);
      } catch (const std::exception& e) {
        continue;
      }
      double max_diff = 0, sum = 0, dot = 0, na = 0, nb = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const double d = std::abs(static_cast<double>(out[i]) - fast[i]);
        max_diff = std::max(max_diff, d);
        sum += d;
        dot += double(out[i]) * fast[i];
        na += double(out[i]) * out[i];
        nb += double(fast[i]) * fast[i];
      }
      std::printf(
          "{\"file\": \"%s\", \"max_abs_diff\": %.5f, \"mean_abs_diff\": %.6f, "
          "\"cosine\": %.6f}\n",
          path.c_str(), max_diff, sum / out.size(), dot / std::sqrt(na * nb));
      continue;
    }
    for (const char* mode : {"exact", "fast", "reference"}) {
      if (modes.find(mode) == std::string::npos) continue;
      clipserve::PreprocessOptions opt;
      opt.size = size;
      opt.fast = !std::strcmp(mode, "fast");
      opt.reference = !std::strcmp(mode, "reference");
      try {
        clipserve::preprocess_image(bytes, opt, out.data(), path);  // warm-up
        std::vector<double> ms;
        for (int r = 0; r < reps; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          clipserve::preprocess_image(bytes, opt, out.data(), path);
          const auto t1 = std::chrono::steady_clock::now();
          ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        std::printf(
            "{\"file\": \"%s\", \"mode\": \"%s\", \"median_ms\": %.4f, \"min_ms\": %.4f, "
            "\"reps\": %d}\n",
            path.c_str(), mode, ms[ms.size() / 2], ms[0], reps);
      } catch (const std::exception& e) {
        std::printf("{\"file\": \"%s\", \"mode\": \"%s\", \"error\": \"%s\"}\n", path.c_str(), mode,
                    e.what());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

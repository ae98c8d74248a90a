// `clipserve embed`: embeddings of images, preprocessed .npy tensors and texts into one .npy.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "cli/embed_output.h"
#include "cli/inputs.h"
#include "clipserve/encoder.h"
#include "clipserve/image.h"
#include "clipserve/tokenizer.h"
#include "core/check.h"
#include "core/npy.h"

namespace clipserve::cli {
namespace {

constexpr int kImageBatch = 16;
constexpr int kTextBatch = 64;

struct Item {
  enum Kind { kImage, kTensor, kText } kind;
  std::string value;   // path or text
  std::string source;  // for error messages: the argument, or FILE:LINE
};

// `@FILE.jsonl`: one {"text": ...} object per non-blank line.
void read_jsonl(const std::string& path, std::vector<Item>& items) {
  std::ifstream in(path);
  CS_CHECK_ARG(in.good(), path, ": cannot open");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      CS_THROW(kInvalidArgument, where, ": invalid JSON: ", e.what());
    }
    CS_CHECK_ARG(j.is_object() && j.contains("text") && j["text"].is_string(), where,
                 ": expected an object with a string \"text\"");
    items.push_back({Item::kText, j["text"].get<std::string>(), where});
  }
}

// Expanded inputs (directories, --files-from) into items; entries that fail to list or read
// (an unreadable @FILE.jsonl) are reported as failures and skipped.
std::vector<Item> parse_inputs(const std::vector<InputEntry>& entries, Failures& failures) {
  std::vector<Item> items;
  for (const InputEntry& e : entries) {
    const std::string& a = e.value;
    if (!e.error.empty()) {
      failures.add(a, e.error);
    } else if (a.rfind("text:", 0) == 0) {
      items.push_back({Item::kText, a.substr(5), a});
    } else if (a.size() > 1 && a[0] == '@') {
      try {
        read_jsonl(a.substr(1), items);
      } catch (const std::exception& ex) {
        failures.add(a, ex.what());
      }
    } else if (a.size() > 4 && a.compare(a.size() - 4, 4, ".npy") == 0) {
      items.push_back({Item::kTensor, a, a});
    } else {
      items.push_back({Item::kImage, a, a});
    }
  }
  return items;
}

// A preprocessed (3, S, S) float tensor.
std::vector<float> read_tensor(const Item& it, int size) {
  const NpyArray a = read_npy(it.value);
  CS_CHECK_ARG(a.dtype == "<f4" || a.dtype == "<f8", it.source, ": expected a float32 array, got ",
               a.dtype);
  CS_CHECK_ARG(a.shape == std::vector<int64_t>({3, size, size}), it.source, ": expected shape (3, ",
               size, ", ", size, ") for this model");
  return a.to_f32();
}

void normalize_rows(std::vector<float>& v, int dim) {
  for (size_t r = 0; r < v.size() / dim; ++r) {
    float* row = v.data() + r * dim;
    double s = 0;
    for (int k = 0; k < dim; ++k) s += double(row[k]) * row[k];
    const double n = std::max(std::sqrt(s), 1e-12);  // torch.nn.functional.normalize's eps
    for (int k = 0; k < dim; ++k) row[k] = static_cast<float>(row[k] / n);
  }
}

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

int run(int argc, char** argv) {
  Args args;
  args.option("model").option("out").option("device").option("precision").option("backend");
  args.option("threads").option("format").option("files-from").flag("raw").flag("resume");
  args.flag("no-progress");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.has("model"), "--model DIR is required");
  CS_CHECK_ARG(args.has("out"), "--out OUT.npy is required");
  CS_CHECK_ARG(!args.positional().empty() || args.has("files-from"), "no inputs given");
  const std::string device = args.get_or("device", "cpu");
  if (device == "cuda") CS_THROW(kUnsupported, "this build has no CUDA backend");
  CS_CHECK_ARG(device == "cpu", "--device must be cpu or cuda, got '", device, "'");
  EncoderOptions opt;
  opt.precision = args.get_or("precision", "fp32");
  if (opt.precision == "fp16") CS_THROW(kUnsupported, "--precision fp16 needs the cuda device");
  opt.backend = args.get_or("backend", "cpu");
  opt.threads = args.get_int("threads", 0);
  const EmbedFormat format = parse_embed_format(args.get_or("format", "npy"));
  const std::string out_path = *args.get("out");

  Failures failures("embed");
  std::vector<Item> items =
      parse_inputs(expand_inputs(args.positional(), args.values("files-from")), failures);
  CS_CHECK_ARG(!items.empty() || failures.count() > 0, "no inputs given (no image files found)");
  auto enc = Encoder::load(*args.get("model"), opt);
  const ModelConfig& cfg = enc->config();
  const int dim = enc->embed_dim();
  const int S = cfg.vision.image_size;
  const PreprocessOptions pre = PreprocessOptions::from(cfg.preprocess);
  CS_CHECK_ARG(pre.size == S, "model ", *args.get("model"), ": preprocess size ", pre.size,
               " differs from the vision image_size ", S);
  auto output = EmbedOutput::open(out_path, format, dim, args.has("resume"));

  // With --resume, inputs already in the output are not encoded again.
  size_t skipped = 0;
  if (!output->existing().empty()) {
    std::vector<Item> todo;
    for (auto& it : items) {
      if (output->existing().count(it.source)) {
        ++skipped;
      } else {
        todo.push_back(std::move(it));
      }
    }
    items = std::move(todo);
  }

  // Inputs go in chunks, in order: preprocess (in parallel), encode, append durably. A bad
  // input is reported and left out; Ctrl-C stops after the current chunk.
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C kills at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Progress progress(items.size(), "inputs", progress_wanted(args.has("no-progress")));
  const size_t chunk = 4 * kImageBatch;
  const unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  size_t done = 0, written = 0;
  for (size_t c0 = 0; c0 < items.size() && !g_interrupted; c0 += chunk) {
    const size_t n = std::min(chunk, items.size() - c0);
    std::vector<std::vector<float>> pixels(n);
    std::vector<std::vector<int32_t>> ids(n);
    std::vector<std::string> errors(n);
    std::atomic<size_t> next{0};
    auto prepare = [&] {
      for (size_t i; (i = next++) < n;) {
        const Item& it = items[c0 + i];
        try {
          CS_CHECK_ARG(it.source.find('\n') == std::string::npos,
                       "the input's name contains a newline");
          if (it.kind == Item::kText) {
            ids[i] = Tokenizer::get().encode(it.value, cfg.text.context_length).ids;
          } else {
            pixels[i] =
                it.kind == Item::kTensor ? read_tensor(it, S) : preprocess_file(it.value, pre);
            CS_ASSERT(pixels[i].size() == 3ul * S * S);
          }
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (unsigned w = 1; w < std::min<unsigned>(workers, n); ++w) pool.emplace_back(prepare);
    prepare();
    for (auto& t : pool) t.join();

    std::vector<float> feats(n * dim);
    std::vector<size_t> batch;
    std::vector<float> px;
    auto flush_images = [&] {
      if (batch.empty()) return;
      std::vector<float> f(batch.size() * dim);
      enc->encode_images(px.data(), static_cast<int>(batch.size()), f.data());
      for (size_t b = 0; b < batch.size(); ++b) {
        std::copy(f.begin() + b * dim, f.begin() + (b + 1) * dim, feats.begin() + batch[b] * dim);
      }
      batch.clear();
      px.clear();
    };
    for (size_t i = 0; i < n; ++i) {
      if (!errors[i].empty() || items[c0 + i].kind == Item::kText) continue;
      px.insert(px.end(), pixels[i].begin(), pixels[i].end());
      std::vector<float>().swap(pixels[i]);
      batch.push_back(i);
      if (batch.size() == kImageBatch) flush_images();
    }
    flush_images();
    std::vector<std::vector<int32_t>> tb;
    for (size_t i = 0; i < n; ++i) {
      if (!errors[i].empty() || items[c0 + i].kind != Item::kText) continue;
      tb.push_back(std::move(ids[i]));
      batch.push_back(i);
    }
    for (size_t b0 = 0; b0 < tb.size(); b0 += kTextBatch) {
      const size_t m = std::min<size_t>(kTextBatch, tb.size() - b0);
      std::vector<std::vector<int32_t>> part(tb.begin() + b0, tb.begin() + b0 + m);
      std::vector<float> f(m * dim);
      enc->encode_texts(part, f.data());
      for (size_t b = 0; b < m; ++b) {
        std::copy(f.begin() + b * dim, f.begin() + (b + 1) * dim,
                  feats.begin() + batch[b0 + b] * dim);
      }
    }
    batch.clear();

    std::vector<std::string> keys;
    std::vector<float> rows;
    for (size_t i = 0; i < n; ++i) {
      if (!errors[i].empty()) {
        failures.add(items[c0 + i].source, errors[i], &progress);
        continue;
      }
      keys.push_back(items[c0 + i].source);
      rows.insert(rows.end(), feats.begin() + i * dim, feats.begin() + (i + 1) * dim);
    }
    if (!args.has("raw")) normalize_rows(rows, dim);
    output->append(keys, rows.data());
    written += keys.size();
    done += n;
    progress.update(done, failures.count());
  }
  progress.finish();
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  const std::string where = format == EmbedFormat::kNpy
                                ? out_path + " (row order in " + paths_file_for(out_path) + ")"
                                : out_path;
  std::fprintf(stderr, "clipserve embed: %zu rows in %s; %zu written now, %zu failed",
               output->rows(), where.c_str(), written, failures.count());
  if (skipped) std::fprintf(stderr, ", %zu already there (--resume)", skipped);
  std::fprintf(stderr, ", %.1f s\n", progress.seconds());
  failures.summarize();
  if (g_interrupted) {
    std::fprintf(stderr,
                 "clipserve embed: interrupted after %zu of %zu inputs; run again with "
                 "--resume to continue\n",
                 done, items.size());
    return 130;
  }
  return failures.count() ? 1 : 0;
}

const bool registered = register_command({
    "embed",
    "embed images, preprocessed tensors and texts into an .npy file",
    "usage: clipserve embed --model DIR --out OUT [--format npy|jsonl|csv] [--raw]\n"
    "                       [--device cpu|cuda] [--precision fp32|bf16|fp16]\n"
    "                       [--backend cpu|reference] [--threads N] [--resume]\n"
    "                       [--files-from FILE|-] [--no-progress] INPUT...\n\n"
    "INPUT is an image file, a directory (its image files, recursively, sorted by path), a .npy\n"
    "preprocessed image tensor (3, S, S) float32, text:STRING, or @FILE.jsonl with one\n"
    "{\"text\": ...} object per line. Rows are L2-normalized unless --raw, in input order.\n"
    "A bad input is reported on stderr (input: reason) and left out; the others are written\n"
    "and the exit status is 1. Rows are appended durably every 64 inputs, so an interrupted\n"
    "job keeps what it wrote (Ctrl-C stops after the current chunk; exit status 130).\n"
    "  --out OUT          npy: OUT is a float32 (N, embed_dim) .npy and OUT.paths.txt (OUT\n"
    "                     without .npy) names each row's input, one per line\n"
    "  --format F         npy (default), jsonl ({\"path\", \"embedding\"} per line) or csv\n"
    "                     (path,e0,...)\n"
    "  --resume           keep the rows already in OUT and skip their inputs\n"
    "  --files-from F     read input paths from F (one per line; - for stdin); repeatable\n"
    "  --model DIR        model directory or hub name\n"
    "  --precision P      fp32 (default) or bf16 (cpu with AVX512-BF16; else falls back to fp32)\n"
    "  --backend B        cpu (oneDNN, default) or reference (plain loops, slow)\n"
    "  --threads N        compute threads (default: all cores)\n"
    "  --no-progress      no progress line (it is shown only on a terminal)\n",
    run,
});

}  // namespace
}  // namespace clipserve::cli

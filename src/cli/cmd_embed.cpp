// `clipserve embed`: embeddings of images, preprocessed .npy tensors and texts into one .npy.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
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

std::vector<Item> parse_inputs(const std::vector<std::string>& args) {
  std::vector<Item> items;
  for (const std::string& a : args) {
    if (a.rfind("text:", 0) == 0) {
      items.push_back({Item::kText, a.substr(5), a});
    } else if (a.size() > 1 && a[0] == '@') {
      read_jsonl(a.substr(1), items);
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

int run(int argc, char** argv) {
  Args args;
  args.option("model").option("out").option("device").option("precision").option("backend");
  args.option("threads").flag("raw");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.has("model"), "--model DIR is required");
  CS_CHECK_ARG(args.has("out"), "--out OUT.npy is required");
  CS_CHECK_ARG(!args.positional().empty(), "no inputs given");
  const std::string device = args.get_or("device", "cpu");
  if (device == "cuda") CS_THROW(kUnsupported, "this build has no CUDA backend");
  CS_CHECK_ARG(device == "cpu", "--device must be cpu or cuda, got '", device, "'");
  EncoderOptions opt;
  opt.precision = args.get_or("precision", "fp32");
  if (opt.precision == "fp16") CS_THROW(kUnsupported, "--precision fp16 needs the cuda device");
  opt.backend = args.get_or("backend", "cpu");
  opt.threads = args.get_int("threads", 0);

  const std::vector<Item> items = parse_inputs(args.positional());
  auto enc = Encoder::load(*args.get("model"), opt);
  const ModelConfig& cfg = enc->config();
  const int dim = enc->embed_dim();
  const int S = cfg.vision.image_size;
  const PreprocessOptions pre = PreprocessOptions::from(cfg.preprocess);
  CS_CHECK_ARG(pre.size == S, "model ", *args.get("model"), ": preprocess size ", pre.size,
               " differs from the vision image_size ", S);
  std::vector<float> out(items.size() * dim);

  // Images and texts each go through the encoder in batches; rows keep input order.
  std::vector<size_t> pending;
  std::vector<float> pixels;
  auto flush_images = [&] {
    if (pending.empty()) return;
    std::vector<float> feats(pending.size() * dim);
    enc->encode_images(pixels.data(), static_cast<int>(pending.size()), feats.data());
    for (size_t i = 0; i < pending.size(); ++i) {
      std::copy(feats.begin() + i * dim, feats.begin() + (i + 1) * dim,
                out.begin() + pending[i] * dim);
    }
    pending.clear();
    pixels.clear();
  };
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    if (it.kind == Item::kText) continue;
    std::vector<float> t =
        it.kind == Item::kTensor ? read_tensor(it, S) : preprocess_file(it.value, pre);
    CS_ASSERT(t.size() == 3ul * S * S);
    pixels.insert(pixels.end(), t.begin(), t.end());
    pending.push_back(i);
    if (pending.size() == kImageBatch) flush_images();
  }
  flush_images();

  std::vector<std::vector<int32_t>> ids;
  auto flush_texts = [&] {
    if (pending.empty()) return;
    std::vector<float> feats(pending.size() * dim);
    enc->encode_texts(ids, feats.data());
    for (size_t i = 0; i < pending.size(); ++i) {
      std::copy(feats.begin() + i * dim, feats.begin() + (i + 1) * dim,
                out.begin() + pending[i] * dim);
    }
    pending.clear();
    ids.clear();
  };
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].kind != Item::kText) continue;
    try {
      ids.push_back(Tokenizer::get().encode(items[i].value, cfg.text.context_length).ids);
    } catch (const Error& e) {
      throw Error(e.code(), items[i].source + ": " + e.what());
    }
    pending.push_back(i);
    if (pending.size() == kTextBatch) flush_texts();
  }
  flush_texts();

  if (!args.has("raw")) normalize_rows(out, dim);
  write_npy_f32(*args.get("out"), out, {static_cast<int64_t>(items.size()), dim});
  return 0;
}

const bool registered = register_command({
    "embed",
    "embed images, preprocessed tensors and texts into an .npy file",
    "usage: clipserve embed --model DIR --out OUT.npy [--raw] [--device cpu|cuda]\n"
    "                       [--precision fp32|bf16|int8|fp16] [--backend cpu|reference]\n"
    "                       [--threads N] INPUT...\n\n"
    "INPUT is an image file, a .npy preprocessed image tensor (3, S, S) float32, text:STRING,\n"
    "or @FILE.jsonl with one {\"text\": ...} object per line. OUT is a float32 (N, embed_dim)\n"
    "array, one row per input in order, L2-normalized unless --raw.\n"
    "  --model DIR      open_clip model directory (open_clip_config.json + safetensors)\n"
    "  --precision P    fp32 (default), bf16 (cpu with AVX512-BF16; else falls back to fp32) or\n"
    "                   int8 (cpu: int8 matmuls in the transformer blocks, docs/backends.md)\n"
    "  --backend B      cpu (oneDNN, default) or reference (plain loops, slow)\n"
    "  --threads N      compute threads (default: all cores)\n",
    run,
});

}  // namespace
}  // namespace clipserve::cli

// int8 / bf16 accuracy against fp32 per architecture (synthetic weights, and the same with
// injected residual-stream outlier channels): embedding cosine min/median over the golden
// inputs and top-1 agreement of zero-shot labels (1000 generated labels). Prints a markdown
// table. Usage: bench_int8_accuracy [--reference] ARCH...   (--reference adds the plain
// reference int8 path, per token and per tensor: slow, use for small archs)
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "clipserve/tokenizer.h"
#include "core/file.h"
#include "core/npy.h"
#include "model/synthetic.h"
#include "nn/backend.h"

using namespace clipserve;

namespace {

std::vector<float> golden_pixels() {
  const auto z =
      read_file_bytes(std::string(CLIPSERVE_TEST_DATA) + "/model/image_input_224.u8.zlib");
  std::vector<uint8_t> u(6L * 3 * 224 * 224);
  uLongf n = u.size();
  if (uncompress(u.data(), &n, z.data(), z.size()) != Z_OK) throw std::runtime_error("pixels");
  const PreprocessConfig pc;
  std::vector<float> px(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    const int c = static_cast<int>(i / (224 * 224) % 3);
    px[i] = (static_cast<float>(u[i]) / 255.0f - pc.mean[c]) / pc.std[c];
  }
  return px;
}

std::vector<std::vector<int32_t>> golden_ids() {
  const NpyArray a = read_npy(std::string(CLIPSERVE_TEST_DATA) + "/model/ViT-B-32/text_tokens.npy");
  const auto v = a.to_i64();
  std::vector<std::vector<int32_t>> ids;
  for (long r = 0; r < a.shape.at(0); ++r) {
    std::vector<int32_t> row;
    for (long c = 0; c < a.shape.at(1); ++c) {
      row.push_back(static_cast<int32_t>(v[r * a.shape.at(1) + c]));
      if (row.back() == Tokenizer::kEndToken) break;
    }
    ids.push_back(row);
  }
  return ids;
}

// 1000 ImageNet-like labels: 40 adjectives x 25 nouns, "a photo of a {}.".
std::vector<std::vector<int32_t>> label_ids(int context) {
  const char* adj[] = {"red",     "small",  "wild",    "old",    "striped", "furry", "wooden",
                       "spotted", "green",  "tiny",    "giant",  "black",   "white", "golden",
                       "rusty",   "shiny",  "plastic", "frozen", "sleepy",  "angry", "curly",
                       "smooth",  "broken", "silver",  "purple", "young",   "long",  "round",
                       "square",  "soft",   "metal",   "glass",  "paper",   "dusty", "wet",
                       "bright",  "dark",   "spiky",   "fluffy", "tall"};
  const char* noun[] = {"dog",    "cat",    "car",  "bird",   "fish",   "truck", "boat",
                        "chair",  "lamp",   "shoe", "guitar", "clock",  "snake", "horse",
                        "frog",   "bottle", "tree", "house",  "bridge", "kite",  "spider",
                        "turtle", "camera", "hat",  "bicycle"};
  std::vector<std::vector<int32_t>> ids;
  for (const char* a : adj)
    for (const char* n : noun)
      ids.push_back(
          Tokenizer::get().encode(std::string("a photo of a ") + a + " " + n + ".", context).ids);
  return ids;
}

// Residual-stream outlier channels: channel c of every write into the stream (embeddings,
// ln_pre output, attention and MLP output projections) scaled by k, as reported for real ViTs.
std::shared_ptr<const WeightMap> with_outliers(const ModelConfig& cfg, const WeightMap& src) {
  auto out = std::make_shared<WeightMap>(src.source() + " + outliers");
  const std::vector<std::pair<int, float>> ch = {{3, 20.0f}, {17, 35.0f}, {42, 50.0f}, {61, 28.0f}};
  for (const std::string& name : src.names()) {
    const WeightTensor& t = src.at(name);
    std::vector<float> d(t.data, t.data + t.numel());
    const auto& sh = t.shape;
    auto scale_rows = [&](int64_t cols) {  // [width, cols] (rows = channels)
      for (auto [c, k] : ch)
        for (int64_t j = 0; j < cols; ++j) d[c * cols + j] *= k;
    };
    auto scale_cols = [&](int64_t width) {  // [..., width]
      for (int64_t r = 0; r < static_cast<int64_t>(d.size()) / width; ++r)
        for (auto [c, k] : ch) d[r * width + c] *= k;
    };
    const bool vis = name.rfind("visual.", 0) == 0;
    const int64_t w = vis ? cfg.vision.width : cfg.text.width;
    auto ends = [&](const char* s) {
      return name.size() >= std::strlen(s) &&
             name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0;
    };
    if (name == "visual.conv1.weight")
      scale_rows(t.numel() / w);
    else if (name == "visual.class_embedding" || name == "visual.positional_embedding" ||
             name == "visual.ln_pre.weight" || name == "visual.ln_pre.bias" ||
             name == "token_embedding.weight" || name == "positional_embedding")
      scale_cols(w);
    else if (ends("attn.out_proj.weight") || ends("mlp.c_proj.weight"))
      scale_rows(sh.at(1));
    else if (ends("attn.out_proj.bias") || ends("mlp.c_proj.bias"))
      scale_rows(1);
    out->add_owned(name, sh, std::move(d));
  }
  return out;
}

struct Emb {
  std::vector<float> img, txt, labels;
};

void normalize(std::vector<float>& v, int e) {
  for (size_t r = 0; r < v.size() / e; ++r) {
    double s = 0;
    for (int k = 0; k < e; ++k) s += double(v[r * e + k]) * v[r * e + k];
    const float inv = static_cast<float>(1.0 / std::sqrt(s));
    for (int k = 0; k < e; ++k) v[r * e + k] *= inv;
  }
}

Emb embed(nn::Backend& b, const std::vector<float>& px, int n,
          const std::vector<std::vector<int32_t>>& ids,
          const std::vector<std::vector<int32_t>>& labels) {
  const int e = b.config().embed_dim;
  Emb o;
  o.img.resize(static_cast<size_t>(n) * e);
  o.txt.resize(ids.size() * e);
  o.labels.resize(labels.size() * e);
  b.encode_images(px.data(), n, o.img.data());
  b.encode_texts(ids, o.txt.data());
  for (size_t i = 0; i < labels.size(); i += 64) {
    std::vector<std::vector<int32_t>> chunk(labels.begin() + i,
                                            labels.begin() + std::min(labels.size(), i + 64));
    b.encode_texts(chunk, o.labels.data() + i * e);
  }
  normalize(o.img, e);
  normalize(o.txt, e);
  normalize(o.labels, e);
  return o;
}

std::vector<double> row_cos(const std::vector<float>& a, const std::vector<float>& b, int e) {
  std::vector<double> c;
  for (size_t r = 0; r < a.size() / e; ++r) {
    double s = 0;
    for (int k = 0; k < e; ++k) s += double(a[r * e + k]) * b[r * e + k];
    c.push_back(s);
  }
  return c;
}

std::vector<int> top1(const Emb& m, int e) {
  std::vector<int> t;
  const size_t nl = m.labels.size() / e;
  for (size_t i = 0; i < m.img.size() / e; ++i) {
    int best = 0;
    double bs = -2;
    for (size_t l = 0; l < nl; ++l) {
      double s = 0;
      for (int k = 0; k < e; ++k) s += double(m.img[i * e + k]) * m.labels[l * e + k];
      if (s > bs) bs = s, best = static_cast<int>(l);
    }
    t.push_back(best);
  }
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  bool with_ref = false;
  std::vector<std::string> archs;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--reference")
      with_ref = true;
    else
      archs.push_back(argv[i]);
  }
  const std::vector<float> px = golden_pixels();
  const auto ids = golden_ids();
  std::printf(
      "| arch | weights | precision | image cos min | image cos median | text cos min | "
      "text cos median | zero-shot top-1 = fp32 |\n|---|---|---|---|---|---|---|---|\n");
  for (const std::string& arch : archs) {
    const ModelConfig cfg = builtin_model_config(arch);
    const auto labels = label_ids(cfg.text.context_length);
    const int e = cfg.embed_dim;
    auto plain = std::make_shared<const WeightMap>(synthetic_weights(cfg, 0));
    for (bool outl : {false, true}) {
      auto w = outl ? with_outliers(cfg, *plain) : plain;
      auto fp32 = nn::make_backend("cpu", cfg, w, {});
      const Emb base = embed(*fp32, px, 6, ids, labels);
      fp32.reset();
      const auto base_top = top1(base, e);
      std::vector<std::tuple<std::string, std::string, nn::BackendOptions>> runs;
      for (const char* p : {"bf16", "int8", "int8 (no outlier split)"}) {
        nn::BackendOptions o;
        o.precision = std::string(p).substr(0, 4);
        o.int8_outliers = std::string(p) == "int8";
        runs.emplace_back("cpu", p, o);
      }
      if (with_ref) {
        for (bool tok : {true, false}) {
          nn::BackendOptions o;
          o.precision = "int8";
          o.int8_per_token = tok;
          runs.emplace_back("reference", tok ? "int8 ref per-token" : "int8 ref per-tensor", o);
        }
      }
      for (auto& [backend, label, opt] : runs) {
        auto b = nn::make_backend(backend, cfg, w, opt);
        const Emb m =
            embed(*b, px, 6, ids,
                  with_ref && backend == "reference"
                      ? std::vector<std::vector<int32_t>>(labels.begin(), labels.begin() + 100)
                      : labels);
        const auto ci = row_cos(m.img, base.img, e), ct = row_cos(m.txt, base.txt, e);
        std::string agree = "-";
        if (m.labels.size() == base.labels.size()) {
          const auto t = top1(m, e);
          int same = 0;
          for (size_t i = 0; i < t.size(); ++i) same += t[i] == base_top[i];
          agree = std::to_string(same) + "/" + std::to_string(t.size());
        }
        std::printf("| %s | %s | %s | %.6f | %.6f | %.6f | %.6f | %s |\n", arch.c_str(),
                    outl ? "synthetic + outliers" : "synthetic", label.c_str(),
                    *std::min_element(ci.begin(), ci.end()), median(ci),
                    *std::min_element(ct.begin(), ct.end()), median(ct), agree.c_str());
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

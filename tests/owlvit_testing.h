// Helpers of the OWL-ViT tests (test_owlvit*.cpp): golden locations (../shared or the compact
// copies in tests/data/owlvit), model loading onto a backend, npy / detection comparisons.
#pragma once

#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "clipserve/image.h"
#include "core/file.h"
#include "core/npy.h"
#include "model/owlvit_format.h"
#include "nn/backend.h"
#include "owlvit/heads.h"
#include "owlvit/postprocess.h"
#include "testing.h"

namespace clipserve::test {

namespace owlvit_fs = std::filesystem;
using Json = nlohmann::json;

struct Golden {
  std::string root;    // folder holding the goldens (manifest.json, <model>/...)
  std::string model;   // checkpoint directory
  std::string images;  // folder of the source images
};

inline std::optional<Golden> shared_golden(const std::string& model) {
  auto fx = shared_fixtures();
  if (!fx) return std::nullopt;
  return Golden{*fx + "/golden/owlvit", *fx + "/models/owlvit-tiny/" + model, *fx + "/images"};
}

inline std::vector<float> npy_f32(const std::string& path) { return read_npy(path).to_f32(); }

inline Json manifest(const std::string& root) {
  return Json::parse(read_file_text(root + "/manifest.json"));
}

struct Model {
  LoadedOwlVit loaded;
  std::shared_ptr<const WeightMap> towers;
  owlvit::HeadWeights heads;
};

inline std::unique_ptr<Model> load(const std::string& dir) {
  auto m = std::make_unique<Model>();
  m->loaded = load_owlvit(dir);
  m->towers = std::shared_ptr<const WeightMap>(std::shared_ptr<void>(), &m->loaded.weights.towers);
  m->heads = owlvit::bind_head_weights(m->loaded.config, m->loaded.weights.towers,
                                       m->loaded.weights.heads);
  return m;
}

inline std::vector<float> pixels_of(const Golden& g, const std::string& file, int size) {
  PreprocessOptions opt;
  opt.size = size;
  opt.squash_rgb_first = true;
  return preprocess_file(g.images + "/" + file, opt);
}

// Token rows of <q>.input_ids.npy cut after the EOT.
inline std::vector<std::vector<int32_t>> query_ids(const std::string& path) {
  const NpyArray a = read_npy(path);
  const auto v = a.to_i64();
  const int64_t q = a.shape[0], len = a.shape[1];
  std::vector<std::vector<int32_t>> out(q);
  for (int64_t i = 0; i < q; ++i) {
    for (int64_t k = 0; k < len; ++k) {
      out[i].push_back(static_cast<int32_t>(v[i * len + k]));
      if (v[i * len + k] == 49407) break;
    }
  }
  return out;
}

inline void expect_close(const std::vector<float>& got, const std::string& golden_path, double rel,
                         const std::string& what) {
  const std::vector<float> want = npy_f32(golden_path);
  ASSERT_EQ(got.size(), want.size()) << what;
  const float tol = static_cast<float>(rel) * max_abs(want);
  if (std::getenv("OWLVIT_PRINT_DIFFS") != nullptr) {  // the precision reached, for docs
    std::printf("%s: max|diff| / max|golden| = %.2e\n", what.c_str(),
                max_abs_diff(got, want) / std::max(max_abs(want), 1e-30f));
  }
  EXPECT_LE(max_abs_diff(got, want), tol) << what << " (max |golden| " << max_abs(want) << ")";
}

inline void expect_detections(const std::vector<owlvit::Detection>& got, const Json& want,
                              float box_tol, bool check_labels, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(got.size(), want["scores"].size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i].score, want["scores"][i].get<double>(), 1e-5) << i;
    if (check_labels) {
      EXPECT_EQ(got[i].label, want["labels"][i].get<int>()) << i;
    }
    for (int k = 0; k < 4; ++k)
      EXPECT_NEAR(got[i].box[k], want["boxes_xyxy"][i][k].get<double>(), box_tol) << i << " " << k;
  }
}

// tests/data/owlvit/make_data.py: the patch16-256 checkpoint as a zlib-compressed
// model.safetensors (token rows outside the test queries zeroed), unpacked to a model directory.
inline std::string compact_model_dir() {
  static const std::string dir = [] {
    const std::string src = data_dir() + "/owlvit/";
    const std::vector<uint8_t> z = read_file_bytes(src + "patch16-256.model.safetensors.zlib");
    std::vector<uint8_t> raw;
    z_stream zs{};
    EXPECT_EQ(inflateInit(&zs), Z_OK);
    zs.next_in = const_cast<Bytef*>(z.data());
    zs.avail_in = static_cast<uInt>(z.size());
    std::vector<uint8_t> buf(1 << 20);
    int rc = Z_OK;
    while (rc == Z_OK) {
      zs.next_out = buf.data();
      zs.avail_out = static_cast<uInt>(buf.size());
      rc = inflate(&zs, Z_NO_FLUSH);
      raw.insert(raw.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    }
    inflateEnd(&zs);
    EXPECT_EQ(rc, Z_STREAM_END);
    const std::string d = temp_dir() + "/owlvit-patch16-256";
    owlvit_fs::create_directories(d);
    std::ofstream(d + "/model.safetensors", std::ios::binary)
        .write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
    owlvit_fs::copy_file(src + "patch16-256.config.json", d + "/config.json");
    owlvit_fs::copy_file(src + "patch16-256.preprocessor_config.json",
                         d + "/preprocessor_config.json");
    return d;
  }();
  return dir;
}

inline Golden compact_golden() {
  return Golden{data_dir() + "/owlvit/golden", compact_model_dir(), data_dir() + "/owlvit"};
}

}  // namespace clipserve::test

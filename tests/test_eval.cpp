// clipserve eval: the metrics against an independent computation (sorting), and the CLI on a
// small generated dataset against plain loops over the embeddings `clipserve embed` gives.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "clipserve/error.h"
#include "clipserve/eval.h"
#include "core/npy.h"
#include "engine_testing.h"
#include "testing.h"

namespace clipserve::test {
namespace {

namespace fs = std::filesystem;

std::vector<float> random_rows(int n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(static_cast<size_t>(n) * dim);
  for (auto& x : v) x = d(rng);
  for (int r = 0; r < n; ++r) {
    double s = 0;
    for (int k = 0; k < dim; ++k) s += double(v[r * dim + k]) * v[r * dim + k];
    for (int k = 0; k < dim; ++k) v[r * dim + k] /= static_cast<float>(std::sqrt(s));
  }
  return v;
}

// Independent: position of `want` after a stable sort of candidates by descending score.
int sorted_position(const float* q, const std::vector<float>& cand, int dim, int want) {
  const int n = static_cast<int>(cand.size() / dim);
  std::vector<double> s(n);
  for (int j = 0; j < n; ++j) {
    s[j] = 0;
    for (int k = 0; k < dim; ++k) s[j] += double(q[k]) * cand[j * dim + k];
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
  return static_cast<int>(std::find(order.begin(), order.end(), want) - order.begin());
}

struct Expected {
  double top1 = 0, top5 = 0;
  std::vector<double> per_class;
};

Expected expected_zeroshot(const std::vector<float>& img, const std::vector<float>& cls,
                           const std::vector<int>& labels, int dim) {
  Expected e;
  const int nc = static_cast<int>(cls.size() / dim);
  std::vector<int> n(nc), hit(nc);
  for (size_t i = 0; i < labels.size(); ++i) {
    const int p = sorted_position(img.data() + i * dim, cls, dim, labels[i]);
    e.top1 += p < 1;
    e.top5 += p < 5;
    n[labels[i]]++;
    hit[labels[i]] += p < 1;
  }
  e.top1 /= labels.size();
  e.top5 /= labels.size();
  for (int c = 0; c < nc; ++c) e.per_class.push_back(n[c] ? double(hit[c]) / n[c] : 0.0);
  return e;
}

TEST(EvalMetrics, ZeroShotMatchesSorting) {
  const int dim = 16, n = 60, nc = 9;
  const auto img = random_rows(n, dim, 1), cls = random_rows(nc, dim, 2);
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = (i * 7) % nc;
  const auto r = eval::zeroshot_metrics(img, cls, labels, dim, 5);
  const Expected e = expected_zeroshot(img, cls, labels, dim);
  EXPECT_EQ(r.n, n);
  EXPECT_DOUBLE_EQ(r.top1, e.top1);
  EXPECT_DOUBLE_EQ(r.top5, e.top5);
  EXPECT_GT(r.top5, r.top1);  // random data: the test can tell them apart
  for (int c = 0; c < nc; ++c) EXPECT_DOUBLE_EQ(r.per_class[c].top1, e.per_class[c]) << c;
  int errors = 0;
  for (const auto& [pair, count] : r.confusions) errors += count;
  EXPECT_EQ(errors, n - static_cast<int>(std::lround(e.top1 * n)));
}

TEST(EvalMetrics, ZeroShotHandCase) {
  // 2-d: classes along x, y; item 0 is x (class 0), item 1 is near x but labelled class 1.
  const std::vector<float> cls = {1, 0, 0, 1}, img = {1, 0, 0.8f, 0.6f};
  const auto r = eval::zeroshot_metrics(img, cls, {0, 1}, 2, 1);
  EXPECT_DOUBLE_EQ(r.top1, 0.5);
  EXPECT_EQ(r.predictions, (std::vector<int>{0, 0}));
  ASSERT_EQ(r.confusions.size(), 1u);
  EXPECT_EQ(r.confusions[0].first, (std::pair<int, int>{1, 0}));
  EXPECT_THROW(eval::zeroshot_metrics(img, cls, {0, 2}, 2), Error);
}

TEST(EvalMetrics, RetrievalMatchesSorting) {
  const int dim = 12, ni = 25;
  const auto img = random_rows(ni, dim, 3);
  std::vector<int> owner;
  for (int i = 0; i < ni; ++i)
    for (int c = 0; c < 1 + i % 3; ++c) owner.push_back(i);
  const auto txt = random_rows(static_cast<int>(owner.size()), dim, 4);
  const auto r = eval::retrieval_metrics(img, txt, owner, dim);
  ASSERT_EQ(r.ks, (std::vector<int>{1, 5, 10}));
  for (size_t k = 0; k < 3; ++k) {
    double t2i = 0, i2t = 0;
    for (size_t t = 0; t < owner.size(); ++t)
      t2i += sorted_position(txt.data() + t * dim, img, dim, owner[t]) < r.ks[k];
    for (int i = 0; i < ni; ++i) {
      int best = 1 << 30;
      for (size_t t = 0; t < owner.size(); ++t)
        if (owner[t] == i)
          best =
              std::min(best, sorted_position(img.data() + i * dim, txt, dim, static_cast<int>(t)));
      i2t += best < r.ks[k];
    }
    EXPECT_DOUBLE_EQ(r.text_to_image[k], t2i / owner.size()) << k;
    EXPECT_DOUBLE_EQ(r.image_to_text[k], i2t / ni) << k;
  }
  EXPECT_LT(r.text_to_image[0], r.text_to_image[2]);
}

TEST(EvalDatasets, BadInputsNameTheProblem) {
  const std::string t = temp_dir() + "/evalbad";
  fs::create_directories(t + "/empty");
  EXPECT_THROW(eval::load_image_folder(t + "/missing"), Error);
  EXPECT_THROW(eval::load_image_folder(t + "/empty"), Error);
  std::ofstream(t + "/a.jsonl") << "{\"image\": \"x.jpg\", \"captions\": []}\n";
  try {
    eval::load_caption_jsonl(t + "/a.jsonl");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.jsonl:1"), std::string::npos) << e.what();
  }
  fs::create_directories(t + "/cls/b");
  std::ofstream(t + "/cls/classes.txt") << "b\nzebra\n";
  EXPECT_THROW(eval::load_image_folder(t + "/cls"), Error);
}

// A generated dataset: 3 classes of random preprocessed tensors (.npy) plus one JPEG.
struct GeneratedSet {
  std::string dir;
  std::vector<std::string> classes = {"airplane", "cat", "zebra crossing"};
  std::vector<std::string> files;
  std::vector<int> labels;
};

const GeneratedSet& generated_set() {
  static const GeneratedSet g = [] {
    GeneratedSet s;
    s.dir = temp_dir() + "/evalset";
    std::mt19937 rng(5);
    std::normal_distribution<float> d;
    for (size_t c = 0; c < s.classes.size(); ++c) {
      fs::create_directories(s.dir + "/" + s.classes[c]);
      for (int k = 0; k < 3; ++k) {
        std::vector<float> px(3L * 224 * 224);
        for (auto& x : px) x = d(rng) + 0.3f * static_cast<float>(c);
        const std::string f = s.dir + "/" + s.classes[c] + "/img" + std::to_string(k) + ".npy";
        write_npy_f32(f, px, {3, 224, 224});
        s.files.push_back(f);
        s.labels.push_back(static_cast<int>(c));
      }
    }
    const std::string jpg = s.dir + "/cat/photo.jpg";
    fs::copy_file(data_dir() + "/image/rgb_420.jpg", jpg, fs::copy_options::overwrite_existing);
    // Files are sorted per class: cat/img0..2.npy, then cat/photo.jpg.
    s.files.insert(s.files.begin() + 6, jpg);
    s.labels.insert(s.labels.begin() + 6, 1);
    return s;
  }();
  return g;
}

std::vector<float> embed_cli(const std::vector<std::string>& inputs, const std::string& out) {
  std::string cmd = cli_path() + " embed --model " + tiny_model_dir() + " --out " + out;
  for (const auto& in : inputs) cmd += " '" + in + "'";
  auto [rc, log] = run_command(cmd + " 2>&1");
  EXPECT_EQ(rc, 0) << log;
  return read_npy(out).to_f32();
}

nlohmann::json last_json_line(const std::string& out) {
  std::string last;
  size_t s = 0;
  while (s < out.size()) {
    size_t e = out.find('\n', s);
    if (e == std::string::npos) e = out.size();
    if (e > s && out[s] == '{') last = out.substr(s, e - s);
    s = e + 1;
  }
  return nlohmann::json::parse(last);
}

TEST(EvalCli, ZeroShotEqualsPlainLoopsOverEmbeddings) {
  const GeneratedSet& g = generated_set();
  const std::vector<std::string> templates = {"a photo of a {}.", "a drawing of the {}."};
  auto [rc, out] =
      run_command(cli_path() + " eval zeroshot --model " + tiny_model_dir() + " --dataset " +
                  g.dir + " --template '" + templates[0] + "' --template '" + templates[1] +
                  "' --json --no-progress 2>/dev/null");
  ASSERT_EQ(rc, 0) << out;
  const auto j = last_json_line(out);
  const int dim = 32;
  const std::string t = temp_dir();
  const auto img = embed_cli(g.files, t + "/eval_img.npy");
  std::vector<std::string> prompts;
  for (const auto& c : g.classes)
    for (const auto& tp : templates)
      prompts.push_back("text:" + tp.substr(0, tp.find("{}")) + c + tp.substr(tp.find("{}") + 2));
  const auto pe = embed_cli(prompts, t + "/eval_txt.npy");
  std::vector<float> cls(g.classes.size() * dim, 0.0f);
  for (size_t c = 0; c < g.classes.size(); ++c) {
    double s = 0;
    for (int k = 0; k < dim; ++k) {
      cls[c * dim + k] = pe[(2 * c) * dim + k] + pe[(2 * c + 1) * dim + k];
      s += double(cls[c * dim + k]) * cls[c * dim + k];
    }
    for (int k = 0; k < dim; ++k) cls[c * dim + k] /= static_cast<float>(std::sqrt(s));
  }
  const Expected e = expected_zeroshot(img, cls, g.labels, dim);
  EXPECT_EQ(j["n"], static_cast<int>(g.files.size()));
  EXPECT_NEAR(j["top1"].get<double>(), e.top1, 1e-12);
  EXPECT_NEAR(j["top5"].get<double>(), e.top5, 1e-12);
  EXPECT_NEAR(j["metrics"]["acc1"].get<double>(), e.top1, 1e-12);
  ASSERT_EQ(j["per_class"].size(), g.classes.size());
  for (size_t c = 0; c < g.classes.size(); ++c) {
    EXPECT_EQ(j["per_class"][c]["class"], g.classes[c]);
    EXPECT_NEAR(j["per_class"][c]["top1"].get<double>(), e.per_class[c], 1e-12);
  }
  EXPECT_EQ(j["task"], "zeroshot_classification");
}

TEST(EvalCli, SettingsRowsAndABadFile) {
  const GeneratedSet& g = generated_set();
  const std::string d = temp_dir() + "/evalset_bad";
  fs::remove_all(d);
  fs::copy(g.dir, d, fs::copy_options::recursive);
  std::ofstream(d + "/cat/broken.png") << "not a png";
  auto [rc, out] = run_command(cli_path() + " eval zeroshot --model " + tiny_model_dir() +
                               " --dataset " + d + " --template '{}' --precision fp32,int8" +
                               " --fast-preprocess --json --no-progress 2>&1");
  EXPECT_EQ(rc, 1) << out;  // the broken file
  EXPECT_NE(out.find("broken.png"), std::string::npos) << out;
  int rows = 0;
  for (size_t s = out.find("{\"agreement"); s != std::string::npos;
       s = out.find("{\"agreement", s + 1))
    ++rows;
  EXPECT_EQ(rows, 4);  // fp32, int8, fp32+fast, int8+fast
  const auto j = last_json_line(out);
  EXPECT_EQ(j["n"], static_cast<int>(g.files.size()));
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["precision"], "int8");
  EXPECT_TRUE(j["fast_preprocess"].get<bool>());
  EXPECT_GE(j["agreement_with_first"].get<double>(), 0.0);
}

TEST(EvalCli, RetrievalEqualsPlainLoopsOverEmbeddings) {
  const GeneratedSet& g = generated_set();
  const std::string f = g.dir + "/caps.jsonl";
  const std::vector<std::vector<std::string>> caps = {
      {"a small plane", "an airport"},
      {"a cat"},
      {"a striped road", "people crossing", "zebra"},
      {"a photo"}};
  const std::vector<std::string> imgs = {g.files[0], g.files[4], g.files[7], g.files[6]};
  {
    std::ofstream o(f);
    for (size_t i = 0; i < imgs.size(); ++i) {
      nlohmann::json j = {{"image", fs::relative(imgs[i], g.dir).string()}, {"captions", caps[i]}};
      o << j.dump() << "\n";
    }
  }
  auto [rc, out] = run_command(cli_path() + " eval retrieval --model " + tiny_model_dir() +
                               " --dataset " + f + " --json --no-progress 2>/dev/null");
  ASSERT_EQ(rc, 0) << out;
  const auto j = last_json_line(out);
  const int dim = 32;
  const auto img = embed_cli(imgs, temp_dir() + "/ret_img.npy");
  std::vector<std::string> texts;
  std::vector<int> owner;
  for (size_t i = 0; i < caps.size(); ++i)
    for (const auto& c : caps[i])
      texts.push_back("text:" + c), owner.push_back(static_cast<int>(i));
  const auto txt = embed_cli(texts, temp_dir() + "/ret_txt.npy");
  for (int k : {1, 5, 10}) {
    double t2i = 0, i2t = 0;
    for (size_t t = 0; t < owner.size(); ++t)
      t2i += sorted_position(txt.data() + t * dim, img, dim, owner[t]) < k;
    for (size_t i = 0; i < imgs.size(); ++i) {
      int best = 1 << 30;
      for (size_t t = 0; t < owner.size(); ++t)
        if (owner[t] == static_cast<int>(i))
          best =
              std::min(best, sorted_position(img.data() + i * dim, txt, dim, static_cast<int>(t)));
      i2t += best < k;
    }
    const std::string ks = std::to_string(k);
    EXPECT_NEAR(j["metrics"]["image_retrieval_recall@" + ks].get<double>(), t2i / owner.size(),
                1e-12);
    EXPECT_NEAR(j["metrics"]["text_retrieval_recall@" + ks].get<double>(), i2t / imgs.size(),
                1e-12);
  }
  EXPECT_EQ(j["texts"], static_cast<int>(owner.size()));
}

}  // namespace
}  // namespace clipserve::test

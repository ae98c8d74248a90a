// Datasets (ImageFolder, caption JSONL) and the metrics of clipserve eval (clip_benchmark's).
#include "clipserve/eval.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "clipserve/engine.h"
#include "core/check.h"
#include "core/file.h"

namespace clipserve::eval {

namespace fs = std::filesystem;

namespace {

bool image_like(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* kExt[] = {".jpg",  ".jpeg", ".png",  ".bmp", ".gif",
                               ".webp", ".tif",  ".tiff", ".npy"};
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* x) { return e == x; });
}

double dot(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += double(a[i]) * b[i];
  return s;
}

// Rank of candidate `c` among scores (0 = best): higher scores first, ties by lower index.
int rank_of(const std::vector<double>& s, int c) {
  int r = 0;
  for (int j = 0; j < static_cast<int>(s.size()); ++j) r += s[j] > s[c] || (s[j] == s[c] && j < c);
  return r;
}

int argmax(const std::vector<double>& s) {
  return static_cast<int>(std::max_element(s.begin(), s.end()) - s.begin());
}

}  // namespace

ImageFolder load_image_folder(const std::string& dir) {
  CS_CHECK_ARG(fs::is_directory(dir), "dataset '", dir, "' is not a directory");
  ImageFolder ds;
  const fs::path list = fs::path(dir) / "classes.txt";
  if (fs::exists(list)) {
    std::ifstream in(list);
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty()) continue;
      CS_CHECK_ARG(fs::is_directory(fs::path(dir) / line), list.string(), ": class '", line,
                   "' has no folder in ", dir);
      ds.classes.push_back(line);
    }
  } else {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && name[0] != '.') ds.classes.push_back(name);
    }
    std::sort(ds.classes.begin(), ds.classes.end());
  }
  CS_CHECK_ARG(!ds.classes.empty(), "dataset '", dir, "' has no class folders");
  for (size_t c = 0; c < ds.classes.size(); ++c) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(fs::path(dir) / ds.classes[c])) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && name[0] != '.' && image_like(e.path()))
        files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      ds.files.push_back(std::move(f));
      ds.labels.push_back(static_cast<int>(c));
    }
  }
  CS_CHECK_ARG(!ds.files.empty(), "dataset '", dir, "' has no images in its class folders");
  return ds;
}

CaptionSet load_caption_jsonl(const std::string& path) {
  const std::string text = read_file_text(path);
  const fs::path base = fs::path(path).parent_path();
  CaptionSet cs;
  size_t pos = 0;
  for (int line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      CS_THROW(kInvalidArgument, path, ":", line_no, ": not JSON: ", e.what());
    }
    CS_CHECK_ARG(j.is_object() && j.contains("image") && j["image"].is_string(), path, ":", line_no,
                 ": needs \"image\": a path string");
    CS_CHECK_ARG(j.contains("captions") && j["captions"].is_array() && !j["captions"].empty(), path,
                 ":", line_no, ": needs \"captions\": a non-empty array of strings");
    std::vector<std::string> caps;
    for (const auto& c : j["captions"]) {
      CS_CHECK_ARG(c.is_string(), path, ":", line_no, ": a caption is not a string");
      caps.push_back(c.get<std::string>());
    }
    fs::path img = j["image"].get<std::string>();
    if (img.is_relative()) img = base / img;
    cs.images.push_back(img.string());
    cs.captions.push_back(std::move(caps));
  }
  CS_CHECK_ARG(!cs.images.empty(), path, ": no entries");
  return cs;
}

ZeroShotResult zeroshot_metrics(const std::vector<float>& img, const std::vector<float>& cls,
                                const std::vector<int>& labels, int dim, int top_k) {
  CS_CHECK_ARG(dim > 0 && img.size() == labels.size() * dim && cls.size() % dim == 0,
               "zeroshot_metrics: sizes do not match");
  const int n = static_cast<int>(labels.size()), nc = static_cast<int>(cls.size() / dim);
  ZeroShotResult r;
  r.n = n;
  r.per_class.resize(nc);
  std::vector<int> hits(nc, 0);
  std::map<std::pair<int, int>, int> conf;
  int h1 = 0, hk = 0;
  std::vector<double> s(nc);
  for (int i = 0; i < n; ++i) {
    const int y = labels[i];
    CS_CHECK_ARG(y >= 0 && y < nc, "zeroshot_metrics: label ", y, " of item ", i, " out of range");
    for (int c = 0; c < nc; ++c)
      s[c] = dot(img.data() + static_cast<long>(i) * dim, cls.data() + static_cast<long>(c) * dim,
                 dim);
    const int rank = rank_of(s, y);
    const int pred = argmax(s);
    r.predictions.push_back(pred);
    h1 += rank < 1;
    hk += rank < top_k;
    r.per_class[y].n++;
    hits[y] += rank < 1;
    if (pred != y) conf[{y, pred}]++;
  }
  r.top1 = n ? double(h1) / n : 0;
  r.top5 = n ? double(hk) / n : 0;
  int with = 0;
  for (int c = 0; c < nc; ++c) {
    if (r.per_class[c].n == 0) continue;
    r.per_class[c].top1 = double(hits[c]) / r.per_class[c].n;
    r.mean_per_class_recall += r.per_class[c].top1;
    ++with;
  }
  if (with) r.mean_per_class_recall /= with;
  r.confusions.assign(conf.begin(), conf.end());
  std::stable_sort(r.confusions.begin(), r.confusions.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return r;
}

RetrievalResult retrieval_metrics(const std::vector<float>& img, const std::vector<float>& txt,
                                  const std::vector<int>& text_image, int dim,
                                  std::vector<int> ks) {
  CS_CHECK_ARG(dim > 0 && img.size() % dim == 0 && txt.size() == text_image.size() * dim,
               "retrieval_metrics: sizes do not match");
  const int ni = static_cast<int>(img.size() / dim), nt = static_cast<int>(text_image.size());
  RetrievalResult r;
  r.images = ni;
  r.texts = nt;
  r.ks = ks;
  r.image_to_text.assign(ks.size(), 0);
  r.text_to_image.assign(ks.size(), 0);
  std::vector<double> sim(static_cast<size_t>(nt) * ni);
  for (int t = 0; t < nt; ++t)
    for (int i = 0; i < ni; ++i)
      sim[static_cast<long>(t) * ni + i] = dot(txt.data() + static_cast<long>(t) * dim,
                                               img.data() + static_cast<long>(i) * dim, dim);
  std::vector<double> s(ni);
  for (int t = 0; t < nt; ++t) {
    CS_CHECK_ARG(text_image[t] >= 0 && text_image[t] < ni, "retrieval_metrics: text ", t,
                 " names image ", text_image[t], ", out of range");
    std::copy(sim.begin() + static_cast<long>(t) * ni, sim.begin() + static_cast<long>(t + 1) * ni,
              s.begin());
    const int rank = rank_of(s, text_image[t]);
    r.text_top1.push_back(argmax(s));
    for (size_t k = 0; k < ks.size(); ++k) r.text_to_image[k] += rank < ks[k];
  }
  std::vector<double> st(nt);
  for (int i = 0; i < ni; ++i) {
    for (int t = 0; t < nt; ++t) st[t] = sim[static_cast<long>(t) * ni + i];
    int best = nt;  // best rank among the image's own captions
    for (int t = 0; t < nt; ++t)
      if (text_image[t] == i) best = std::min(best, rank_of(st, t));
    for (size_t k = 0; k < ks.size(); ++k) r.image_to_text[k] += best < ks[k];
  }
  for (size_t k = 0; k < ks.size(); ++k) {
    if (nt) r.text_to_image[k] /= nt;
    if (ni) r.image_to_text[k] /= ni;
  }
  return r;
}

const std::vector<std::string>& imagenet_templates() { return Engine::imagenet_templates(); }

}  // namespace clipserve::eval

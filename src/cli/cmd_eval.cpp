// `clipserve eval zeroshot|retrieval`: accuracy of the model on the user's data per precision
// and preprocessing setting (top-1/top-5 on an ImageFolder, recall@k on caption JSONL), with
// images/s and the per-item agreement with the first setting, in one table or JSON lines.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <future>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "clipserve/encoder.h"
#include "clipserve/engine.h"
#include "clipserve/eval.h"
#include "clipserve/image.h"
#include "core/check.h"
#include "core/file.h"
#include "core/npy.h"

namespace clipserve::cli {

namespace {

const char* kUsage =
    "usage: clipserve eval zeroshot --model DIR --dataset DIR [options]\n"
    "       clipserve eval retrieval --model DIR --dataset FILE.jsonl [options]\n"
    "\n"
    "zeroshot: ImageFolder layout (one folder per class, folder name = class name, or the\n"
    "  classes listed in DIR/classes.txt); class features average the prompt templates "
    "(open_clip's\n"
    "  80 ImageNet templates by default). Reports top-1, top-5, mean per-class recall, per-class\n"
    "  accuracy and the most frequent confusions.\n"
    "retrieval: one {\"image\": PATH, \"captions\": [...]} per line (paths relative to the file);\n"
    "  reports image->text and text->image recall@1/5/10 as clip_benchmark does.\n"
    "Images may also be .npy preprocessed tensors (3, S, S). Every setting (each --precision, and\n"
    "each again with fast preprocessing when --fast-preprocess) is one row of the table, with\n"
    "images/s and the fraction of items whose top-1 equals the first setting's. An image that\n"
    "fails is reported on stderr and left out; the exit status is then 1.\n"
    "\n"
    "options:\n"
    "  --precision P,...    fp32 (default), bf16, int8; several give one row each\n"
    "  --fast-preprocess    also run every precision with the fast (non-exact) preprocessing\n"
    "  --template T         zeroshot prompt template containing {} (repeatable)\n"
    "  --templates SET      imagenet (default) or simple\n"
    "  --confusions N       confusion pairs to list (default 10)\n"
    "  --json               one JSON object per setting on stdout (clip_benchmark's shape:\n"
    "                       task, dataset, model, metrics; plus top1, top5, n, per_class ...);\n"
    "                       the table then goes to stderr\n"
    "  --batch N            largest encoder batch (default 16)\n"
    "  --backend B          cpu (default) or reference\n"
    "  --threads N          encoder threads (default: all cores)\n"
    "  --no-progress        no progress bar (shown on a terminal)\n";

struct Setting {
  std::string precision;
  bool fast = false;
  std::string label() const { return precision + (fast ? "+fast" : ""); }
};

std::unique_ptr<Engine> make_engine(const std::string& model, const Setting& s, const Args& args) {
  EngineOptions eo;
  eo.encoder.backend = args.get_or("backend", "cpu");
  eo.encoder.precision = s.precision;
  eo.encoder.threads = args.get_int("threads", 0);
  eo.max_batch = args.get_int("batch", 16);
  CS_CHECK_ARG(eo.max_batch >= 1, "--batch must be >= 1");
  eo.max_queue = std::max(256, 4 * eo.max_batch);
  eo.warmup = false;
  auto enc = Encoder::load(model, eo.encoder);
  EngineFrontends fe = Engine::default_frontends(enc->config());
  if (s.fast) {
    PreprocessOptions popt = PreprocessOptions::from(enc->config().preprocess);
    popt.fast = true;
    fe.preprocess = [popt](std::span<const uint8_t> bytes, float* out, const std::string& name,
                           double*) { preprocess_image(bytes, popt, out, name); };
  }
  return Engine::create(std::move(enc), std::move(fe), eo);
}

ImageInput read_input(const std::string& path) {
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".npy") == 0) {
    return ImageInput::preprocessed(read_npy(path).to_f32(), path);
  }
  return ImageInput::encoded(read_file_bytes(path), path);
}

// Embeds every file (one request each, so a bad file fails alone); ok[i] false for failures.
std::vector<float> embed_files(Engine& engine, const std::vector<std::string>& files,
                               std::vector<bool>& ok, const std::string& what, bool progress,
                               int* failures) {
  const int dim = engine.embed_dim();
  std::vector<float> out(files.size() * dim, 0.0f);
  ok.assign(files.size(), false);
  std::deque<std::pair<size_t, std::future<Embeddings>>> pending;
  size_t next = 0, done = 0;
  auto finish = [&] {
    auto [i, fut] = std::move(pending.front());
    pending.pop_front();
    try {
      Embeddings e = fut.get();
      std::copy(e.data.begin(), e.data.end(), out.begin() + static_cast<long>(i) * dim);
      ok[i] = true;
    } catch (const std::exception& ex) {
      ++*failures;
      const std::string msg = ex.what();  // most errors already name the file
      std::fprintf(stderr, "%sclipserve eval: %s%s\n", progress ? "\n" : "",
                   msg.find(files[i]) == std::string::npos ? (files[i] + ": ").c_str() : "",
                   msg.c_str());
    }
    ++done;
    if (progress && (done % 8 == 0 || done == files.size()))
      std::fprintf(stderr, "\r%s: images %zu/%zu", what.c_str(), done, files.size());
  };
  while (next < files.size() || !pending.empty()) {
    while (next < files.size() && pending.size() < 64) {
      std::vector<ImageInput> one;
      try {
        one.push_back(read_input(files[next]));
        pending.emplace_back(next, engine.submit_images(std::move(one)));
      } catch (const std::exception& ex) {
        std::promise<Embeddings> p;
        p.set_exception(std::current_exception());
        pending.emplace_back(next, p.get_future());
      }
      ++next;
    }
    finish();
  }
  if (progress) std::fprintf(stderr, "\n");
  return out;
}

std::vector<float> embed_texts(Engine& engine, const std::vector<std::string>& texts) {
  const int dim = engine.embed_dim();
  std::vector<float> out;
  out.reserve(texts.size() * dim);
  for (size_t i = 0; i < texts.size(); i += 256) {
    std::vector<std::string> chunk(texts.begin() + i,
                                   texts.begin() + std::min(texts.size(), i + 256));
    Embeddings e = engine.embed_texts(std::move(chunk));
    out.insert(out.end(), e.data.begin(), e.data.end());
  }
  return out;
}

void normalize_rows(std::vector<float>& v, int dim) {
  for (size_t r = 0; r < v.size() / dim; ++r) {
    double s = 0;
    for (int k = 0; k < dim; ++k) s += double(v[r * dim + k]) * v[r * dim + k];
    const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
    for (int k = 0; k < dim; ++k) v[r * dim + k] = static_cast<float>(v[r * dim + k] * inv);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct Common {
  std::string model, dataset;
  std::vector<Setting> settings;
  bool json = false, progress = false;
};

Common parse_common(Args& args, int argc, char** argv) {
  args.option("model").option("dataset").option("precision").option("template");
  args.option("templates").option("confusions").option("batch").option("backend");
  args.option("threads").flag("fast-preprocess").flag("json").flag("no-progress");
  args.parse(argc, argv);
  Common c;
  CS_CHECK_ARG(args.has("model"), "--model DIR is required");
  CS_CHECK_ARG(args.has("dataset"), "--dataset is required");
  CS_CHECK_ARG(args.positional().empty(), "unexpected argument '", args.positional().front(), "'");
  c.model = *args.get("model");
  c.dataset = *args.get("dataset");
  auto precs = args.get_list("precision");
  if (precs.empty()) precs = {"fp32"};
  for (const auto& p : precs) {
    CS_CHECK_ARG(p == "fp32" || p == "bf16" || p == "int8", "--precision: unknown '", p,
                 "' (fp32, bf16, int8)");
    c.settings.push_back({p, false});
  }
  if (args.has("fast-preprocess"))
    for (const auto& p : precs) c.settings.push_back({p, true});
  c.json = args.has("json");
  c.progress = isatty(STDERR_FILENO) && !args.has("no-progress");
  return c;
}

void print_line(const nlohmann::json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  std::fflush(stdout);
}

int run_zeroshot(int argc, char** argv) {
  Args args;
  Common c = parse_common(args, argc, argv);
  const eval::ImageFolder ds = eval::load_image_folder(c.dataset);
  std::vector<std::string> templates = args.values("template");
  if (auto set = args.get("templates")) {
    CS_CHECK_ARG(*set == "imagenet" || *set == "simple", "--templates must be imagenet or simple");
    const auto& t = *set == "imagenet" ? Engine::imagenet_templates() : Engine::simple_templates();
    templates.insert(templates.end(), t.begin(), t.end());
  }
  if (templates.empty()) templates = Engine::imagenet_templates();
  for (const auto& t : templates) Engine::apply_template(t, "x");  // validates the placeholder
  const int n_conf = args.get_int("confusions", 10);
  FILE* table = c.json ? stderr : stdout;
  std::fprintf(table, "%zu images, %zu classes, %zu templates\n", ds.files.size(),
               ds.classes.size(), templates.size());
  std::fprintf(table, "%-12s %7s %7s %7s %9s %9s %9s\n", "setting", "n", "top1", "top5", "mean_cls",
               "images/s", "agree");
  std::vector<int> first_pred;
  std::vector<bool> first_ok;
  int failures = 0;
  for (size_t si = 0; si < c.settings.size(); ++si) {
    const Setting& s = c.settings[si];
    auto engine = make_engine(c.model, s, args);
    const int dim = engine->embed_dim();
    std::vector<std::string> prompts;
    for (const auto& cls : ds.classes)
      for (const auto& t : templates) prompts.push_back(Engine::apply_template(t, cls));
    std::vector<float> pe = embed_texts(*engine, prompts);  // normalized rows
    std::vector<float> cls(ds.classes.size() * dim, 0.0f);
    for (size_t k = 0; k < ds.classes.size(); ++k)
      for (size_t t = 0; t < templates.size(); ++t)
        for (int d = 0; d < dim; ++d) cls[k * dim + d] += pe[(k * templates.size() + t) * dim + d];
    normalize_rows(cls, dim);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<bool> ok;
    int fails = 0;
    std::vector<float> img = embed_files(*engine, ds.files, ok, s.label(), c.progress, &fails);
    const double ips = (ds.files.size() - fails) / std::max(seconds_since(t0), 1e-9);
    CS_CHECK_ARG(fails < static_cast<int>(ds.files.size()), "no image of ", c.dataset,
                 " could be read (", s.label(), ")");
    if (si == 0) failures = fails;
    std::vector<float> kept;
    std::vector<int> labels, index;
    for (size_t i = 0; i < ds.files.size(); ++i) {
      if (!ok[i]) continue;
      kept.insert(kept.end(), img.begin() + i * dim, img.begin() + (i + 1) * dim);
      labels.push_back(ds.labels[i]);
      index.push_back(static_cast<int>(i));
    }
    const eval::ZeroShotResult r = eval::zeroshot_metrics(kept, cls, labels, dim, 5);
    std::vector<int> pred(ds.files.size(), -1);
    for (size_t j = 0; j < index.size(); ++j) pred[index[j]] = r.predictions[j];
    nlohmann::json agree = nullptr;
    if (si == 0) {
      first_pred = pred;
      first_ok = ok;
    } else {
      int same = 0, both = 0;
      for (size_t i = 0; i < pred.size(); ++i) {
        if (!ok[i] || !first_ok[i]) continue;
        ++both;
        same += pred[i] == first_pred[i];
      }
      agree = both ? double(same) / both : 0.0;
    }
    std::fprintf(table, "%-12s %7d %7.4f %7.4f %9.4f %9.2f %9s\n", s.label().c_str(), r.n, r.top1,
                 r.top5, r.mean_per_class_recall, ips,
                 agree.is_null() ? "-" : std::to_string(agree.get<double>()).substr(0, 6).c_str());
    if (!c.json) continue;
    nlohmann::json j;
    j["task"] = "zeroshot_classification";
    j["dataset"] = c.dataset;
    j["model"] = c.model;
    j["pretrained"] = c.model;
    j["language"] = "en";
    j["metrics"] = {
        {"acc1", r.top1}, {"acc5", r.top5}, {"mean_per_class_recall", r.mean_per_class_recall}};
    j["precision"] = s.precision;
    j["fast_preprocess"] = s.fast;
    j["top1"] = r.top1;
    j["top5"] = r.top5;
    j["n"] = r.n;
    j["failed"] = fails;
    j["images_per_s"] = ips;
    j["agreement_with_first"] = agree;
    auto pc = nlohmann::json::array();
    for (size_t k = 0; k < ds.classes.size(); ++k)
      pc.push_back(
          {{"class", ds.classes[k]}, {"n", r.per_class[k].n}, {"top1", r.per_class[k].top1}});
    j["per_class"] = pc;
    auto cf = nlohmann::json::array();
    for (int k = 0; k < std::min<int>(n_conf, static_cast<int>(r.confusions.size())); ++k) {
      const auto& [pair, count] = r.confusions[k];
      cf.push_back({{"true", ds.classes[pair.first]},
                    {"predicted", ds.classes[pair.second]},
                    {"count", count}});
    }
    j["confusions"] = cf;
    print_line(j);
  }
  return failures ? 1 : 0;
}

int run_retrieval(int argc, char** argv) {
  Args args;
  Common c = parse_common(args, argc, argv);
  const eval::CaptionSet ds = eval::load_caption_jsonl(c.dataset);
  FILE* table = c.json ? stderr : stdout;
  size_t ncap = 0;
  for (const auto& v : ds.captions) ncap += v.size();
  std::fprintf(table, "%zu images, %zu captions\n", ds.images.size(), ncap);
  std::fprintf(table, "%-12s %6s %6s %6s %6s %6s %6s %9s %7s\n", "setting", "i2t@1", "i2t@5",
               "i2t@10", "t2i@1", "t2i@5", "t2i@10", "images/s", "agree");
  std::vector<int> first_top;
  int failures = 0;
  for (size_t si = 0; si < c.settings.size(); ++si) {
    const Setting& s = c.settings[si];
    auto engine = make_engine(c.model, s, args);
    const int dim = engine->embed_dim();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<bool> ok;
    int fails = 0;
    std::vector<float> img = embed_files(*engine, ds.images, ok, s.label(), c.progress, &fails);
    const double ips = (ds.images.size() - fails) / std::max(seconds_since(t0), 1e-9);
    CS_CHECK_ARG(fails < static_cast<int>(ds.images.size()), "no image of ", c.dataset,
                 " could be read (", s.label(), ")");
    if (si == 0) failures = fails;
    // Failed images are left out together with their captions.
    std::vector<float> kept;
    std::vector<std::string> texts;
    std::vector<int> owner;
    int kept_n = 0;
    for (size_t i = 0; i < ds.images.size(); ++i) {
      if (!ok[i]) continue;
      kept.insert(kept.end(), img.begin() + i * dim, img.begin() + (i + 1) * dim);
      for (const auto& cap : ds.captions[i]) {
        texts.push_back(cap);
        owner.push_back(kept_n);
      }
      ++kept_n;
    }
    const std::vector<float> txt = embed_texts(*engine, texts);
    const eval::RetrievalResult r = eval::retrieval_metrics(kept, txt, owner, dim);
    nlohmann::json agree = nullptr;
    if (si == 0) {
      first_top = r.text_top1;
    } else if (first_top.size() == r.text_top1.size()) {
      int same = 0;
      for (size_t t = 0; t < first_top.size(); ++t) same += first_top[t] == r.text_top1[t];
      agree = first_top.empty() ? 0.0 : double(same) / first_top.size();
    }
    std::fprintf(table, "%-12s %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f %9.2f %7s\n", s.label().c_str(),
                 r.image_to_text[0], r.image_to_text[1], r.image_to_text[2], r.text_to_image[0],
                 r.text_to_image[1], r.text_to_image[2], ips,
                 agree.is_null() ? "-" : std::to_string(agree.get<double>()).substr(0, 6).c_str());
    if (!c.json) continue;
    nlohmann::json j;
    j["task"] = "zeroshot_retrieval";
    j["dataset"] = c.dataset;
    j["model"] = c.model;
    j["pretrained"] = c.model;
    j["language"] = "en";
    nlohmann::json m;
    for (size_t k = 0; k < r.ks.size(); ++k) {
      // clip_benchmark: image retrieval = text -> image, text retrieval = image -> text.
      m["image_retrieval_recall@" + std::to_string(r.ks[k])] = r.text_to_image[k];
      m["text_retrieval_recall@" + std::to_string(r.ks[k])] = r.image_to_text[k];
    }
    j["metrics"] = m;
    j["precision"] = s.precision;
    j["fast_preprocess"] = s.fast;
    j["images"] = r.images;
    j["texts"] = r.texts;
    j["failed"] = fails;
    j["images_per_s"] = ips;
    j["agreement_with_first"] = agree;
    print_line(j);
  }
  return failures ? 1 : 0;
}

int run(int argc, char** argv) {
  CS_CHECK_ARG(argc >= 2, "eval needs a task: zeroshot or retrieval (clipserve help eval)");
  const std::string task = argv[1];
  if (task == "zeroshot") return run_zeroshot(argc - 1, argv + 1);
  if (task == "retrieval") return run_retrieval(argc - 1, argv + 1);
  CS_THROW(kInvalidArgument, "eval: unknown task '", task, "' (zeroshot or retrieval)");
}

const bool registered = register_command(
    {"eval", "zero-shot / retrieval accuracy on your data, per precision", kUsage, run});

}  // namespace

}  // namespace clipserve::cli

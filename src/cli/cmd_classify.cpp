// `clipserve classify`: zero-shot classification of many image files through the Engine
// (parallel decoding, batched encoding), one JSON line per image on stdout.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/inputs.h"
#include "clipserve/engine.h"
#include "core/check.h"
#include "core/file.h"

namespace clipserve::cli {

namespace {

const char* kUsage =
    "usage: clipserve classify --model DIR (--labels a,b,c | --labels-file F)\n"
    "                          [--template T]... [--templates imagenet|simple]\n"
    "                          [--format jsonl|csv] [--top K] [--files-from FILE|-] IMAGE|DIR...\n"
    "\n"
    "Zero-shot classification as open_clip does it: each label's prompt features (one per\n"
    "template, default \"a photo of a {}.\") are averaged; probabilities are the softmax of\n"
    "logit_scale x cosine. Prints one JSON line per image, in input order:\n"
    "  {\"file\": ..., \"labels\": [{\"label\", \"prob\", \"cosine\"}...], \"timings\": {...}}\n"
    "labels sorted by probability. A file that fails gives {\"file\", \"error\"} (and a line\n"
    "on stderr); the others are still classified, a summary of the failures ends the job and\n"
    "the exit status is 1. A directory means its image files (recursive, sorted by path).\n"
    "A progress line with rate and ETA goes to stderr on a terminal.\n"
    "--format csv prints a header \"file,rank,label,prob,cosine,error\" and one row per\n"
    "(file, label) kept (one row with the error for a file that failed).\n"
    "\n"
    "options:\n"
    "  --model DIR          model directory\n"
    "  --labels a,b,c       comma-separated labels (repeatable: the lists accumulate)\n"
    "  --labels-file F      one label per line (empty lines skipped)\n"
    "  --template T         prompt template containing {} (repeatable)\n"
    "  --templates SET      imagenet (open_clip's 80 ImageNet prompts) or simple\n"
    "  --top K, --top-k K   keep the K most probable labels (default: all)\n"
    "  --format F           jsonl (default) or csv\n"
    "  --files-from F       read image paths from F (one per line; - for stdin); repeatable\n"
    "  --batch N            largest encoder batch (default 16)\n"
    "  --backend B          cpu (default) or reference\n"
    "  --precision P        fp32 (default), bf16 or int8\n"
    "  --threads N          encoder threads (default: all cores)\n"
    "  --no-progress        no progress bar\n";

std::vector<std::string> read_labels_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) CS_THROW(kNotFound, "cannot open labels file ", path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  CS_CHECK_ARG(!out.empty(), path, ": no labels in the file");
  return out;
}

int run_classify(int argc, char** argv) {
  Args args;
  args.option("model")
      .option("labels")
      .option("labels-file")
      .option("template")
      .option("templates")
      .option("top-k")
      .option("top")
      .option("format")
      .option("files-from")
      .option("batch")
      .option("backend")
      .option("precision")
      .option("threads")
      .flag("no-progress");
  args.parse(argc, argv);
  const auto model = args.get("model");
  CS_CHECK_ARG(model.has_value(), "--model DIR is required");
  CS_CHECK_ARG(args.has("labels") != args.has("labels-file"),
               "give exactly one of --labels a,b,c or --labels-file F");
  CS_CHECK_ARG(!args.positional().empty() || args.has("files-from"), "no images given");
  const std::vector<InputEntry> files = expand_inputs(args.positional(), args.values("files-from"));
  CS_CHECK_ARG(!files.empty(), "no images given (no image files found)");
  const std::string format = args.get_or("format", "jsonl");
  CS_CHECK_ARG(format == "jsonl" || format == "csv", "--format must be jsonl or csv, got '", format,
               "'");
  // Repeated --labels accumulate (a label with a comma: --labels 'a, b' is two labels, so
  // give such labels in a --labels-file).
  std::vector<std::string> labels;
  if (args.has("labels")) {
    for (const auto& v : args.values("labels")) {
      for (auto& l : split_comma_list(v)) labels.push_back(std::move(l));
    }
  } else {
    labels = read_labels_file(*args.get("labels-file"));
  }
  CS_CHECK_ARG(!labels.empty(), "--labels: no labels");
  std::vector<std::string> templates = args.values("template");
  if (auto set = args.get("templates")) {
    CS_CHECK_ARG(*set == "imagenet" || *set == "simple", "--templates must be imagenet or simple");
    const auto& t = *set == "imagenet" ? Engine::imagenet_templates() : Engine::simple_templates();
    templates.insert(templates.end(), t.begin(), t.end());
  }
  for (const auto& t : templates) Engine::apply_template(t, "x");  // validates the placeholder

  EngineOptions eo;
  eo.encoder.backend = args.get_or("backend", "cpu");
  eo.encoder.precision = args.get_or("precision", "fp32");
  eo.encoder.threads = args.get_int("threads", 0);
  eo.max_batch = args.get_int("batch", 16);
  CS_CHECK_ARG(eo.max_batch >= 1, "--batch must be >= 1");
  eo.max_queue = std::max(256, 4 * eo.max_batch);
  eo.warmup = false;  // one pass over the files: warm-up would only add time
  CS_CHECK_ARG(!(args.has("top") && args.has("top-k")), "give --top or --top-k, not both");
  const int top_k = args.has("top") ? args.get_int("top", 0) : args.get_int("top-k", 0);
  CS_CHECK_ARG(top_k >= 0, "--top-k must be >= 0");

  const auto t0 = std::chrono::steady_clock::now();
  auto engine = Engine::load(*model, eo);
  const auto t_text = std::chrono::steady_clock::now();
  engine->put_label_set("cli", labels, templates);  // label features computed once
  const double label_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_text).count();
  LabelQuery q;
  q.label_set = "cli";
  q.top_k = top_k;

  Progress progress(files.size(), "images", progress_wanted(args.has("no-progress")));
  Failures failures("classify");
  if (format == "csv") std::printf("file,rank,label,prob,cosine,error\n");
  // One request per file keeps a bad file from failing its neighbours; the engine batches them.
  // At most `window` files are read and in flight at once; results print in input order.
  const size_t window = static_cast<size_t>(std::max(2 * eo.max_batch, 32));
  struct Pending {
    std::string file;
    std::future<Classification> result;
    std::string error;
  };
  std::deque<Pending> pending;
  size_t next = 0, done = 0;
  auto emit = [&](Pending& p) {
    nlohmann::json line;
    line["file"] = p.file;
    if (p.error.empty()) {
      try {
        Classification c = p.result.get();
        auto arr = nlohmann::json::array();
        for (const auto& s : c.images[0]) {
          arr.push_back({{"label", s.label}, {"prob", s.prob}, {"cosine", s.cosine}});
        }
        line["labels"] = arr;
        const auto& t = c.timings;
        line["timings"] = {{"decode_ms", t.decode_ms},
                           {"preprocess_ms", t.preprocess_ms},
                           {"queue_ms", t.queue_ms},
                           {"encode_ms", t.encode_ms},
                           {"postprocess_ms", t.postprocess_ms},
                           {"total_ms", t.total_ms},
                           {"batch", t.max_batch}};
      } catch (const std::exception& e) {
        p.error = e.what();
      }
    }
    if (!p.error.empty()) {
      line.erase("labels");
      line.erase("timings");
      line["error"] = p.error;
      failures.add(p.file, p.error, &progress);
    }
    if (format == "csv") {
      if (!p.error.empty()) {
        std::printf("%s,,,,,%s\n", csv_field(p.file).c_str(), csv_field(p.error).c_str());
      } else {
        int rank = 1;
        for (const auto& l : line["labels"]) {
          std::printf("%s,%d,%s,%.9g,%.9g,\n", csv_field(p.file).c_str(), rank++,
                      csv_field(l["label"].get<std::string>()).c_str(), l["prob"].get<double>(),
                      l["cosine"].get<double>());
        }
      }
    } else {
      std::printf("%s\n",
                  line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
    ++done;
    progress.update(done, failures.count());
  };
  while (done < files.size()) {
    while (next < files.size() && pending.size() < window) {
      Pending p;
      p.file = files[next].value;
      p.error = files[next++].error;
      if (!p.error.empty()) {
        pending.push_back(std::move(p));
        continue;
      }
      try {
        auto bytes = read_file_bytes(p.file);
        p.result = engine->submit_classify({ImageInput::encoded(std::move(bytes), p.file)}, q);
      } catch (const std::exception& e) {
        p.error = e.what();
      }
      pending.push_back(std::move(p));
    }
    emit(pending.front());
    pending.pop_front();
  }
  std::fflush(stdout);
  progress.finish();
  const double total_s = progress.seconds();
  std::fprintf(stderr,
               "clipserve classify: %zu images in %.2f s (%.1f img/s); model load %.2f s, "
               "%zu label prompts %.1f ms; %zu failed\n",
               files.size(), total_s, files.size() / std::max(total_s, 1e-9),
               std::chrono::duration<double>(t_text - t0).count(),
               labels.size() * std::max<size_t>(1, templates.size()), label_ms, failures.count());
  failures.summarize();
  return failures.count() ? 1 : 0;
}

const bool registered = register_command(
    {"classify", "zero-shot classify images against labels (JSONL out)", kUsage, run_classify});

}  // namespace

}  // namespace clipserve::cli

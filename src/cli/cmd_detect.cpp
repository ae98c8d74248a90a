// `clipserve detect`: open-vocabulary detection (OWL-ViT) of image files, one JSON line per
// image on stdout, in input order; optionally the raw logits / boxes as .npy files.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/command.h"
#include "cli/inputs.h"
#include "clipserve/detect.h"
#include "core/check.h"
#include "core/file.h"
#include "core/npy.h"
#include "owlvit/draw.h"

namespace clipserve::cli {

namespace {

const char* kUsage =
    "usage: clipserve detect --model M (--queries \"a,b\" | --queries-file F | --example IMG)\n"
    "                        [--threshold T] [--dump DIR] [--draw DIR] [options] IMAGE|DIR...\n"
    "\n"
    "Open-vocabulary detection with OWL-ViT (transformers OwlViTForObjectDetection), numbers\n"
    "as transformers 4.30's. Prints one JSON line per image, in input order:\n"
    "  {\"file\", \"image_size\": [W, H], \"detections\": [{\"label\", \"label_index\", "
    "\"score\",\n"
    "   \"box\": [x0, y0, x1, y1]}], \"timings\": {...}}\n"
    "By default exactly post_process_object_detection: score = sigmoid(best query logit) >\n"
    "threshold, boxes in pixels of the original image, unclipped, no NMS, patch order.\n"
    "A file that fails gives {\"file\", \"error\"} (and a line on stderr); the others still run;\n"
    "a summary of the failures ends the job; exit status 1 if any failed. A directory stands\n"
    "for its image files (recursive, by extension, sorted).\n"
    "\n"
    "options:\n"
    "  --model M            OWL-ViT directory or hub name (google/owlvit-base-patch32)\n"
    "  --queries a,b        comma-separated text queries\n"
    "  --queries-file F     one query per line (queries may contain commas)\n"
    "  --example IMG        image-guided: the query is IMG's best box (transformers'\n"
    "                       image_guided_detection; defaults threshold 0.6, NMS 0.3, scores\n"
    "                       rescaled as post_process_image_guided_detection in 4.30)\n"
    "  --example-box x0,y0,x1,y1  query by this box of the example (its pixels)\n"
    "  --threshold T        keep score > T (default 0.1; 0.6 with --example)\n"
    "  --dump DIR           also write DIR/<file>.logits.npy [N, Q] (raw logits) and\n"
    "                       DIR/<file>.pred_boxes.npy [N, 4] (cx cy w h in [0, 1])\n"
    "  --draw DIR           also write DIR/<file>.png: the image with its boxes and\n"
    "                       \"label score\" tags drawn (colour per label)\n"
    "  --nms IOU            per-label NMS (not in transformers' text-query output)\n"
    "  --top-k K            keep the K best (sorted by score)\n"
    "  --sort               sort detections by score instead of patch order\n"
    "  --clip-boxes         clamp boxes to the image\n"
    "  --truncate           cut queries longer than 16 tokens instead of failing\n"
    "  --batch N            largest vision batch (default 4)\n"
    "  --backend B          cpu (default) or reference\n"
    "  --precision P        fp32 (default) or bf16\n"
    "  --threads N          compute threads (default: all cores)\n"
    "  --files-from F       read image paths from F (one per line; - for stdin); repeatable\n"
    "  --no-progress        no progress line on stderr (default: shown on a terminal)\n";

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> read_queries_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) CS_THROW(kNotFound, "cannot open queries file ", path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (!line.empty()) out.push_back(line);
  }
  CS_CHECK_ARG(!out.empty(), path, ": no queries in the file");
  return out;
}

float parse_float(const std::string& s, const char* what) {
  try {
    size_t used = 0;
    const float v = std::stof(s, &used);
    CS_CHECK_ARG(used == s.size(), what, ": bad number '", s, "'");
    return v;
  } catch (const std::logic_error&) {
    CS_THROW(kInvalidArgument, what, ": bad number '", s, "'");
  }
}

nlohmann::ordered_json result_json(const std::string& file, const DetectionResult& r) {
  nlohmann::ordered_json line;
  line["file"] = file;
  line["image_size"] = {r.image_width, r.image_height};
  auto arr = nlohmann::ordered_json::array();
  for (const auto& d : r.detections) {
    arr.push_back({{"label", d.label},
                   {"label_index", d.label_index},
                   {"score", d.score},
                   {"box", {d.box[0], d.box[1], d.box[2], d.box[3]}}});
  }
  line["detections"] = arr;
  if (!r.truncated_queries.empty()) line["truncated_queries"] = r.truncated_queries;
  if (r.example_box_index >= 0) line["example_box_index"] = r.example_box_index;
  const auto& t = r.timings;
  line["timings"] = {{"preprocess_ms", t.preprocess_ms}, {"queue_ms", t.queue_ms},
                     {"encode_ms", t.encode_ms},         {"postprocess_ms", t.postprocess_ms},
                     {"total_ms", t.total_ms},           {"batch", t.max_batch}};
  return line;
}

int run_detect(int argc, char** argv) {
  Args args;
  args.option("model")
      .option("queries")
      .option("queries-file")
      .option("example")
      .option("example-box")
      .option("threshold")
      .option("dump")
      .option("draw")
      .option("nms")
      .option("top-k")
      .option("batch")
      .option("backend")
      .option("precision")
      .option("threads")
      .option("files-from")
      .flag("sort")
      .flag("clip-boxes")
      .flag("truncate")
      .flag("no-progress");
  args.parse(argc, argv);
  const auto model = args.get("model");
  CS_CHECK_ARG(model.has_value(), "--model M is required");
  const int sources = args.has("queries") + args.has("queries-file") + args.has("example");
  CS_CHECK_ARG(sources == 1, "give exactly one of --queries a,b, --queries-file F, --example IMG");
  CS_CHECK_ARG(!args.positional().empty() || args.has("files-from"), "no images given");
  const std::vector<InputEntry> files = expand_inputs(args.positional(), args.values("files-from"));
  std::vector<std::string> queries;
  if (args.has("queries")) queries = split_comma_list(*args.get("queries"));
  if (args.has("queries-file")) queries = read_queries_file(*args.get("queries-file"));
  CS_CHECK_ARG(args.has("example") || !queries.empty(), "--queries: no queries");
  std::vector<uint8_t> example;
  std::optional<std::array<float, 4>> example_box;
  if (auto e = args.get("example")) example = read_file_bytes(*e);
  if (auto b = args.get("example-box")) {
    CS_CHECK_ARG(args.has("example"), "--example-box needs --example");
    const auto parts = split_comma_list(*b);
    CS_CHECK_ARG(parts.size() == 4, "--example-box: expected x0,y0,x1,y1");
    example_box = std::array<float, 4>{};
    for (int i = 0; i < 4; ++i) (*example_box)[i] = parse_float(parts[i], "--example-box");
  }

  DetectParams p;
  const bool guided = args.has("example");
  p.threshold = guided ? 0.6f : 0.1f;
  if (guided) p.nms_iou = 0.3f;
  if (auto t = args.get("threshold")) p.threshold = parse_float(*t, "--threshold");
  if (auto n = args.get("nms")) p.nms_iou = parse_float(*n, "--nms");
  p.top_k = args.get_int("top-k", 0);
  p.sort_by_score = args.has("sort");
  p.clip_boxes = args.has("clip-boxes");
  p.truncate_queries = args.has("truncate");
  const auto dump = args.get("dump");
  if (dump) std::filesystem::create_directories(*dump);
  const auto draw = args.get("draw");
  if (draw) std::filesystem::create_directories(*draw);

  DetectorOptions o;
  o.backend = args.get_or("backend", "cpu");
  o.precision = args.get_or("precision", "fp32");
  o.threads = args.get_int("threads", 0);
  o.max_batch = args.get_int("batch", 4);
  o.warmup = false;  // one pass over the files: warm-up would only add time
  const auto t0 = std::chrono::steady_clock::now();
  auto det = Detector::load(*model, o);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // One request per file (a bad file fails alone); up to 2 x batch in flight so the detector
  // batches them; results print in input order.
  struct Pending {
    std::string file;
    std::future<DetectionResult> result;
  };
  std::deque<Pending> pending;
  size_t next = 0, done = 0;
  Failures failures("detect");
  Progress progress(files.size(), "images", progress_wanted(args.has("no-progress")));
  // --dump / --draw name outputs by file name: a second input with the same name (another
  // folder) would overwrite the first one's, so it fails instead.
  std::set<std::string> out_names;
  const size_t window = static_cast<size_t>(2 * std::max(1, o.max_batch));
  const auto start = std::chrono::steady_clock::now();
  while (done < files.size()) {
    while (next < files.size() && pending.size() < window) {
      const InputEntry e = files[next++];
      const std::string f = e.value;
      pending.push_back({f, std::async(std::launch::async, [&, e, f] {
                           if (!e.error.empty()) throw Error(ErrorCode::kIo, e.error);
                           const std::vector<uint8_t> bytes = read_file_bytes(f);
                           return guided ? det->detect_by_example(bytes, example, example_box, p, f)
                                         : det->detect(bytes, queries, p, f);
                         })});
    }
    Pending& cur = pending.front();
    nlohmann::ordered_json line;
    try {
      const DetectionResult r = cur.result.get();
      line = result_json(cur.file, r);
      const std::string name = std::filesystem::path(cur.file).filename().string();
      if ((dump || draw) && !out_names.insert(name).second) {
        CS_THROW(kInvalidArgument, "another input named '", name,
                 "' was already written to --dump/--draw (same file name in two folders)");
      }
      if (dump) {
        const std::string base = *dump + "/" + std::filesystem::path(cur.file).filename().string();
        write_npy_f32(base + ".logits.npy", r.logits, {r.boxes, r.queries});
        write_npy_f32(base + ".pred_boxes.npy", r.pred_boxes, {r.boxes, 4});
      }
      if (draw) {
        std::vector<owlvit::DrawBox> boxes;
        for (const auto& d : r.detections) {
          char tag[32];
          std::snprintf(tag, sizeof tag, " %.2f", d.score);
          boxes.push_back({d.box, d.label_index, (guided ? "example" : d.label) + tag});
        }
        owlvit::draw_detections_png(
            read_file_bytes(cur.file), boxes,
            *draw + "/" + std::filesystem::path(cur.file).filename().string() + ".png", cur.file);
      }
    } catch (const std::exception& e) {
      line = {{"file", cur.file}, {"error", e.what()}};
      failures.add(cur.file, e.what(), &progress);
    }
    std::printf("%s\n",
                line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    pending.pop_front();
    ++done;
    progress.update(done, failures.count());
  }
  std::fflush(stdout);
  progress.finish();
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "clipserve detect: %zu images in %.2f s; model load %.2f s; %zu failed\n",
               files.size(), total_s, load_s, failures.count());
  failures.summarize();
  return failures.count() ? 1 : 0;
}

const bool registered = register_command(
    {"detect", "open-vocabulary object detection with OWL-ViT (JSONL out)", kUsage, run_detect});

}  // namespace

}  // namespace clipserve::cli

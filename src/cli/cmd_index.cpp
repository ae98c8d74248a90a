// `clipserve index add|search|stats|delete|export`: a local collection of image and text
// files (rclip-like): recursive, resumable adds that skip unchanged files, then search by
// words, by an image, with filters.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli/command.h"
#include "clipserve/collection.h"
#include "clipserve/engine.h"
#include "core/check.h"
#include "core/digest.h"
#include "core/file.h"

namespace clipserve::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kUsage =
    "usage: clipserve index add    --collection DIR [--model M] [options] FILE|DIR...\n"
    "       clipserve index search --collection DIR [--image FILE | TEXT] [options]\n"
    "       clipserve index stats  --collection DIR [--json]\n"
    "       clipserve index delete --collection DIR (--id ID... | --filter F)\n"
    "       clipserve index export --collection DIR [--out FILE.jsonl] [--vectors]\n"
    "\n"
    "add: embeds images (jpg png webp gif bmp tiff) by image and .txt files by their text,\n"
    "  directories recursively. A document's id is the file's absolute path; a file whose\n"
    "  content (sha256) is already indexed under that id is skipped, so an interrupted add\n"
    "  resumes where it stopped. Every batch is durable once reported. --model is needed\n"
    "  when the collection is created (it is recorded; later commands reuse it).\n"
    "  --batch N (documents per transaction, default 32), --threads N, --precision P,\n"
    "  --no-progress.\n"
    "search: by TEXT (the text tower), --image FILE, or --id ID (more like this);\n"
    "  --filter 'field:value AND n:[1 TO 5]', --limit N (10), --offset N,\n"
    "  --method vector|lexical|hybrid, --exact (flat scan), --json (JSON lines).\n"
    "  Metadata of added files: path, name, ext, bytes.\n"
    "docs/collections.md has the details.\n";

bool is_image_ext(const std::string& e) {
  static const std::set<std::string> k = {".jpg", ".jpeg", ".png", ".webp",
                                          ".gif", ".bmp",  ".tif", ".tiff"};
  return k.count(e) > 0;
}

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

void common_options(Args& a) {
  a.option("collection").option("model").option("threads").option("precision").option("backend");
}

std::string collection_dir(const Args& a) {
  auto d = a.get("collection");
  CS_CHECK_ARG(d.has_value(), "--collection DIR is required");
  return *d;
}

std::unique_ptr<Engine> load_engine(const Args& a, const std::string& model, int batch) {
  EngineOptions eo;
  eo.encoder.backend = a.get_or("backend", "cpu");
  eo.encoder.precision = a.get_or("precision", "fp32");
  eo.encoder.threads = a.get_int("threads", 0);
  eo.max_batch = 16;
  eo.max_queue = std::max(256, 4 * batch);
  eo.warmup = false;  // one pass: warm-up would only add time
  return Engine::load(model, eo);
}

// The model recorded in the collection, or --model.
std::string model_for(const Args& a, const Collection* c) {
  if (auto m = a.get("model")) return *m;
  CS_CHECK_ARG(c && c->settings().extra.contains("model"),
               "--model is required (the collection records no model directory)");
  return c->settings().extra["model"].get<std::string>();
}

int run_add(int argc, char** argv) {
  Args a;
  common_options(a);
  a.option("batch").flag("no-progress");
  a.parse(argc, argv);
  const std::string dir = collection_dir(a);
  CS_CHECK_ARG(!a.positional().empty(), "give files or directories to add");
  const int batch = a.get_int("batch", 32);
  CS_CHECK_ARG(batch >= 1 && batch <= 4096, "--batch must be 1..4096");

  std::unique_ptr<Collection> coll;
  if (Collection::exists(dir)) coll = Collection::open(dir);
  const std::string model = model_for(a, coll.get());
  auto engine = load_engine(a, model, batch);
  CollectionSettings s;
  s.model_id = engine->model_id();
  s.dim = engine->embed_dim();
  s.lexical_fields = {"name"};
  s.extra = {{"model", fs::absolute(model).lexically_normal().string()}};
  if (!coll) {
    coll = Collection::create(dir, s);
  } else {
    CS_CHECK_ARG(coll->settings().model_id == s.model_id && coll->settings().dim == s.dim,
                 "collection ", dir, " holds embeddings of model '", coll->settings().model_id,
                 "', not '", s.model_id, "'");
  }

  // Every file, in a stable order.
  std::vector<fs::path> files;
  int failed = 0;
  for (const auto& arg : a.positional()) {
    std::error_code ec;
    const fs::path p = fs::absolute(arg).lexically_normal();
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(
               p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file()) continue;
        const auto e = lower_ext(it->path());
        if (is_image_ext(e) || e == ".txt") found.push_back(it->path());
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      std::fprintf(stderr, "clipserve index add: %s: no such file or directory\n", arg.c_str());
      ++failed;
    }
  }

  const bool progress = isatty(STDERR_FILENO) && !a.has("no-progress");
  const auto t0 = std::chrono::steady_clock::now();
  auto secs = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  int64_t added = 0, skipped = 0, done = 0;
  for (size_t start = 0; start < files.size(); start += static_cast<size_t>(batch)) {
    std::vector<DocumentSource> srcs;
    const size_t end = std::min(files.size(), start + static_cast<size_t>(batch));
    for (size_t i = start; i < end; ++i) {
      const fs::path& f = files[i];
      DocumentSource src;
      src.name = f.string();
      try {
        auto bytes = read_file_bytes(f.string());
        src.doc.id = f.string();
        src.doc.content_hash = sha256_hex(bytes);
        if (coll->has_hash(src.doc.id, src.doc.content_hash)) {
          ++skipped;
          continue;
        }
        const std::string e = lower_ext(f);
        src.doc.metadata = {{"path", f.string()},
                            {"name", f.filename().string()},
                            {"ext", e.empty() ? "" : e.substr(1)},
                            {"bytes", bytes.size()}};
        if (e == ".txt") {
          src.doc.text = std::string(bytes.begin(), bytes.end());
        } else {
          src.image_bytes = std::move(bytes);
        }
        srcs.push_back(std::move(src));
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "clipserve index add: %s: %s\n", f.c_str(), ex.what());
        ++failed;
      }
    }
    auto errors = embed_documents(*engine, srcs);
    std::vector<DocumentInput> docs;
    std::vector<std::string> names;
    for (size_t i = 0; i < srcs.size(); ++i) {
      if (!errors[i].empty()) {
        std::fprintf(stderr, "clipserve index add: %s: %s\n", srcs[i].name.c_str(),
                     errors[i].c_str());
        ++failed;
      } else {
        names.push_back(srcs[i].name);
        docs.push_back(std::move(srcs[i].doc));
      }
    }
    auto results = coll->upsert(std::move(docs));
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok) {
        ++added;
      } else {
        std::fprintf(stderr, "clipserve index add: %s: %s\n", names[i].c_str(),
                     results[i].error.c_str());
        ++failed;
      }
    }
    done = static_cast<int64_t>(end);
    if (progress) {
      const int width = 30;
      const int filled = static_cast<int>(width * done / static_cast<int64_t>(files.size()));
      std::fprintf(stderr, "\r[%s%s] %lld/%zu files, %.1f/s ", std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), static_cast<long long>(done),
                   files.size(), static_cast<double>(added) / std::max(secs(), 1e-9));
    }
  }
  if (progress) std::fputc('\n', stderr);
  coll->snapshot();
  const double t = secs();
  std::fprintf(stderr,
               "clipserve index add: %lld added, %lld unchanged (skipped), %d failed in %.1f s "
               "(%.1f documents/s); collection %s holds %lld documents\n",
               static_cast<long long>(added), static_cast<long long>(skipped), failed, t,
               static_cast<double>(added) / std::max(t, 1e-9), dir.c_str(),
               static_cast<long long>(coll->stats().documents));
  return failed ? 1 : 0;
}

json hit_json(const SearchHit& h) {
  json j = {{"_id", h.id}, {"_score", h.score}};
  if (h.text) j["text"] = *h.text;
  for (const auto& [k, v] : h.metadata.items()) j[k] = v;
  return j;
}

int run_search(int argc, char** argv) {
  Args a;
  common_options(a);
  a.option("image").option("id").option("filter").option("limit").option("offset").option("method");
  a.flag("exact").flag("json");
  a.parse(argc, argv);
  auto coll = Collection::open(collection_dir(a));
  SearchQuery q;
  q.limit = a.get_int("limit", 10);
  q.offset = a.get_int("offset", 0);
  q.filter = a.get_or("filter", "");
  q.exact = a.has("exact");
  const std::string method = a.get_or("method", "vector");
  CS_CHECK_ARG(method == "vector" || method == "lexical" || method == "hybrid",
               "--method must be vector, lexical or hybrid");
  q.method = method == "vector"    ? SearchMethod::kVector
             : method == "lexical" ? SearchMethod::kLexical
                                   : SearchMethod::kHybrid;
  std::string text;
  for (const auto& p : a.positional()) text += (text.empty() ? "" : " ") + p;
  const int sources = !text.empty() + a.has("image") + a.has("id");
  CS_CHECK_ARG(sources == 1, "give exactly one of TEXT, --image FILE or --id ID");
  CS_CHECK_ARG(q.method == SearchMethod::kVector || !text.empty(),
               "lexical and hybrid search need TEXT");
  q.text = text;
  double encode_ms = 0;
  if (auto id = a.get("id")) {
    auto d = coll->get(*id);
    if (!d) CS_THROW(kNotFound, "no document '", *id, "' in the collection");
    q.vector = d->vector;
  } else if (q.method != SearchMethod::kLexical) {
    auto engine = load_engine(a, model_for(a, coll.get()), 1);
    CS_CHECK_ARG(engine->model_id() == coll->settings().model_id &&
                     engine->embed_dim() == coll->settings().dim,
                 "the collection holds embeddings of model '", coll->settings().model_id, "'");
    const auto t0 = std::chrono::steady_clock::now();
    Embeddings e = a.has("image") ? engine->embed_images({ImageInput::encoded(
                                        read_file_bytes(*a.get("image")), *a.get("image"))})
                                  : engine->embed_texts({text});
    encode_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    q.vector = e.data;
  }
  auto r = coll->search(q);
  if (a.has("json")) {
    for (const auto& h : r.hits) std::printf("%s\n", hit_json(h).dump().c_str());
  } else {
    for (const auto& h : r.hits) std::printf("%.4f\t%s\n", h.score, h.id.c_str());
    std::fprintf(stderr, "%zu hits (encode %.1f ms, search %.2f ms%s)\n", r.hits.size(), encode_ms,
                 r.search_ms, r.exact ? ", exact" : "");
  }
  return 0;
}

json stats_json(const CollectionStats& s) {
  return {{"name", s.name},
          {"model", s.model_id},
          {"dim", s.dim},
          {"documents", s.documents},
          {"ann_elements", s.ann_elements},
          {"ann_deleted", s.ann_deleted},
          {"seq", s.seq},
          {"snapshot_seq", s.snapshot_seq},
          {"db_bytes", s.db_bytes},
          {"ann_bytes", s.ann_bytes},
          {"open_ms", s.open_ms},
          {"caught_up", s.caught_up},
          {"rebuilt", s.rebuilt}};
}

int run_stats(int argc, char** argv) {
  Args a;
  a.option("collection").flag("json");
  a.parse(argc, argv);
  auto coll = Collection::open(collection_dir(a));
  const auto j = stats_json(coll->stats());
  if (a.has("json")) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    for (const auto& [k, v] : j.items()) std::printf("%-13s %s\n", k.c_str(), v.dump().c_str());
  }
  return 0;
}

int run_delete(int argc, char** argv) {
  Args a;
  a.option("collection").option("id").option("filter");
  a.parse(argc, argv);
  auto coll = Collection::open(collection_dir(a));
  const auto ids = a.values("id");
  CS_CHECK_ARG(ids.empty() != !a.has("filter"), "give --id ID (repeatable) or --filter F");
  const int64_t n = ids.empty() ? coll->remove_where(*a.get("filter")) : coll->remove(ids);
  std::fprintf(stderr, "clipserve index delete: %lld documents removed\n",
               static_cast<long long>(n));
  return 0;
}

int run_export(int argc, char** argv) {
  Args a;
  a.option("collection").option("out").flag("vectors");
  a.parse(argc, argv);
  auto coll = Collection::open(collection_dir(a));
  std::ofstream file;
  if (auto out = a.get("out")) {
    file.open(*out);
    CS_CHECK_ARG(file.good(), *out, ": cannot write");
  }
  std::ostream& os = file.is_open() ? file : std::cout;
  const bool vectors = a.has("vectors");
  coll->for_each([&](const StoredDocument& d) {
    json j = {{"_id", d.id}, {"metadata", d.metadata}, {"content_hash", d.content_hash}};
    if (d.text) j["text"] = *d.text;
    if (vectors) j["vector"] = d.vector;
    os << j.dump() << '\n';
  });
  os.flush();
  CS_CHECK_ARG(os.good(), "export: write failed");
  return 0;
}

int run_index(int argc, char** argv) {
  CS_CHECK_ARG(argc >= 2, "give a subcommand: add, search, stats, delete or export");
  const std::string sub = argv[1];
  if (sub == "add") return run_add(argc - 1, argv + 1);
  if (sub == "search") return run_search(argc - 1, argv + 1);
  if (sub == "stats") return run_stats(argc - 1, argv + 1);
  if (sub == "delete") return run_delete(argc - 1, argv + 1);
  if (sub == "export") return run_export(argc - 1, argv + 1);
  CS_THROW(kInvalidArgument, "unknown index subcommand '", sub,
           "' (add, search, stats, delete, export)");
}

const bool registered = register_command(
    {"index", "collections of images and texts: add, search, stats, delete, export", kUsage,
     run_index});

}  // namespace
}  // namespace clipserve::cli

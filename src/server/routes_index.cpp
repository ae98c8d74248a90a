// /indexes/... routes: JSON parsing of documents and queries, embedding through the Engine,
// the set of open collections, per-document errors, search timings, collection metrics.
#include "server/routes_index.h"

#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "clipserve/collection.h"
#include "core/check.h"
#include "core/digest.h"
#include "core/file.h"
#include "engine/metrics.h"
#include "image/thumbnail.h"
#include "server/codec.h"
#include "server/http_util.h"

namespace clipserve::server {

namespace {

namespace fs = std::filesystem;

void check_name(const std::string& name) {
  const bool ok =
      !name.empty() && name.size() <= 128 && name[0] != '.' &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
  CS_CHECK_ARG(ok, "index name '", name, "' must be 1-128 characters of A-Z a-z 0-9 _ . -");
}

// JSON bodies only (415 otherwise: a cross-site form cannot write to a collection); an array
// is allowed (delete-batch takes one).
json parse_body(const httplib::Request& req) {
  if (!is_json(req)) {
    throw StatusError(415, "unsupported_media_type",
                      "this endpoint takes a JSON body: send Content-Type: application/json");
  }
  CS_CHECK_ARG(!req.body.empty(), "the request body is empty (expected JSON)");
  try {
    return json::parse(req.body);
  } catch (const json::exception& e) {
    CS_THROW(kInvalidArgument, "invalid JSON body: ", e.what());
  }
}

std::vector<float> vector_from(const json& v, const std::string& name) {
  CS_CHECK_ARG(v.is_array(), name, " must be an array of numbers");
  std::vector<float> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    CS_CHECK_ARG(v[i].is_number(), name, "[", i, "] is not a number");
    out.push_back(v[i].get<float>());
  }
  return out;
}

// A multipart documents upload: the `documents` part (JSON: {"documents": [...]} or the
// array itself) and file parts that documents name as "image": "@<part name>".
struct Upload {
  json body;
  std::map<std::string, const httplib::MultipartFormData*> parts;  // file parts by name
};

Upload parse_multipart(const httplib::Request& req) {
  Upload u;
  CS_CHECK_ARG(req.files.count("documents") == 1,
               "a multipart upload needs exactly one part named 'documents' (the JSON documents)");
  for (const auto& [name, part] : req.files) {
    if (name == "documents") {
      try {
        u.body = json::parse(part.content);
      } catch (const json::exception& e) {
        CS_THROW(kInvalidArgument, "the 'documents' part is not valid JSON: ", e.what());
      }
      if (u.body.is_array()) u.body = json{{"documents", std::move(u.body)}};
      continue;
    }
    CS_CHECK_ARG(!name.empty() && u.parts.emplace(name, &part).second,
                 "multipart part names must be unique and non-empty ('", name, "')");
  }
  // Every file part must be used: a typo in "@name" is then an error, not a silent drop.
  std::set<std::string> used;
  if (u.body.is_object() && u.body.contains("documents") && u.body["documents"].is_array()) {
    for (const auto& d : u.body["documents"]) {
      if (!d.is_object() || !d.contains("image") || !d["image"].is_string()) continue;
      const auto& v = d["image"].get_ref<const std::string&>();
      if (!v.empty() && v[0] == '@') used.insert(v.substr(1));
    }
  }
  for (const auto& [name, part] : u.parts) {
    CS_CHECK_ARG(used.count(name), "multipart part '", name,
                 "' is not referenced by any document (\"image\": \"@", name, "\")");
  }
  return u;
}

// base64, a data: URL, or an http(s) URL when the server allows its host (--allow-url-host).
std::vector<uint8_t> image_from(const json& v, const std::string& name) {
  CS_CHECK_ARG(v.is_string(), name, " must be a base64 string or a data: URL");
  return image_from_json(v, name).bytes;
}

// Thumbnails are a cache beside the collection (not in SQLite): one file per image document,
// named by the sha256 of its id, written after the document is durable. A missing one is a 404.
constexpr int kThumbnailSide = 256;

std::string thumbnail_path(const Collection& c, const std::string& id) {
  return c.dir() + "/thumbnails/" + sha256_hex(id) + ".jpg";
}

// Writes (image given) or removes (no image: a text document replaced an image one) the
// document's thumbnail. Best effort: a thumbnail that cannot be made leaves none.
void store_thumbnail(const Collection& c, const std::string& id,
                     const std::vector<uint8_t>& image) {
  const std::string path = thumbnail_path(c, id);
  std::error_code ec;
  if (image.empty()) {
    fs::remove(path, ec);
    return;
  }
  try {
    const auto jpeg = image::make_thumbnail_jpeg(image, kThumbnailSide, id);
    fs::create_directories(fs::path(path).parent_path(), ec);
    write_file_atomic(path, jpeg);
  } catch (const std::exception&) {
    fs::remove(path, ec);
  }
}

json hit_json(const SearchHit& h) {
  json j = json::object();
  for (const auto& [k, v] : h.metadata.items()) j[k] = v;
  if (h.text) j["text"] = *h.text;
  j["_id"] = h.id;
  j["_score"] = h.score;
  if (!h.vector.empty()) j["_vector"] = h.vector;
  return j;
}

class Routes : public IndexRoutes {
 public:
  Routes(ModelAccess models, metrics::Registry& reg, IndexRouteOptions opt)
      : models_(std::move(models)), reg_(reg), opt_(std::move(opt)) {
    std::error_code ec;
    fs::create_directories(opt_.collections_dir, ec);
    if (ec) CS_THROW(kIo, "cannot create ", opt_.collections_dir, ": ", ec.message());
    for (const auto& e : fs::directory_iterator(opt_.collections_dir)) {
      if (e.is_directory() && Collection::exists(e.path().string())) {
        open(e.path().filename().string());
      }
    }
  }

  std::vector<std::string> names() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [n, c] : open_) out.push_back(n);
    return out;
  }

  void install(httplib::Server& http) {
    using Req = httplib::Request;
    using Res = httplib::Response;
    http.Get("/indexes", [this](const Req&, Res& res) {
      json list = json::array();
      for (const auto& n : names()) {
        auto c = get(n);
        list.push_back(
            {{"indexName", n}, {"model", c->settings().model_id}, {"dim", c->settings().dim}});
      }
      res.set_content(dump({{"results", list}}), "application/json");
    });
    http.Post(R"(/indexes/([^/]+))", [this](const Req& req, Res& res) {
      create(req.matches[1], req.body.empty() ? json::object() : parse_body(req));
      res.status = 201;
      res.set_content(dump({{"acknowledged", true}, {"index", std::string(req.matches[1])}}),
                      "application/json");
    });
    http.Delete(R"(/indexes/([^/]+))", [this](const Req& req, Res& res) {
      drop(req.matches[1]);
      res.set_content(dump({{"acknowledged", true}}), "application/json");
    });
    // JSON, or multipart/form-data with images as file parts (docs/collections.md).
    http.Post(R"(/indexes/([^/]+)/documents)", [this](const Req& req, Res& res) {
      auto c = get(req.matches[1]);
      if (req.is_multipart_form_data()) {
        const Upload u = parse_multipart(req);
        res.set_content(dump(add_documents(*c, u.body, req.matches[1], &u.parts)),
                        "application/json");
        return;
      }
      res.set_content(dump(add_documents(*c, parse_body(req), req.matches[1])), "application/json");
    });
    http.Get(R"(/indexes/([^/]+)/documents/([^/]+))", [this](const Req& req, Res& res) {
      auto c = get(req.matches[1]);
      const std::string id = req.matches[2];
      auto d = c->get(id);
      if (!d) CS_THROW(kNotFound, "no document '", id, "' in index '", req.matches[1].str(), "'");
      SearchHit h;
      h.id = d->id;
      h.text = d->text;
      h.metadata = d->metadata;
      json j = hit_json(h);
      j.erase("_score");
      if (req.has_param("expose_facets") || req.has_param("vectors")) j["_vector"] = d->vector;
      res.set_content(dump(j), "application/json");
    });
    // The document's small JPEG (image documents; kept at ingest, 256 px long side).
    http.Get(R"(/indexes/([^/]+)/documents/([^/]+)/thumbnail)", [this](const Req& req, Res& res) {
      auto c = get(req.matches[1]);
      const std::string id = req.matches[2];
      if (!c->get(id)) CS_THROW(kNotFound, "no document '", id, "'");
      const std::string path = thumbnail_path(*c, id);
      std::error_code ec;
      if (!fs::exists(path, ec)) CS_THROW(kNotFound, "document '", id, "' has no thumbnail");
      const auto jpeg = read_file_bytes(path);
      res.set_content(reinterpret_cast<const char*>(jpeg.data()), jpeg.size(), "image/jpeg");
      res.set_header("Cache-Control", "private, max-age=60");
    });
    http.Delete(R"(/indexes/([^/]+)/documents/([^/]+))", [this](const Req& req, Res& res) {
      auto c = get(req.matches[1]);
      const std::string id = req.matches[2];
      if (c->remove({id}) == 0) CS_THROW(kNotFound, "no document '", id, "'");
      store_thumbnail(*c, id, {});
      count_writes(req.matches[1], *c, 0);
      res.set_content(dump({{"deleted", 1}, {"_id", id}}), "application/json");
    });
    http.Post(R"(/indexes/([^/]+)/documents/delete-batch)", [this](const Req& req, Res& res) {
      auto c = get(req.matches[1]);
      json body = parse_body(req);
      int64_t n = 0;
      if (body.is_object() && body.contains("filter")) {
        CS_CHECK_ARG(body["filter"].is_string(), "'filter' must be a string");
        n = c->remove_where(body["filter"].get<std::string>());
      } else {
        const json& ids = body.is_object() && body.contains("ids") ? body["ids"] : body;
        CS_CHECK_ARG(ids.is_array(), "send an array of ids, {\"ids\": [...]} or {\"filter\": ...}");
        std::vector<std::string> v;
        for (size_t i = 0; i < ids.size(); ++i) {
          CS_CHECK_ARG(ids[i].is_string(), "ids[", i, "] must be a string");
          v.push_back(ids[i].get<std::string>());
        }
        n = c->remove(v);
      }
      count_writes(req.matches[1], *c, 0);
      res.set_content(dump({{"deleted", n}}), "application/json");
    });
    http.Post(R"(/indexes/([^/]+)/search)", [this](const Req& req, Res& res) {
      res.set_content(dump(search(req.matches[1], parse_body(req))), "application/json");
    });
    http.Get(R"(/indexes/([^/]+)/stats)", [this](const Req& req, Res& res) {
      const auto s = get(req.matches[1])->stats();
      json j = {{"numberOfDocuments", s.documents},
                {"numberOfVectors", s.ann_elements},
                {"model", s.model_id},
                {"dim", s.dim},
                {"annDeleted", s.ann_deleted},
                {"seq", s.seq},
                {"snapshotSeq", s.snapshot_seq},
                {"dbBytes", s.db_bytes},
                {"annBytes", s.ann_bytes},
                {"openMs", s.open_ms},
                {"caughtUp", s.caught_up},
                {"rebuilt", s.rebuilt}};
      res.set_content(dump(j), "application/json");
    });
  }

 private:
  std::shared_ptr<Collection> open(const std::string& name) {
    // A collection embeds with the model it was built with: that model must be served.
    std::shared_ptr<Collection> c = Collection::open(opt_.collections_dir + "/" + name, nullptr);
    const auto info = models_.models->find(c->settings().model_id);
    if (!info) {
      CS_THROW(kInvalidArgument, "collection '", name, "' was built with model '",
               c->settings().model_id, "', which this server does not serve (",
               models_.models->not_served(c->settings().model_id), ")");
    }
    CS_CHECK_ARG(info->embed_dim == c->settings().dim, "collection '", name, "' holds ",
                 c->settings().dim, "-d vectors; model '", info->id, "' makes ", info->embed_dim,
                 "-d ones");
    std::lock_guard<std::mutex> lock(mu_);
    open_[name] = c;
    gauge(name).set(c->stats().documents);
    return c;
  }

  std::shared_ptr<Collection> get(const std::string& name) {
    check_name(name);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(name);
    if (it == open_.end()) CS_THROW(kNotFound, "index '", name, "' does not exist");
    return it->second;
  }

  void create(const std::string& name, const json& body) {
    check_name(name);
    CS_CHECK_ARG(body.is_object(), "the settings must be a JSON object");
    CollectionSettings s;
    std::string model;
    if (body.contains("model")) {
      CS_CHECK_ARG(body["model"].is_string(), "'model' must be a string");
      model = body["model"].get<std::string>();
    }
    const auto info = models_.models->find(model);
    if (!info) throw Error(ErrorCode::kNotFound, models_.models->not_served(model));
    s.model_id = info->id;
    s.dim = info->embed_dim;
    for (const auto& [k, v] : body.items()) {
      if (k == "lexicalFields") {
        CS_CHECK_ARG(v.is_array(), "'lexicalFields' must be an array of field names");
        for (const auto& f : v) {
          CS_CHECK_ARG(f.is_string(), "'lexicalFields' must hold strings");
          s.lexical_fields.push_back(f.get<std::string>());
        }
      } else if (k == "hnswM" || k == "efConstruction" || k == "efSearch" || k == "flatThreshold") {
        CS_CHECK_ARG(v.is_number_integer(), "'", k, "' must be an integer");
        int& dst = k == "hnswM"            ? s.hnsw_m
                   : k == "efConstruction" ? s.hnsw_ef_construction
                   : k == "efSearch"       ? s.hnsw_ef_search
                                           : s.flat_threshold;
        dst = v.get<int>();
      } else if (k == "vectorStorage") {
        CS_CHECK_ARG(v.is_string(), "'vectorStorage' must be \"fp32\", \"fp16\" or \"int8\"");
        s.vector_storage = v.get<std::string>();
      } else if (k == "model") {
        // chosen above
      } else {
        CS_THROW(kInvalidArgument, "unknown index setting '", k,
                 "' (lexicalFields, hnswM, efConstruction, efSearch, flatThreshold, "
                 "vectorStorage, model)");
      }
    }
    std::lock_guard<std::mutex> lock(create_mu_);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (open_.count(name)) CS_THROW(kInvalidArgument, "index '", name, "' already exists");
    }
    Collection::create(opt_.collections_dir + "/" + name, s).reset();
    open(name);
  }

  void drop(const std::string& name) {
    check_name(name);
    std::shared_ptr<Collection> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = open_.find(name);
      if (it == open_.end()) CS_THROW(kNotFound, "index '", name, "' does not exist");
      c = std::move(it->second);
      open_.erase(it);
    }
    // Requests that still hold it finish first; then it is closed and its files removed.
    while (c.use_count() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::string dir = c->dir();
    c.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) CS_THROW(kIo, "cannot remove ", dir, ": ", ec.message());
    gauge(name).set(0);
  }

  metrics::Gauge& gauge(const std::string& name) {
    return reg_.gauge("clipserve_index_documents", "Documents per collection", {{"index", name}});
  }
  static constexpr int64_t kSnapshotEvery = 20000;  // documents changed

  void count_writes(const std::string& name, Collection& c, int64_t added) {
    if (added) {
      reg_.counter("clipserve_index_documents_written_total",
                   "Documents added or replaced, per collection", {{"index", name}})
          .inc(static_cast<uint64_t>(added));
    }
    gauge(name).set(c.stats().documents);
    // Bounds the catch-up a restart after a crash would need.
    c.snapshot(kSnapshotEvery);
  }

  json add_documents(
      Collection& c, const json& body, const std::string& name,
      const std::map<std::string, const httplib::MultipartFormData*>* parts = nullptr) {
    const auto t0 = Clock::now();
    CS_CHECK_ARG(body.is_object() && body.contains("documents") && body["documents"].is_array(),
                 "send {\"documents\": [...]}");
    const json& docs = body["documents"];
    for (const auto& [k, v] : body.items()) {
      CS_CHECK_ARG(k == "documents", "unknown field '", k, "' (send {\"documents\": [...]})");
    }
    if (docs.size() > opt_.max_documents_per_batch) {
      CS_THROW(kTooLarge, "a batch holds at most ", opt_.max_documents_per_batch,
               " documents (got ", docs.size(), ")");
    }
    std::vector<std::string> errors(docs.size());
    std::vector<DocumentSource> srcs;
    std::vector<size_t> where;  // srcs index -> document index
    for (size_t i = 0; i < docs.size(); ++i) {
      const std::string n = "documents[" + std::to_string(i) + "]";
      try {
        const json& d = docs[i];
        CS_CHECK_ARG(d.is_object(), n, " must be an object");
        DocumentSource s;
        s.name = n;
        for (const auto& [k, v] : d.items()) {
          if (k == "_id") {
            CS_CHECK_ARG(v.is_string() && !v.get_ref<const std::string&>().empty(), n,
                         "._id must be a non-empty string");
            s.doc.id = v.get<std::string>();
          } else if (k == "text") {
            CS_CHECK_ARG(v.is_string(), n, ".text must be a string");
            s.doc.text = v.get<std::string>();
          } else if (k == "image") {
            const bool ref = parts && v.is_string() && !v.get_ref<const std::string&>().empty() &&
                             v.get_ref<const std::string&>()[0] == '@';
            if (ref) {
              auto it = parts->find(v.get_ref<const std::string&>().substr(1));
              CS_CHECK_ARG(it != parts->end(), n, ".image: no multipart part named '",
                           v.get_ref<const std::string&>().substr(1), "'");
              const std::string& bytes = it->second->content;
              CS_CHECK_ARG(!bytes.empty(), n, ".image: multipart part '", it->first, "' is empty");
              s.image_bytes.assign(bytes.begin(), bytes.end());
            } else {
              s.image_bytes = image_from(v, n + ".image");
            }
          } else if (k == "vector" || k == "_vector") {
            s.doc.vector = vector_from(v, n + "." + k);
          } else if (!k.empty() && k[0] == '_') {
            CS_THROW(kInvalidArgument, n, ": unknown reserved field '", k, "'");
          } else {
            s.doc.metadata[k] = v;
          }
        }
        CS_CHECK_ARG(!s.image_bytes.empty() || s.doc.text || !s.doc.vector.empty(), n,
                     ": give an image, a text or a vector");
        srcs.push_back(std::move(s));
        where.push_back(i);
      } catch (const Error& e) {
        errors[i] = e.what();
      }
    }
    std::vector<std::string> embed_errors(srcs.size());
    if (!srcs.empty()) {
      const auto lease = models_.resolve(c.settings().model_id);
      embed_errors = embed_documents(*lease, srcs);
    }
    std::vector<DocumentInput> ok;
    std::vector<size_t> ok_where, ok_src;
    for (size_t k = 0; k < srcs.size(); ++k) {
      if (!embed_errors[k].empty()) {
        errors[where[k]] = embed_errors[k];
      } else {
        ok.push_back(std::move(srcs[k].doc));
        ok_where.push_back(where[k]);
        ok_src.push_back(k);
      }
    }
    const auto results = c.upsert(std::move(ok));  // durable when it returns
    json items = json::array();
    std::vector<json> per(docs.size());
    int64_t added = 0;
    for (size_t k = 0; k < results.size(); ++k) {
      const size_t i = ok_where[k];
      if (results[k].ok) {
        per[i] = {{"_id", results[k].id},
                  {"status", 200},
                  {"result", results[k].replaced ? "updated" : "created"}};
        ++added;
        store_thumbnail(c, results[k].id, srcs[ok_src[k]].image_bytes);
      } else {
        errors[i] = "documents[" + std::to_string(i) + "]: " + results[k].error;
        per[i] = {{"_id", results[k].id}};
      }
    }
    bool any_error = false;
    for (size_t i = 0; i < docs.size(); ++i) {
      if (!errors[i].empty()) {
        any_error = true;
        json item = per[i].is_object() ? per[i] : json::object();
        if (!item.contains("_id")) {
          const json& d = docs[i];
          if (d.is_object() && d.contains("_id") && d["_id"].is_string()) item["_id"] = d["_id"];
        }
        item["status"] = 400;
        item["error"] = errors[i];
        items.push_back(item);
      } else {
        items.push_back(per[i]);
      }
    }
    count_writes(name, c, added);
    reg_.histogram("clipserve_index_add_seconds", "Document batch latency (embed + store)",
                   metrics::latency_buckets(), {{"index", name}})
        .observe(ms_since(t0) / 1000.0);
    return {{"errors", any_error}, {"items", items}, {"processingTimeMs", ms_since(t0)}};
  }

  json search(const std::string& name, const json& body) {
    const auto t0 = Clock::now();
    auto c = get(name);
    CS_CHECK_ARG(body.is_object(), "the search body must be a JSON object");
    SearchQuery q;
    std::string text;
    std::vector<uint8_t> image;
    std::string method = "TENSOR";
    for (const auto& [k, v] : body.items()) {
      if (k == "q") {
        CS_CHECK_ARG(v.is_string(), "'q' must be a string");
        text = v.get<std::string>();
      } else if (k == "image") {
        image = image_from(v, "image");
      } else if (k == "vector") {
        q.vector = vector_from(v, "vector");
      } else if (k == "id") {
        CS_CHECK_ARG(v.is_string(), "'id' must be a string");
        auto d = c->get(v.get<std::string>());
        if (!d) CS_THROW(kNotFound, "no document '", v.get<std::string>(), "' to search like");
        q.vector = d->vector;
      } else if (k == "limit" || k == "offset" || k == "rrfK") {
        CS_CHECK_ARG(v.is_number_integer(), "'", k, "' must be an integer");
        (k == "limit" ? q.limit : k == "offset" ? q.offset : q.rrf_k) = v.get<int>();
      } else if (k == "filter") {
        CS_CHECK_ARG(v.is_string(), "'filter' must be a string (Marqo filter syntax)");
        q.filter = v.get<std::string>();
      } else if (k == "searchMethod") {
        CS_CHECK_ARG(v.is_string(), "'searchMethod' must be TENSOR, LEXICAL or HYBRID");
        method = v.get<std::string>();
        for (auto& ch : method)
          ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        CS_CHECK_ARG(method == "TENSOR" || method == "LEXICAL" || method == "HYBRID",
                     "'searchMethod' must be TENSOR, LEXICAL or HYBRID (got '",
                     v.get<std::string>(), "')");
      } else if (k == "exact" || k == "showVectors") {
        CS_CHECK_ARG(v.is_boolean(), "'", k, "' must be true or false");
        (k == "exact" ? q.exact : q.with_vectors) = v.get<bool>();
      } else {
        CS_THROW(kInvalidArgument, "unknown search field '", k,
                 "' (q, image, vector, id, limit, offset, filter, searchMethod, rrfK, exact, "
                 "showVectors)");
      }
    }
    q.method = method == "TENSOR"    ? SearchMethod::kVector
               : method == "LEXICAL" ? SearchMethod::kLexical
                                     : SearchMethod::kHybrid;
    q.text = text;
    const int given = !text.empty() + !image.empty() + !q.vector.empty();
    CS_CHECK_ARG(given >= 1, "give 'q' (text), 'image', 'vector' or 'id'");
    CS_CHECK_ARG(q.method == SearchMethod::kVector || !text.empty(), method, " search needs 'q'");
    CS_CHECK_ARG(!image.empty() + !q.vector.empty() <= 1, "give one of 'image', 'vector', 'id'");
    double encode_ms = 0;
    if (q.method != SearchMethod::kLexical && q.vector.empty()) {
      const auto lease = models_.resolve(c->settings().model_id);
      const auto te = Clock::now();
      Embeddings e = image.empty() ? lease->embed_texts({text})
                                   : lease->embed_images({ImageInput::encoded(image, "image")});
      encode_ms = ms_since(te);
      q.vector = e.data;
    }
    auto r = c->search(q);
    json hits = json::array();
    for (const auto& h : r.hits) hits.push_back(hit_json(h));
    const double total = ms_since(t0);
    reg_.histogram("clipserve_index_search_seconds", "Collection search latency (encode + search)",
                   metrics::latency_buckets(), {{"index", name}, {"method", method}})
        .observe(total / 1000.0);
    json out = {{"hits", hits},
                {"limit", q.limit},
                {"offset", q.offset},
                {"processingTimeMs", total},
                {"timings", {{"encode_ms", encode_ms}, {"search_ms", r.search_ms}}},
                {"exact", r.exact}};
    if (!text.empty()) out["query"] = text;
    return out;
  }

  ModelAccess models_;
  metrics::Registry& reg_;
  IndexRouteOptions opt_;
  mutable std::mutex mu_;
  std::mutex create_mu_;
  std::map<std::string, std::shared_ptr<Collection>> open_;
};

}  // namespace

std::unique_ptr<IndexRoutes> register_index_routes(httplib::Server& http, ModelAccess models,
                                                   metrics::Registry& reg,
                                                   const IndexRouteOptions& opt) {
  auto r = std::make_unique<Routes>(std::move(models), reg, opt);
  r->install(http);
  return r;
}

}  // namespace clipserve::server

// Collections: documents (id, text, metadata, vector) stored durably in SQLite, searched by
// vector (HNSW approximate index or exact flat scan), by words (FTS5 BM25) or both (reciprocal
// rank fusion), with Marqo-style metadata filters. A collection stores vectors; embedding
// images and texts is the Engine's job (embed_documents() does both for a batch).
//
//   clipserve::CollectionSettings s;
//   s.model_id = engine->model_id();
//   s.dim = engine->embed_dim();
//   s.lexical_fields = {"title"};                      // metadata fields searched by words
//   auto coll = clipserve::Collection::open_or_create("photos.coll", s);
//
//   clipserve::DocumentInput d;
//   d.id = "dog-1";
//   d.text = "a dog on the beach";
//   d.metadata = {{"title", "Rex"}, {"year", 2021}, {"tags", {"pet", "beach"}}};
//   d.vector = engine->embed_texts({*d.text}).data;   // or an image embedding
//   auto results = coll->upsert({d});                 // durable when it returns
//   if (!results[0].ok) std::puts(results[0].error.c_str());
//
//   clipserve::SearchQuery q;
//   q.vector = engine->embed_texts({"a puppy"}).data;
//   q.filter = "year:[2020 TO 2022] AND NOT tags:indoor";
//   q.limit = 10;
//   for (const auto& h : coll->search(q).hits) std::printf("%s %.3f\n", h.id.c_str(), h.score);
//
// Durability: upsert() and remove*() return only after their SQLite transaction committed in
// WAL mode with synchronous=FULL (the WAL is fsynced at every commit), so a kill -9 or power
// loss after the return loses nothing; a crash before it loses the whole batch or nothing of
// it (one transaction per call). The HNSW index is a cache of SQLite: snapshotted to
// `<dir>/ann.<seq>.hnsw` by snapshot() and on close, reloaded at open and caught up from the
// rows written after the snapshot (or rebuilt when it is missing, corrupt or ahead of SQLite).
//
// Thread-safety: every member function may be called concurrently from any number of threads.
// Writes are serialized (one writer at a time); searches and get() run concurrently with each
// other and with a writer (SQLite WAL readers + a shared lock on the vector index). A search
// that starts after a remove() returned never names a removed document. No call may race
// with the destructor. Two processes must not open the same collection for writing at once
// (the second open fails with kUnavailable).
//
// Errors: Error(kInvalidArgument) for a bad filter, query or setting (the message names the
// field), kNotFound for a collection directory that does not exist, kUnsupported when the
// collection is bound to another model or dimension, kIo when the disk fails. Bad documents in
// a batch are reported per document in UpsertResult and do not affect the others.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace clipserve {

class Engine;

struct CollectionSettings {
  std::string model_id;  ///< the model whose embeddings the collection holds (checked at open)
  int dim = 0;           ///< embedding dimension (checked on every vector)
  /// Metadata fields (string or array of strings) indexed for lexical search besides "text".
  std::vector<std::string> lexical_fields;
  int hnsw_m = 16;                 ///< HNSW graph degree (level 0 holds 2*M links)
  int hnsw_ef_construction = 200;  ///< HNSW build beam width
  int hnsw_ef_search = 64;         ///< default search beam width (>= limit + offset is used)
  /// Collections with at most this many documents are searched exactly (flat scan).
  int flat_threshold = 2000;
  /// The in-memory search copy of the vectors: "fp32" (exact), "fp16" or "int8" (half /
  /// a quarter of the memory; the graph is searched on the compressed copy and the top
  /// candidates are re-ranked with the exact fp32 vectors SQLite holds, so `_score` stays
  /// the exact cosine). Fixed at creation.
  std::string vector_storage = "fp32";
  /// Free-form extras kept with the collection (the CLI records the model directory here).
  nlohmann::json extra = nlohmann::json::object();
};

/// One document to add or replace.
struct DocumentInput {
  std::string id;                   ///< empty = generated (returned in UpsertResult)
  std::optional<std::string> text;  ///< indexed for lexical search (valid UTF-8)
  /// JSON object of strings, finite numbers, booleans and arrays of strings. Field names are
  /// 1-128 characters of A-Z a-z 0-9 _ - . and do not start with '_'.
  nlohmann::json metadata = nlohmann::json::object();
  std::vector<float> vector;  ///< dim floats, finite, non-zero (stored as given, searched
                              ///< L2-normalized)
  std::string content_hash;   ///< caller's hash of the source (CLI: sha256 of the file)
};

struct UpsertResult {
  std::string id;
  bool ok = false;
  bool replaced = false;  ///< an existing document with this id was replaced
  std::string error;      ///< why the document was rejected (nothing of it was written)
};

/// A stored document.
struct StoredDocument {
  std::string id;
  std::optional<std::string> text;
  nlohmann::json metadata;
  std::vector<float> vector;  ///< exactly as given to upsert()
  std::string content_hash;
};

enum class SearchMethod { kVector, kLexical, kHybrid };

struct SearchQuery {
  std::vector<float> vector;  ///< kVector / kHybrid: the query embedding (any norm > 0)
  std::string text;           ///< kLexical / kHybrid: words matched with FTS5 BM25
  /// Marqo filter string: `field:value`, `field:"two words"`, `field:(two words)`,
  /// `field:[lo TO hi]` (numbers, `*` = open), `field IN (a, b)`, AND / OR / NOT,
  /// parentheses. `_id:x` matches the id; on an array field `tags:x` matches if it holds x.
  std::string filter;
  int limit = 10;
  int offset = 0;
  SearchMethod method = SearchMethod::kVector;
  bool exact = false;         ///< kVector: skip the approximate index (the flat reference path)
  int rrf_k = 60;             ///< kHybrid: score = sum over the two lists of 1 / (rrf_k + rank)
  bool with_vectors = false;  ///< fill SearchHit::vector
  bool with_metadata = true;  ///< false: hits carry only id and score (text, metadata not read)
};

struct SearchHit {
  std::string id;
  float score = 0;  ///< kVector: cosine similarity; kLexical: -BM25 (higher is better);
                    ///< kHybrid: the RRF score
  std::optional<std::string> text;
  nlohmann::json metadata;
  std::vector<float> vector;  ///< only with SearchQuery::with_vectors
};

struct SearchResult {
  std::vector<SearchHit> hits;  ///< by decreasing score (ties: smaller internal row first)
  double search_ms = 0;         ///< index + fetch time (the caller adds its encode time)
  bool exact = false;           ///< the vector part ran the flat path
  int64_t candidates = -1;      ///< documents matching the filter (-1: no filter)
};

struct CollectionStats {
  std::string name;
  std::string model_id;
  int dim = 0;
  int64_t documents = 0;
  int64_t ann_elements = 0;  ///< live documents in the HNSW index (equals documents)
  int64_t ann_deleted = 0;   ///< removed documents still occupying graph slots
  int64_t seq = 0;           ///< committed write transactions
  int64_t snapshot_seq = 0;  ///< seq the on-disk HNSW snapshot reflects (0 = none)
  uint64_t db_bytes = 0;     ///< SQLite file + WAL
  uint64_t ann_bytes = 0;    ///< HNSW snapshot file
  double open_ms = 0;        ///< time open() took (load + catch-up)
  int64_t caught_up = 0;     ///< rows applied from SQLite at open (0 when the snapshot was current)
  bool rebuilt = false;      ///< the HNSW index was rebuilt from SQLite at open
};

class Collection {
 public:
  /// Opens the collection in directory `dir` (collection.db inside). Throws kNotFound if it
  /// does not exist. When `expect` has a model_id / dim, a mismatch throws kUnsupported.
  static std::unique_ptr<Collection> open(const std::string& dir,
                                          const CollectionSettings* expect = nullptr);
  /// Creates `dir` and the collection; throws kInvalidArgument if it already exists.
  static std::unique_ptr<Collection> create(const std::string& dir,
                                            const CollectionSettings& settings);
  /// open() when `dir` holds a collection (checking model_id and dim), else create().
  static std::unique_ptr<Collection> open_or_create(const std::string& dir,
                                                    const CollectionSettings& settings);
  static bool exists(const std::string& dir);

  /// Saves an HNSW snapshot if the index changed since the last one, then closes.
  ~Collection();
  Collection(const Collection&) = delete;
  Collection& operator=(const Collection&) = delete;

  /// Adds or replaces documents (same id = replace) in one transaction. Invalid documents
  /// (and all but the last of duplicate ids within the batch) are rejected per document.
  std::vector<UpsertResult> upsert(std::vector<DocumentInput> docs);
  /// Removes documents by id; returns how many existed.
  int64_t remove(const std::vector<std::string>& ids);
  /// Removes every document matching a filter string; returns how many.
  int64_t remove_where(const std::string& filter);
  std::optional<StoredDocument> get(const std::string& id) const;
  /// True when a document `id` exists with this content hash (the CLI skips such files).
  bool has_hash(const std::string& id, const std::string& content_hash) const;

  SearchResult search(const SearchQuery& query) const;
  /// Sets the default HNSW beam width (waits for searches in flight).
  void set_ef_search(int ef);

  /// Writes the HNSW snapshot (atomically: temporary file + rename) if at least
  /// `min_changes` documents were written or removed since the last one (0: if any changed).
  /// Writers wait meanwhile; searches continue. The server calls it after writes so that a
  /// restart after a crash has little to catch up.
  void snapshot(int64_t min_changes = 0);
  CollectionStats stats() const;
  const CollectionSettings& settings() const;
  const std::string& dir() const;
  /// Calls f for every document in row order (export).
  void for_each(const std::function<void(const StoredDocument&)>& f) const;

  struct Impl;

 private:
  explicit Collection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Input of embed_documents: what to embed for one document.
struct DocumentSource {
  DocumentInput doc;                 ///< id, text, metadata, content_hash (vector filled here)
  std::vector<uint8_t> image_bytes;  ///< when non-empty the document is embedded by its image
  std::string name;                  ///< for error messages ("documents[3]", a file name)
};

/// Embeds a batch through the Engine (each document its own request, so the batcher coalesces
/// them and one corrupt image fails only its document): by image when image_bytes is set,
/// else by text, unless doc.vector is already set. Returns per document an empty string or
/// the error; on success doc.vector is filled. Thread-safe (as the Engine).
std::vector<std::string> embed_documents(Engine& engine, std::vector<DocumentSource>& docs);

}  // namespace clipserve

// Collection storage: SQLite schema and settings, open (lock, load the HNSW snapshot, catch
// up or rebuild from SQLite), reads by id, snapshots, stats, export. Writes:
// collection_write.cpp; search: collection_search.cpp.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "core/check.h"
#include "index/collection_impl.h"
#include "index/filter.h"

namespace clipserve {

namespace fs = std::filesystem;
using index::Db;
using index::meta_set;
using index::parallel_for;
using index::Stmt;
using json = nlohmann::json;

namespace index {
bool blob_to_vector(std::span<const uint8_t> blob, int dim, std::vector<float>* out) {
  if (blob.size() != static_cast<size_t>(dim) * sizeof(float)) return false;
  out->resize(static_cast<size_t>(dim));
  std::memcpy(out->data(), blob.data(), blob.size());
  return true;
}
void meta_set(const Db& db, const std::string& key, const std::string& value) {
  Stmt st(db,
          "INSERT INTO meta(key, value) VALUES(?, ?) "
          "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  st.bind(1, key).bind(2, value);
  st.step();
}

// Runs fn(0..n-1) on up to 8 threads (hnswlib inserts distinct labels concurrently).
void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  const unsigned threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads && n > 256; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}
}  // namespace index

namespace {

constexpr int kFormat = 1;

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs(
  row INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the vector index's label
  id TEXT NOT NULL UNIQUE,
  text TEXT,
  metadata TEXT NOT NULL,
  hash TEXT NOT NULL,
  vector BLOB NOT NULL,
  seq INTEGER NOT NULL);                  -- write transaction that last wrote the row
CREATE INDEX IF NOT EXISTS docs_seq ON docs(seq);
CREATE TABLE IF NOT EXISTS tombstones(row INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, tokenize='unicode61 remove_diacritics 2');
)";

json settings_to_json(const CollectionSettings& s) {
  return {{"model_id", s.model_id},
          {"dim", s.dim},
          {"lexical_fields", s.lexical_fields},
          {"hnsw_m", s.hnsw_m},
          {"hnsw_ef_construction", s.hnsw_ef_construction},
          {"hnsw_ef_search", s.hnsw_ef_search},
          {"flat_threshold", s.flat_threshold},
          {"vector_storage", s.vector_storage},
          {"extra", s.extra}};
}

CollectionSettings settings_from_json(const json& j) {
  CollectionSettings s;
  s.model_id = j.at("model_id").get<std::string>();
  s.dim = j.at("dim").get<int>();
  s.lexical_fields = j.value("lexical_fields", std::vector<std::string>{});
  s.hnsw_m = j.value("hnsw_m", 16);
  s.hnsw_ef_construction = j.value("hnsw_ef_construction", 200);
  s.hnsw_ef_search = j.value("hnsw_ef_search", 64);
  s.flat_threshold = j.value("flat_threshold", 2000);
  s.vector_storage = j.value("vector_storage", std::string("fp32"));
  s.extra = j.value("extra", json::object());
  return s;
}

void check_settings(const CollectionSettings& s) {
  CS_CHECK_ARG(s.dim >= 1 && s.dim <= 65536, "dim must be 1..65536 (got ", s.dim, ")");
  CS_CHECK_ARG(s.hnsw_m >= 2 && s.hnsw_m <= 256, "hnsw_m must be 2..256");
  CS_CHECK_ARG(s.hnsw_ef_construction >= 1 && s.hnsw_ef_construction <= 10000,
               "hnsw_ef_construction must be 1..10000");
  CS_CHECK_ARG(s.hnsw_ef_search >= 1 && s.hnsw_ef_search <= 10000,
               "hnsw_ef_search must be 1..10000");
  CS_CHECK_ARG(s.flat_threshold >= 0, "flat_threshold must be >= 0");
  index::VectorStorage vs;
  CS_CHECK_ARG(index::parse_storage(s.vector_storage, &vs),
               "vector_storage must be fp32, fp16 or int8 (got '", s.vector_storage, "')");
  for (const auto& f : s.lexical_fields) {
    CS_CHECK_ARG(!f.empty() && f.size() <= 128, "lexical field names must be 1-128 characters");
  }
}

index::HnswParams hnsw_params(const CollectionSettings& s) {
  index::HnswParams p{s.dim, s.hnsw_m, s.hnsw_ef_construction};
  index::parse_storage(s.vector_storage, &p.storage);  // checked by check_settings
  return p;
}

void fsync_path(const std::string& path, bool dir) {
  const int fd = ::open(path.c_str(), dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) CS_THROW(kIo, "cannot open ", path, ": ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) CS_THROW(kIo, "fsync ", path, ": ", std::strerror(errno));
}

std::string meta_get(const Db& db, const std::string& key, const std::string& fallback = "") {
  Stmt st(db, "SELECT value FROM meta WHERE key = ?");
  st.bind(1, key);
  return st.step() ? st.text(0) : fallback;
}
// Snapshot files: ann.<seq>.hnsw, newest first.
std::vector<std::pair<int64_t, std::string>> snapshots(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ann.", 0) == 0 && n.size() > 9 && n.substr(n.size() - 5) == ".hnsw") {
      const std::string num = n.substr(4, n.size() - 9);
      if (!num.empty() && std::all_of(num.begin(), num.end(), ::isdigit)) {
        out.emplace_back(std::stoll(num), e.path().string());
      }
    }
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

// Adds rows (label, vector) to the index on all cores.
void add_rows(index::VectorIndex& ann,
              const std::vector<std::pair<int64_t, std::vector<float>>>& rows, int dim) {
  ann.reserve(ann.size() + ann.deleted() + static_cast<int64_t>(rows.size()));
  parallel_for(rows.size(), [&](size_t i) {
    thread_local std::vector<float> unit;
    unit.resize(static_cast<size_t>(dim));
    if (index::normalize(rows[i].second.data(), dim, unit.data()))
      ann.add(rows[i].first, unit.data());
  });
}

// Reads rows `SELECT row, vector ... ` in chunks and adds them to the index.
int64_t load_rows(const Db& db, const std::string& sql, int64_t since, index::VectorIndex& ann,
                  int dim) {
  Stmt st(db, sql);
  st.bind(1, since);
  std::vector<std::pair<int64_t, std::vector<float>>> chunk;
  int64_t n = 0;
  while (true) {
    const bool more = st.step();
    if (more) {
      std::vector<float> v;
      CS_ASSERT(index::blob_to_vector(st.blob(1), dim, &v), "stored vector of the wrong size");
      chunk.emplace_back(st.int64(0), std::move(v));
    }
    if (chunk.size() >= 16384 || (!more && !chunk.empty())) {
      add_rows(ann, chunk, dim);
      n += static_cast<int64_t>(chunk.size());
      chunk.clear();
    }
    if (!more) break;
  }
  return n;
}

}  // namespace

Collection::Impl::Reader Collection::Impl::reader() const {
  {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (!pool.empty()) {
      Reader r(this, std::move(pool.back()));
      pool.pop_back();
      return r;
    }
  }
  auto db = std::make_unique<Db>(db_path(), false);
  // Hit fetches read pages straight from the mapping (no pread per page); SQLite caps the
  // size at its compile-time maximum (2 GiB in Debian's build), the rest is read as usual.
  db->exec("PRAGMA mmap_size=" + std::to_string(int64_t{1} << 40));
  return Reader(this, std::move(db));
}

Collection::Collection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

bool Collection::exists(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir + "/collection.db", ec);
}

std::unique_ptr<Collection> Collection::create(const std::string& dir,
                                               const CollectionSettings& settings) {
  check_settings(settings);
  CS_CHECK_ARG(!exists(dir), "a collection already exists in ", dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) CS_THROW(kIo, "cannot create ", dir, ": ", ec.message());
  {
    // A 512-float vector is 2 KiB: with the default 4 KiB pages only one row fits a page
    // (2x the space); 16 KiB pages hold 7.
    Db db(dir + "/collection.db", true, 16384);
    db.exec(kSchema);
    index::Transaction tx(db);
    meta_set(db, "format", std::to_string(kFormat));
    meta_set(db, "settings", settings_to_json(settings).dump());
    meta_set(db, "seq", "0");
    meta_set(db, "pruned_upto", "0");
    tx.commit();
  }
  fsync_path(dir, true);
  return open(dir, &settings);
}

std::unique_ptr<Collection> Collection::open_or_create(const std::string& dir,
                                                       const CollectionSettings& settings) {
  return exists(dir) ? open(dir, &settings) : create(dir, settings);
}

std::unique_ptr<Collection> Collection::open(const std::string& dir,
                                             const CollectionSettings* expect) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!exists(dir)) CS_THROW(kNotFound, "no collection in ", dir, " (collection.db missing)");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->lock_fd = ::open((dir + "/LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->lock_fd < 0) CS_THROW(kIo, "cannot open ", dir, "/LOCK: ", std::strerror(errno));
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(impl->lock_fd);
    CS_THROW(kUnavailable, "collection ", dir, " is open in another process (or handle)");
  }
  // From here the Impl owns the lock; a throw closes it in ~Collection / ~unique_ptr below.
  std::unique_ptr<Collection> coll(new Collection(std::move(impl)));
  Impl& m = *coll->impl_;
  m.writer = std::make_unique<Db>(m.db_path(), false);
  m.writer->exec(kSchema);
  const int format = std::stoi(meta_get(*m.writer, "format", "0"));
  if (format != kFormat)
    CS_THROW(kUnsupported, dir, ": collection format ", format, " (this build reads ", kFormat,
             ")");
  try {
    m.settings = settings_from_json(json::parse(meta_get(*m.writer, "settings", "{}")));
  } catch (const json::exception& e) {
    CS_THROW(kIo, dir, ": unreadable settings: ", e.what());
  }
  if (expect) {
    if (!expect->model_id.empty() && expect->model_id != m.settings.model_id) {
      CS_THROW(kUnsupported, "collection ", dir, " holds embeddings of model '",
               m.settings.model_id, "', not '", expect->model_id, "'");
    }
    if (expect->dim != 0 && expect->dim != m.settings.dim) {
      CS_THROW(kUnsupported, "collection ", dir, " has dimension ", m.settings.dim, ", the model ",
               expect->dim);
    }
  }
  m.seq = std::stoll(meta_get(*m.writer, "seq", "0"));
  const int64_t pruned = std::stoll(meta_get(*m.writer, "pruned_upto", "0"));
  const auto p = hnsw_params(m.settings);
  int64_t docs = 0;
  {
    Stmt st(*m.writer, "SELECT COUNT(*) FROM docs");
    st.step();
    docs = st.int64(0);
  }
  // Newest usable snapshot, caught up with the rows and removals written after it.
  for (const auto& [snap_seq, path] : snapshots(dir)) {
    if (snap_seq > m.seq || snap_seq < pruned) continue;  // ahead of SQLite / removals pruned
    try {
      auto ann = index::load_hnsw(p, path);
      Stmt tomb(*m.writer, "SELECT row FROM tombstones WHERE seq > ?");
      tomb.bind(1, snap_seq);
      int64_t applied = 0;
      while (tomb.step()) applied += ann->remove(tomb.int64(0)) ? 1 : 0;
      applied += load_rows(*m.writer, "SELECT row, vector FROM docs WHERE seq > ?", snap_seq, *ann,
                           m.settings.dim);
      if (ann->size() != docs) {
        std::fprintf(
            stderr, "clipserve: %s: snapshot %s disagrees with SQLite (%lld vs %lld); rebuilding\n",
            dir.c_str(), path.c_str(), static_cast<long long>(ann->size()),
            static_cast<long long>(docs));
        continue;
      }
      m.ann = std::move(ann);
      m.snapshot_seq = snap_seq;
      m.dirty = snap_seq != m.seq;
      m.open_stats.caught_up = applied;
      m.changes = applied;
      break;
    } catch (const Error& e) {
      std::fprintf(stderr, "clipserve: %s: ignoring snapshot: %s\n", dir.c_str(), e.what());
    }
  }
  if (!m.ann) {
    m.ann = index::make_hnsw(p, docs + docs / 4 + 1024);
    load_rows(*m.writer, "SELECT row, vector FROM docs WHERE seq > ? ORDER BY row", -1, *m.ann,
              m.settings.dim);
    m.open_stats.rebuilt = docs > 0 || !snapshots(dir).empty();
    m.dirty = true;
    m.changes = docs;
  }
  m.ann->set_ef(m.settings.hnsw_ef_search);
  if (m.open_stats.rebuilt && docs > 10000) coll->snapshot();  // next open is fast
  m.open_stats.open_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return coll;
}

Collection::~Collection() {
  if (!impl_) return;
  if (impl_->writer && impl_->ann) {
    try {
      snapshot();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "clipserve: %s: snapshot at close failed: %s\n", impl_->dir.c_str(),
                   e.what());
    }
  }
  impl_->pool.clear();
  impl_->writer.reset();
  if (impl_->lock_fd >= 0) ::close(impl_->lock_fd);
}

std::optional<StoredDocument> Collection::get(const std::string& id) const {
  auto r = impl_->reader();
  Stmt st(*r.db, "SELECT id, text, metadata, hash, vector FROM docs WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  StoredDocument d;
  d.id = st.text(0);
  if (!st.is_null(1)) d.text = st.text(1);
  d.metadata = json::parse(st.text(2));
  d.content_hash = st.text(3);
  CS_ASSERT(index::blob_to_vector(st.blob(4), impl_->settings.dim, &d.vector));
  return d;
}

bool Collection::has_hash(const std::string& id, const std::string& content_hash) const {
  auto r = impl_->reader();
  Stmt st(*r.db, "SELECT 1 FROM docs WHERE id = ? AND hash = ?");
  st.bind(1, id).bind(2, content_hash);
  return st.step();
}

void Collection::for_each(const std::function<void(const StoredDocument&)>& f) const {
  auto r = impl_->reader();
  Stmt st(*r.db, "SELECT id, text, metadata, hash, vector FROM docs ORDER BY row");
  while (st.step()) {
    StoredDocument d;
    d.id = st.text(0);
    if (!st.is_null(1)) d.text = st.text(1);
    d.metadata = json::parse(st.text(2));
    d.content_hash = st.text(3);
    CS_ASSERT(index::blob_to_vector(st.blob(4), impl_->settings.dim, &d.vector));
    f(d);
  }
}

void Collection::set_ef_search(int ef) {
  CS_CHECK_ARG(ef >= 1 && ef <= 10000, "ef_search must be 1..10000");
  auto lock = impl_->write_lock();
  impl_->settings.hnsw_ef_search = ef;
  impl_->ann->set_ef(ef);
}

void Collection::snapshot(int64_t min_changes) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> wl(m.write_mu);
  if (!m.dirty || m.changes < min_changes) return;
  const std::string path = m.dir + "/ann." + std::to_string(m.seq) + ".hnsw";
  const std::string tmp = path + ".tmp";
  {
    auto lock = m.read_lock();  // writers are held off by write_mu; searches continue
    m.ann->save(tmp);
  }
  fsync_path(tmp, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    CS_THROW(kIo, "rename ", tmp, ": ", std::strerror(errno));
  }
  fsync_path(m.dir, true);
  for (const auto& [s, p] : snapshots(m.dir)) {
    if (s != m.seq) ::unlink(p.c_str());
  }
  {
    index::Transaction tx(*m.writer);
    Stmt st(*m.writer, "DELETE FROM tombstones WHERE seq <= ?");
    st.bind(1, m.seq);
    st.step();
    meta_set(*m.writer, "pruned_upto", std::to_string(m.seq));
    tx.commit();
  }
  m.snapshot_seq = m.seq;
  m.dirty = false;
  m.changes = 0;
}

CollectionStats Collection::stats() const {
  const Impl& m = *impl_;
  CollectionStats s = m.open_stats;
  s.name = fs::path(m.dir).filename().string();
  if (s.name.empty()) s.name = fs::path(m.dir).parent_path().filename().string();
  s.model_id = m.settings.model_id;
  s.dim = m.settings.dim;
  {
    auto r = m.reader();
    Stmt st(*r.db, "SELECT COUNT(*) FROM docs");
    st.step();
    s.documents = st.int64(0);
  }
  {
    auto lock = m.read_lock();
    s.ann_elements = m.ann->size();
    s.ann_deleted = m.ann->deleted();
  }
  {
    std::lock_guard<std::mutex> wl(const_cast<Impl&>(m).write_mu);
    s.seq = m.seq;
    s.snapshot_seq = m.snapshot_seq;
  }
  std::error_code ec;
  for (const char* f : {"/collection.db", "/collection.db-wal"}) {
    const auto n = fs::file_size(m.dir + f, ec);
    if (!ec) s.db_bytes += n;
  }
  for (const auto& [seq, p] : snapshots(m.dir)) {
    const auto n = fs::file_size(p, ec);
    if (!ec && seq == s.snapshot_seq) s.ann_bytes = n;
  }
  return s;
}

const CollectionSettings& Collection::settings() const { return impl_->settings; }
const std::string& Collection::dir() const { return impl_->dir; }

}  // namespace clipserve

// Collection internals shared by collection.cpp (open, writes, snapshots) and
// collection_search.cpp (reads): the SQLite connections, the vector index and their locks.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "clipserve/collection.h"
#include "index/sqlite.h"
#include "index/vector_index.h"

namespace clipserve {

struct Collection::Impl {
  std::string dir;
  CollectionSettings settings;
  int lock_fd = -1;
  std::unique_ptr<index::Db> writer;  // guarded by write_mu
  std::mutex write_mu;
  int64_t seq = 0;           // guarded by write_mu
  int64_t snapshot_seq = 0;  // guarded by write_mu
  bool dirty = false;        // the index changed since the snapshot (write_mu)
  int64_t changes = 0;       // documents written or removed since it (write_mu)

  // Read connections, one per concurrent reader (WAL readers run beside the writer).
  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<index::Db>> pool;

  // The vector index. Readers: lock `turnstile`, take ann_mu shared, release turnstile.
  // Writers: lock turnstile, take ann_mu exclusively. Waiting writers thus stop new readers
  // (no writer starvation under a constant search load).
  std::unique_ptr<index::VectorIndex> ann;
  mutable std::mutex turnstile;
  mutable std::shared_mutex ann_mu;

  CollectionStats open_stats;

  std::string db_path() const { return dir + "/collection.db"; }

  struct Reader {
    Reader(const Impl* i, std::unique_ptr<index::Db> d) : impl(i), db(std::move(d)) {}
    Reader(Reader&&) = default;
    const Impl* impl;
    std::unique_ptr<index::Db> db;
    ~Reader() {
      if (db) {
        db->reset_cached();
        std::lock_guard<std::mutex> lock(impl->pool_mu);
        impl->pool.push_back(std::move(db));
      }
    }
  };
  Reader reader() const;

  std::shared_lock<std::shared_mutex> read_lock() const {
    std::lock_guard<std::mutex> t(turnstile);
    return std::shared_lock<std::shared_mutex>(ann_mu);
  }
  std::unique_lock<std::shared_mutex> write_lock() const {
    std::lock_guard<std::mutex> t(turnstile);
    return std::unique_lock<std::shared_mutex>(ann_mu);
  }
};

namespace index {
/// Parses a stored vector blob; false when its size is not dim floats.
bool blob_to_vector(std::span<const uint8_t> blob, int dim, std::vector<float>* out);
/// Sets meta(key) inside the caller's transaction.
void meta_set(const Db& db, const std::string& key, const std::string& value);
/// Runs fn(0..n-1) on up to 8 threads (hnswlib inserts distinct labels concurrently).
void parallel_for(size_t n, const std::function<void(size_t)>& fn);
}  // namespace index

}  // namespace clipserve

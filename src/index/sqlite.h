// Thin RAII over the SQLite C API: a connection, prepared statements with typed binds, and
// errors turned into clipserve::Error naming the statement.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace clipserve::index {

class Stmt;

/// A value bound to a `?` parameter.
using SqlValue = std::variant<int64_t, double, std::string>;

class Db {
 public:
  /// Opens (or creates) `path`; WAL, synchronous=FULL, busy timeout. Throws Error(kIo).
  /// `page_size` (bytes, 0 = SQLite's default) only takes effect for a new database.
  explicit Db(const std::string& path, bool create, int page_size = 0);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }
  void exec(const std::string& sql);  ///< statements without results
  const std::string& path() const { return path_; }
  /// A statement prepared once per connection (at most 64 kept), reset and unbound. Not
  /// re-entrant: finish with one before asking for the same SQL again.
  Stmt& cached(const std::string& sql) const;
  /// Resets every cached statement (ends their read transactions: a pooled connection must
  /// not keep an old snapshot because a caller stopped stepping early, e.g. on a throw).
  void reset_cached() const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  mutable std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
};

class Stmt {
 public:
  Stmt(const Db& db, const std::string& sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind_blob(int i, const void* data, size_t n);
  Stmt& bind_null(int i);
  Stmt& bind_value(int i, const SqlValue& v);
  /// Binds values to parameters first, first+1, ...
  Stmt& bind_all(int first, const std::vector<SqlValue>& values);
  /// Advances; true while a row is available. Throws Error(kIo) on failure.
  bool step();
  void reset();

  int64_t int64(int col) const;
  double real(int col) const;
  bool is_null(int col) const;
  std::string text(int col) const;
  std::span<const uint8_t> blob(int col) const;

 private:
  sqlite3_stmt* st_ = nullptr;
  sqlite3* db_ = nullptr;
  std::string sql_;
};

/// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed without commit().
class Transaction {
 public:
  explicit Transaction(Db& db);
  ~Transaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace clipserve::index

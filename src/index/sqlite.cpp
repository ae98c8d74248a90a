// SQLite connection / statement wrappers (see sqlite.h).
#include "index/sqlite.h"

#include "core/check.h"

namespace clipserve::index {

namespace {
[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  const int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
    CS_THROW(kUnavailable, what, ": database busy (", msg, ")");
  }
  if ((code & 0xff) == SQLITE_CONSTRAINT) CS_THROW(kInvalidArgument, what, ": ", msg);
  CS_THROW(kIo, what, ": ", msg, " (sqlite code ", code, ")");
}
}  // namespace

Db::Db(const std::string& path, bool create, int page_size) : path_(path) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (create) flags |= SQLITE_OPEN_CREATE;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    CS_THROW(kIo, "cannot open ", path, ": ", msg);
  }
  sqlite3_busy_timeout(db_, 10000);
  if (page_size > 0) exec("PRAGMA page_size=" + std::to_string(page_size));
  // WAL: readers never block the writer. synchronous=FULL: the WAL is fsynced at every
  // commit, so a committed transaction survives power loss, not only a process crash.
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
}

Db::~Db() {
  cache_.clear();  // finalize before closing
  sqlite3_close_v2(db_);
}

void Db::reset_cached() const {
  for (auto& [sql, st] : cache_) st->reset();
}

Stmt& Db::cached(const std::string& sql) const {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    if (cache_.size() >= 64) cache_.clear();
    it = cache_.emplace(sql, std::make_unique<Stmt>(*this, sql)).first;
  } else {
    it->second->reset();
  }
  return *it->second;
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);  // the connection's errmsg says the same
    fail(db_, path_ + ": " + sql.substr(0, 60));
  }
}

Stmt::Stmt(const Db& db, const std::string& sql) : db_(db.get()), sql_(sql) {
  if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &st_, nullptr) !=
      SQLITE_OK) {
    fail(db_, "prepare " + sql.substr(0, 80));
  }
}
Stmt::~Stmt() { sqlite3_finalize(st_); }

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(st_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(st_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_blob(int i, const void* data, size_t n) {
  sqlite3_bind_blob(st_, i, data, static_cast<int>(n), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(st_, i);
  return *this;
}
Stmt& Stmt::bind_value(int i, const SqlValue& v) {
  std::visit([&](const auto& x) { bind(i, x); }, v);
  return *this;
}
Stmt& Stmt::bind_all(int first, const std::vector<SqlValue>& values) {
  for (size_t k = 0; k < values.size(); ++k) bind_value(first + static_cast<int>(k), values[k]);
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, sql_.substr(0, 80));
}
void Stmt::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

int64_t Stmt::int64(int col) const { return sqlite3_column_int64(st_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(st_, col); }
bool Stmt::is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
std::string Stmt::text(int col) const {
  const auto* p = sqlite3_column_text(st_, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(st_, col)))
           : std::string();
}
std::span<const uint8_t> Stmt::blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st_, col));
  return {p, static_cast<size_t>(sqlite3_column_bytes(st_, col))};
}

Transaction::Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}
void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace clipserve::index

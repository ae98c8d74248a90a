// Collection writes: document validation, durable upserts (one transaction per batch,
// acknowledged after COMMIT, then the vector index) and removals by id or filter.
#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_map>

#include "core/check.h"
#include "index/collection_impl.h"
#include "index/filter.h"
#include "text/unicode.h"

namespace clipserve {

using index::meta_set;
using index::parallel_for;
using index::Stmt;
using json = nlohmann::json;

namespace {

bool valid_field_name(const std::string& k) {
  return !k.empty() && k.size() <= 128 && k[0] != '_' &&
         std::all_of(k.begin(), k.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
         });
}

bool valid_utf8(const std::string& s) { return text::find_invalid_utf8(s) == std::string::npos; }

// Why a document cannot be stored, or "" when it can.
std::string validate(const DocumentInput& d, int dim) {
  if (d.id.size() > 512) return "_id longer than 512 bytes";
  if (!valid_utf8(d.id)) return "_id is not valid UTF-8";
  if (d.text && !valid_utf8(*d.text)) {
    return "text is not valid UTF-8 (byte " + std::to_string(text::find_invalid_utf8(*d.text)) +
           ")";
  }
  if (static_cast<int>(d.vector.size()) != dim) {
    return "vector has " + std::to_string(d.vector.size()) +
           " values; the collection's dimension is " + std::to_string(dim);
  }
  for (size_t i = 0; i < d.vector.size(); ++i) {
    if (!std::isfinite(d.vector[i])) return "vector[" + std::to_string(i) + "] is not finite";
  }
  std::vector<float> unit(d.vector.size());
  if (!index::normalize(d.vector.data(), dim, unit.data())) return "vector has zero norm";
  if (!d.metadata.is_object()) return "metadata must be a JSON object";
  for (const auto& [k, v] : d.metadata.items()) {
    if (!valid_field_name(k)) {
      return "field name '" + k +
             "' must be 1-128 characters of A-Z a-z 0-9 _ - . not starting with _";
    }
    if (v.is_string()) {
      if (!valid_utf8(v.get_ref<const std::string&>()))
        return "field '" + k + "' is not valid UTF-8";
    } else if (v.is_number_float()) {
      if (!std::isfinite(v.get<double>())) return "field '" + k + "' is not a finite number";
    } else if (v.is_array()) {
      for (const auto& e : v) {
        if (!e.is_string()) return "field '" + k + "': arrays may hold only strings";
        if (!valid_utf8(e.get_ref<const std::string&>()))
          return "field '" + k + "' is not valid UTF-8";
      }
    } else if (!v.is_number() && !v.is_boolean()) {
      return "field '" + k + "' must be a string, number, boolean or array of strings";
    }
  }
  return "";
}

std::string lexical_body(const DocumentInput& d, const std::vector<std::string>& fields) {
  std::string body = d.text.value_or("");
  for (const auto& f : fields) {
    auto it = d.metadata.find(f);
    if (it == d.metadata.end()) continue;
    if (it->is_string()) body.append("\n").append(it->get_ref<const std::string&>());
    if (it->is_array()) {
      for (const auto& e : *it) body.append("\n").append(e.get_ref<const std::string&>());
    }
  }
  return body;
}

std::string new_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

std::vector<UpsertResult> Collection::upsert(std::vector<DocumentInput> docs) {
  Impl& m = *impl_;
  std::vector<UpsertResult> out(docs.size());
  std::unordered_map<std::string, int> count;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].id.empty()) docs[i].id = new_id();
    out[i].id = docs[i].id;
    ++count[docs[i].id];
  }
  std::vector<size_t> good;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (count[docs[i].id] > 1) {
      out[i].error = "duplicate _id '" + docs[i].id + "' within the batch";
    } else {
      out[i].error = validate(docs[i], m.settings.dim);
    }
    if (out[i].error.empty()) good.push_back(i);
  }
  if (good.empty()) return out;

  std::lock_guard<std::mutex> wl(m.write_mu);
  std::vector<std::pair<int64_t, size_t>> written;  // (row, doc index)
  {
    index::Transaction tx(*m.writer);
    const int64_t seq = m.seq + 1;
    Stmt find(*m.writer, "SELECT row FROM docs WHERE id = ?");
    Stmt ins(*m.writer,
             "INSERT INTO docs(id, text, metadata, hash, vector, seq) VALUES(?, ?, ?, ?, ?, ?)");
    Stmt upd(*m.writer,
             "UPDATE docs SET text = ?, metadata = ?, hash = ?, vector = ?, seq = ? WHERE row = ?");
    Stmt fts_del(*m.writer, "DELETE FROM fts WHERE rowid = ?");
    Stmt fts_ins(*m.writer, "INSERT INTO fts(rowid, body) VALUES(?, ?)");
    for (size_t i : good) {
      const auto& d = docs[i];
      const std::string meta = d.metadata.dump();
      find.reset();
      find.bind(1, d.id);
      int64_t row = -1;
      if (find.step()) row = find.int64(0);
      find.reset();
      Stmt& w = row >= 0 ? upd : ins;
      w.reset();
      int c = 1;
      if (row < 0) w.bind(c++, d.id);
      if (d.text) {
        w.bind(c++, std::string_view(*d.text));
      } else {
        w.bind_null(c++);
      }
      w.bind(c++, meta);
      w.bind(c++, d.content_hash);
      w.bind_blob(c++, d.vector.data(), d.vector.size() * sizeof(float));
      w.bind(c++, seq);
      if (row >= 0) w.bind(c++, row);
      w.step();
      if (row < 0) {
        row = sqlite3_last_insert_rowid(m.writer->get());
      } else {
        out[i].replaced = true;
        fts_del.reset();
        fts_del.bind(1, row);
        fts_del.step();
      }
      fts_ins.reset();
      fts_ins.bind(1, row).bind(2, std::string_view(lexical_body(d, m.settings.lexical_fields)));
      fts_ins.step();
      written.emplace_back(row, i);
    }
    meta_set(*m.writer, "seq", std::to_string(seq));
    tx.commit();  // durable from here (WAL fsynced): the batch is acknowledged below
    m.seq = seq;
  }
  {
    auto lock = m.write_lock();
    m.ann->reserve(m.ann->size() + m.ann->deleted() + static_cast<int64_t>(written.size()));
    const int dim = m.settings.dim;
    parallel_for(written.size(), [&](size_t k) {
      thread_local std::vector<float> unit;
      unit.resize(static_cast<size_t>(dim));
      index::normalize(docs[written[k].second].vector.data(), dim, unit.data());
      m.ann->add(written[k].first, unit.data());
    });
    m.dirty = true;
    m.changes += static_cast<int64_t>(written.size());
  }
  for (const auto& [row, i] : written) out[i].ok = true;
  return out;
}

namespace {
int64_t remove_rows(Collection::Impl& m, const std::vector<int64_t>& rows) {
  // write_mu held by the caller.
  if (rows.empty()) return 0;
  {
    index::Transaction tx(*m.writer);
    const int64_t seq = m.seq + 1;
    Stmt del(*m.writer, "DELETE FROM docs WHERE row = ?");
    Stmt fts_del(*m.writer, "DELETE FROM fts WHERE rowid = ?");
    Stmt tomb(*m.writer, "INSERT OR REPLACE INTO tombstones(row, seq) VALUES(?, ?)");
    for (int64_t r : rows) {
      del.reset();
      del.bind(1, r);
      del.step();
      fts_del.reset();
      fts_del.bind(1, r);
      fts_del.step();
      tomb.reset();
      tomb.bind(1, r).bind(2, seq);
      tomb.step();
    }
    meta_set(*m.writer, "seq", std::to_string(seq));
    tx.commit();
    m.seq = seq;
  }
  auto lock = m.write_lock();
  for (int64_t r : rows) m.ann->remove(r);
  m.dirty = true;
  m.changes += static_cast<int64_t>(rows.size());
  return static_cast<int64_t>(rows.size());
}
}  // namespace

int64_t Collection::remove(const std::vector<std::string>& ids) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> wl(m.write_mu);
  std::vector<int64_t> rows;
  Stmt find(*m.writer, "SELECT row FROM docs WHERE id = ?");
  for (const auto& id : ids) {
    find.reset();
    find.bind(1, id);
    if (find.step()) rows.push_back(find.int64(0));
  }
  find.reset();
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return remove_rows(m, rows);
}

int64_t Collection::remove_where(const std::string& filter) {
  Impl& m = *impl_;
  const auto f = index::parse_filter(filter);
  CS_CHECK_ARG(f.sql != "1", "an empty filter would remove every document; refused");
  std::lock_guard<std::mutex> wl(m.write_mu);
  std::vector<int64_t> rows;
  Stmt st(*m.writer, "SELECT d.row FROM docs d WHERE " + f.sql);
  st.bind_all(1, f.params);
  while (st.step()) rows.push_back(st.int64(0));
  return remove_rows(m, rows);
}

}  // namespace clipserve

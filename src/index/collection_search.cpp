// Collection search: vector (HNSW, or the exact flat scan for small or selectively filtered
// candidate sets), lexical (FTS5 BM25), hybrid (reciprocal rank fusion), filters, paging.
#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "core/check.h"
#include "index/collection_impl.h"
#include "index/filter.h"
#include "index/fusion.h"

namespace clipserve {

using index::Scored;
using index::Stmt;
using json = nlohmann::json;

namespace {

constexpr int kMaxWindow = 10000;  // limit + offset
constexpr int kHybridDepth = 100;  // each list's depth before fusion (at least limit + offset)

// Orders by score desc, row asc (the index's tie order) and keeps the first `k`.
Scored top(Scored v, int k) {
  auto better = [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  const size_t keep = std::min(v.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(keep), v.end(), better);
  v.resize(keep);
  return v;
}

// Exact scores of `rows` from the fp32 vectors SQLite holds (normalized as the index's input
// is, scored with dot_exact: the same numbers the fp32 index gives), in chunks of 256.
Scored score_from_sqlite(const index::Db& db, const float* q, int dim,
                         const std::vector<int64_t>& rows) {
  Scored out;
  std::vector<float> v, unit(static_cast<size_t>(dim));
  for (size_t s = 0; s < rows.size(); s += 256) {
    const size_t e = std::min(rows.size(), s + 256);
    std::string sql = "SELECT row, vector FROM docs WHERE row IN (?";
    for (size_t i = s + 1; i < e; ++i) sql += ",?";
    Stmt& st = db.cached(sql + ")");
    for (size_t i = s; i < e; ++i) st.bind(static_cast<int>(i - s + 1), rows[i]);
    while (st.step()) {
      if (index::blob_to_vector(st.blob(1), dim, &v) &&
          index::normalize(v.data(), dim, unit.data()))
        out.emplace_back(st.int64(0), index::dot_exact(q, unit.data(), dim));
    }
  }
  return out;
}

// The flat scan: exact top-`need` over every document or over `cand`. A compressed index
// holds no fp32 copy, so it scans SQLite's vectors instead.
Scored exact_scan(const index::VectorIndex& ann, const index::Db& db, const float* q, int dim,
                  int need, const std::vector<int64_t>* cand) {
  if (ann.exact_scores()) return ann.exact(q, need, cand);
  if (cand) return top(score_from_sqlite(db, q, dim, *cand), need);
  Scored all;
  std::vector<float> v, unit(static_cast<size_t>(dim));
  Stmt& st = db.cached("SELECT row, vector FROM docs");
  while (st.step()) {
    if (index::blob_to_vector(st.blob(1), dim, &v) && index::normalize(v.data(), dim, unit.data()))
      all.emplace_back(st.int64(0), index::dot_exact(q, unit.data(), dim));
  }
  return top(std::move(all), need);
}

// Vector top-`need` among all live vectors or among `cand` (sorted rows). Never returns fewer
// than min(need, candidates) hits: an approximate pass that falls short is redone exactly.
// On a compressed index the graph pass keeps `depth` > need candidates by their approximate
// scores, and those are re-ranked exactly from SQLite.
Scored vector_search(const index::VectorIndex& ann, const index::Db& db, int dim, const float* q,
                     int need, const std::vector<int64_t>* cand, bool exact, int flat_threshold,
                     bool* used_exact) {
  const int64_t n = ann.size();
  *used_exact = true;
  const bool rerank = !ann.exact_scores();
  const int depth = rerank ? std::max(need * 4, 40) : need;
  auto finish = [&](Scored r) {
    *used_exact = false;
    if (!rerank) return r;
    std::vector<int64_t> rows;
    for (const auto& h : r) rows.push_back(h.first);
    return top(score_from_sqlite(db, q, dim, rows), need);
  };
  if (!cand) {
    if (exact || n <= flat_threshold) return exact_scan(ann, db, q, dim, need, nullptr);
    Scored r = ann.search(q, depth);
    if (static_cast<int64_t>(r.size()) >= std::min<int64_t>(need, n)) return finish(std::move(r));
    return exact_scan(ann, db, q, dim, need, nullptr);
  }
  const auto c = static_cast<int64_t>(cand->size());
  // A selective filter: scanning the candidates is cheaper than a graph search that would
  // have to visit ~n / c times more nodes to find enough of them.
  if (exact || c <= flat_threshold || c * 16 <= n) return exact_scan(ann, db, q, dim, need, cand);
  int64_t k = std::min<int64_t>(n, static_cast<int64_t>(depth) * ((n + c - 1) / c) * 2);
  Scored kept;
  while (true) {
    kept.clear();
    for (const auto& hit : ann.search(q, static_cast<int>(k))) {
      if (std::binary_search(cand->begin(), cand->end(), hit.first)) kept.push_back(hit);
      if (static_cast<int>(kept.size()) == depth) break;
    }
    if (static_cast<int>(kept.size()) >= depth || k >= n) break;
    k = std::min<int64_t>(n, k * 4);
  }
  if (static_cast<int64_t>(kept.size()) >= std::min<int64_t>(need, c))
    return finish(std::move(kept));
  return exact_scan(ann, db, q, dim, need, cand);
}

Scored lexical_search(const index::Db& db, const std::string& text, int need,
                      const index::SqlFilter& f) {
  const std::string match = index::fts_query(text);
  CS_CHECK_ARG(!match.empty(), "'q' has no words to search for (lexical search)");
  Stmt st(db,
          "SELECT fts.rowid, bm25(fts) FROM fts JOIN docs d ON d.row = fts.rowid "
          "WHERE fts MATCH ? AND (" +
              f.sql + ") ORDER BY bm25(fts), fts.rowid LIMIT ?");
  st.bind(1, std::string_view(match));
  st.bind_all(2, f.params);
  st.bind(2 + static_cast<int>(f.params.size()), static_cast<int64_t>(need));
  Scored out;
  while (st.step()) out.emplace_back(st.int64(0), static_cast<float>(-st.real(1)));
  return out;
}

}  // namespace

SearchResult Collection::search(const SearchQuery& q) const {
  const auto t0 = std::chrono::steady_clock::now();
  const Impl& m = *impl_;
  CS_CHECK_ARG(q.limit >= 0 && q.offset >= 0, "'limit' and 'offset' must be >= 0");
  CS_CHECK_ARG(static_cast<int64_t>(q.limit) + q.offset <= kMaxWindow,
               "'limit' + 'offset' must be <= ", kMaxWindow);
  CS_CHECK_ARG(q.rrf_k >= 1, "rrf_k must be >= 1");
  const int need = q.limit + q.offset;
  const bool use_vec = q.method != SearchMethod::kLexical;
  const bool use_lex = q.method != SearchMethod::kVector;
  std::vector<float> unit;
  if (use_vec) {
    CS_CHECK_ARG(static_cast<int>(q.vector.size()) == m.settings.dim, "the query vector has ",
                 q.vector.size(), " values; the collection's dimension is ", m.settings.dim);
    unit.resize(q.vector.size());
    CS_CHECK_ARG(index::normalize(q.vector.data(), m.settings.dim, unit.data()),
                 "the query vector has zero norm or a value that is not finite");
  }
  const auto f = index::parse_filter(q.filter);
  const bool filtered = f.sql != "1";

  SearchResult res;
  auto r = m.reader();
  // Held until the hits are fetched: a removal acknowledged before this point is in both
  // SQLite and the index; one acknowledged later waits for us.
  auto lock = m.read_lock();
  std::vector<int64_t> cand;
  if (filtered && use_vec) {
    Stmt st(*r.db, "SELECT d.row FROM docs d WHERE " + f.sql + " ORDER BY d.row");
    st.bind_all(1, f.params);
    while (st.step()) cand.push_back(st.int64(0));
    res.candidates = static_cast<int64_t>(cand.size());
  }
  Scored ranked;
  if (need > 0) {
    const int depth = q.method == SearchMethod::kHybrid ? std::max(need, kHybridDepth) : need;
    Scored vec, lex;
    if (use_vec) {
      vec =
          vector_search(*m.ann, *r.db, m.settings.dim, unit.data(), depth,
                        filtered ? &cand : nullptr, q.exact, m.settings.flat_threshold, &res.exact);
    }
    if (use_lex) lex = lexical_search(*r.db, q.text, depth, f);
    ranked = q.method == SearchMethod::kVector    ? std::move(vec)
             : q.method == SearchMethod::kLexical ? std::move(lex)
                                                  : index::rrf_fuse({vec, lex}, q.rrf_k);
  }
  // The page of hits, fetched in one statement (prepared once per connection).
  const size_t lo = std::min(static_cast<size_t>(q.offset), ranked.size());
  const size_t hi = std::min(static_cast<size_t>(need), ranked.size());
  if (hi > lo) {
    std::string sql = q.with_metadata ? "SELECT row, id, text, metadata" : "SELECT row, id";
    if (q.with_vectors) sql += ", vector";
    sql += " FROM docs WHERE row IN (?";
    for (size_t i = lo + 1; i < hi; ++i) sql += ",?";
    sql += ")";
    Stmt& get = r.db->cached(sql);
    for (size_t i = lo; i < hi; ++i) get.bind(static_cast<int>(i - lo + 1), ranked[i].first);
    std::unordered_map<int64_t, SearchHit> found;
    found.reserve(hi - lo);
    const int vcol = q.with_metadata ? 4 : 2;
    while (get.step()) {
      SearchHit h;
      h.id = get.text(1);
      if (q.with_metadata) {
        if (!get.is_null(2)) h.text = get.text(2);
        h.metadata = json::parse(get.text(3));
      } else {
        h.metadata = json::object();
      }
      if (q.with_vectors) index::blob_to_vector(get.blob(vcol), m.settings.dim, &h.vector);
      found.emplace(get.int64(0), std::move(h));
    }
    res.hits.reserve(hi - lo);
    for (size_t i = lo; i < hi; ++i) {
      auto it = found.find(ranked[i].first);
      // Absent: removed from SQLite, its removal from the index not yet acknowledged.
      if (it == found.end()) continue;
      it->second.score = ranked[i].second;
      res.hits.push_back(std::move(it->second));
    }
  }
  res.search_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace clipserve

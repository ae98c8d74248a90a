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

// Vector top-`need` among all live vectors or among `cand` (sorted rows). Never returns fewer
// than min(need, candidates) hits: an approximate pass that falls short is redone exactly.
Scored vector_search(const index::VectorIndex& ann, const float* q, int need,
                     const std::vector<int64_t>* cand, bool exact, int flat_threshold,
                     bool* used_exact) {
  const int64_t n = ann.size();
  *used_exact = true;
  if (!cand) {
    if (exact || n <= flat_threshold) return ann.exact(q, need);
    Scored r = ann.search(q, need);
    if (static_cast<int64_t>(r.size()) >= std::min<int64_t>(need, n)) {
      *used_exact = false;
      return r;
    }
    return ann.exact(q, need);
  }
  const auto c = static_cast<int64_t>(cand->size());
  // A selective filter: scanning the candidates is cheaper than a graph search that would
  // have to visit ~n / c times more nodes to find enough of them.
  if (exact || c <= flat_threshold || c * 16 <= n) return ann.exact(q, need, cand);
  int64_t k = std::min<int64_t>(n, static_cast<int64_t>(need) * ((n + c - 1) / c) * 2);
  Scored kept;
  while (true) {
    kept.clear();
    for (const auto& hit : ann.search(q, static_cast<int>(k))) {
      if (std::binary_search(cand->begin(), cand->end(), hit.first)) kept.push_back(hit);
      if (static_cast<int>(kept.size()) == need) break;
    }
    if (static_cast<int>(kept.size()) >= need || k >= n) break;
    k = std::min<int64_t>(n, k * 4);
  }
  if (static_cast<int64_t>(kept.size()) >= std::min<int64_t>(need, c)) {
    *used_exact = false;
    return kept;
  }
  return ann.exact(q, need, cand);
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
      vec = vector_search(*m.ann, unit.data(), depth, filtered ? &cand : nullptr, q.exact,
                          m.settings.flat_threshold, &res.exact);
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

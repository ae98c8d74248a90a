// Collections: storage, filters, exact search against a brute-force reference, HNSW recall,
// lexical and hybrid search (hand-checked fusion), persistence and catch-up, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>
#include <set>

#include "clipserve/collection.h"
#include "clipserve/error.h"
#include "index/dot_simd.h"
#include "index/filter.h"
#include "index/fusion.h"
#include "index/vector_index.h"
#include "index_testing.h"
#include "testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::random_vector;
using test::reference_topk;

CollectionSettings settings(int dim) {
  CollectionSettings s;
  s.model_id = "test-model";
  s.dim = dim;
  s.lexical_fields = {"title"};
  return s;
}

// n documents with metadata: i (int), even (bool), color (one of 3), tags (array), score (real).
std::vector<DocumentInput> make_docs(int n, int dim, uint64_t seed, int first = 0) {
  std::vector<DocumentInput> docs;
  static const char* kColors[] = {"red", "green", "blue"};
  for (int i = first; i < first + n; ++i) {
    DocumentInput d;
    d.id = "doc" + std::to_string(i);
    d.vector = random_vector(dim, seed * 1000003 + i);
    d.metadata = {{"i", i},
                  {"even", i % 2 == 0},
                  {"color", kColors[i % 3]},
                  {"tags", i % 5 == 0 ? json::array({"five", "x"}) : json::array({"x"})},
                  {"score", i * 0.5}};
    d.text = "document number " + std::to_string(i);
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<std::string> ids_of(const SearchResult& r) {
  std::vector<std::string> out;
  for (const auto& h : r.hits) out.push_back(h.id);
  return out;
}

TEST(Filter, ParsesMarqoSyntaxAndRejectsMalformedFilters) {
  EXPECT_EQ(index::parse_filter("").sql, "1");
  EXPECT_EQ(index::parse_filter("   ").sql, "1");
  for (const char* ok : {"a:b", "a:b AND c:d", "a:b OR NOT c:d", "(a:b OR c:d) AND e:[1 TO 2]",
                         "a:\"two words\"", "a:(two words)", "a IN (x, y, \"z z\")", "n:[* TO 5]",
                         "n:[-1.5 TO *]", "_id:doc1", "NOT NOT a:true"}) {
    EXPECT_NO_THROW(index::parse_filter(ok)) << ok;
  }
  for (const char* bad :
       {"a", "a:", ":b", "a:b AND", "a:b c:d", "(a:b", "a:b)", "a:[1 TO]", "a:[x TO 2]", "a:[1 2]",
        "a:\"open", "a IN x", "a IN (x", "_id:[1 TO 2]", "a:b and c:d", "AND a:b"}) {
    try {
      index::parse_filter(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("filter: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(index::parse_filter(std::string(200, '(') + "a:b" + std::string(200, ')')), Error);
}

TEST(Filter, MatchesTheDocumentsAPredicateSelects) {
  auto dir = test::temp_dir() + "/c";
  auto c = Collection::create(dir, settings(8));
  const int n = 60;
  for (auto& r : c->upsert(make_docs(n, 8, 1))) ASSERT_TRUE(r.ok) << r.error;
  struct Case {
    const char* filter;
    std::function<bool(int)> pred;
  };
  const std::vector<Case> cases = {
      {"color:red", [](int i) { return i % 3 == 0; }},
      {"even:true", [](int i) { return i % 2 == 0; }},
      {"even:false AND color:blue", [](int i) { return i % 2 == 1 && i % 3 == 2; }},
      {"tags:five", [](int i) { return i % 5 == 0; }},
      {"i:[10 TO 20]", [](int i) { return i >= 10 && i <= 20; }},
      {"score:[* TO 4.5]", [](int i) { return i * 0.5 <= 4.5; }},
      {"i:7", [](int i) { return i == 7; }},
      {"i IN (1, 2, 3) OR _id:doc40", [](int i) { return i == 1 || i == 2 || i == 3 || i == 40; }},
      {"NOT color:red AND NOT (tags:five OR i:[0 TO 30])",
       [](int i) { return i % 3 != 0 && !(i % 5 == 0 || i <= 30); }},
      {"color:\"red\" OR color:(green)", [](int i) { return i % 3 != 2; }},
      {"missing:field", [](int) { return false; }},
      {"color:Red", [](int) { return false; }},
  };
  for (const auto& cs : cases) {
    SearchQuery q;
    q.vector = random_vector(8, 99);
    q.filter = cs.filter;
    q.limit = n;
    auto r = c->search(q);
    std::set<std::string> got, want;
    for (const auto& h : r.hits) got.insert(h.id);
    for (int i = 0; i < n; ++i) {
      if (cs.pred(i)) want.insert("doc" + std::to_string(i));
    }
    EXPECT_EQ(got, want) << cs.filter;
    EXPECT_EQ(r.candidates, static_cast<int64_t>(want.size())) << cs.filter;
  }
  // remove_where uses the same filters.
  EXPECT_EQ(c->remove_where("color:red"), 20);
  EXPECT_EQ(c->stats().documents, 40);
  EXPECT_THROW(c->remove_where(""), Error);
}

TEST(Fusion, ReciprocalRankFusionHandChecked) {
  // vector ranks A=1 B=2 C=3; lexical ranks C=1 A=2 D=3; k = 60:
  // A = 1/61 + 1/62 = 0.0325225, C = 1/63 + 1/61 = 0.0322664, B = 1/62, D = 1/63.
  index::Scored vec = {{1, 0.9f}, {2, 0.8f}, {3, 0.7f}}, lex = {{3, 5.f}, {1, 4.f}, {4, 1.f}};
  auto f = index::rrf_fuse({vec, lex}, 60);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].first, 1);
  EXPECT_EQ(f[1].first, 3);
  EXPECT_EQ(f[2].first, 2);
  EXPECT_EQ(f[3].first, 4);
  EXPECT_NEAR(f[0].second, 1.0 / 61 + 1.0 / 62, 1e-7);
  EXPECT_NEAR(f[1].second, 1.0 / 63 + 1.0 / 61, 1e-7);
  EXPECT_NEAR(f[2].second, 1.0 / 62, 1e-7);
  EXPECT_NEAR(f[3].second, 1.0 / 63, 1e-7);
  EXPECT_EQ(index::fts_query("a dog, \"OR\" NEAR(x)"),
            "\"a\" OR \"dog\" OR \"OR\" OR \"NEAR\" OR \"x\"");
  EXPECT_EQ(index::fts_query(" ,.; "), "");
}

TEST(Collection, HybridSearchFusesVectorAndLexicalRanksHandChecked) {
  auto c = Collection::create(test::temp_dir() + "/c", settings(4));
  // Cosines to the query e0: A 1.0 > B 0.8 > C 0.6 > D 0.4 (vector ranks 1..4).
  // BM25 for "apple": C (3 of 3 words) > A (2 of 3) > D (1 of 4); B has none.
  auto doc = [](const char* id, float x, const char* text) {
    DocumentInput d;
    d.id = id;
    d.vector = {x, std::sqrt(1 - x * x), 0, 0};
    d.text = text;
    return d;
  };
  for (auto& r : c->upsert({doc("A", 1.0f, "apple apple banana"), doc("B", 0.8f, "banana"),
                            doc("C", 0.6f, "apple apple apple"),
                            doc("D", 0.4f, "apple banana cherry date")})) {
    ASSERT_TRUE(r.ok) << r.error;
  }
  SearchQuery q;
  q.vector = {1, 0, 0, 0};
  q.text = "apple";
  q.method = SearchMethod::kLexical;
  EXPECT_EQ(ids_of(c->search(q)), (std::vector<std::string>{"C", "A", "D"}));
  q.method = SearchMethod::kVector;
  EXPECT_EQ(ids_of(c->search(q)), (std::vector<std::string>{"A", "B", "C", "D"}));
  // RRF (k=60): A 1/61+1/62, C 1/63+1/61, D 1/64+1/63, B 1/62.
  q.method = SearchMethod::kHybrid;
  auto r = c->search(q);
  EXPECT_EQ(ids_of(r), (std::vector<std::string>{"A", "C", "D", "B"}));
  EXPECT_NEAR(r.hits[2].score, 1.0 / 64 + 1.0 / 63, 1e-7);
  q.filter = "NOT _id:C";
  EXPECT_EQ(ids_of(c->search(q)), (std::vector<std::string>{"A", "D", "B"}));
}

TEST(Collection, ExactSearchEqualsBruteForceIdsAndScores) {
  const int dim = 24, n = 3000;
  auto c = Collection::create(test::temp_dir() + "/c", settings(dim));
  auto docs = make_docs(n, dim, 7);
  std::vector<std::vector<float>> vecs;
  for (const auto& d : docs) vecs.push_back(d.vector);
  for (auto& r : c->upsert(docs)) ASSERT_TRUE(r.ok);
  for (int t = 0; t < 20; ++t) {
    SearchQuery q;
    q.vector = random_vector(dim, 5000 + t);
    q.limit = 10;
    q.offset = t % 3;
    q.exact = true;
    if (t % 2) q.filter = "color:green OR i:[0 TO 100]";
    auto pred = [&](int i) { return !(t % 2) || i % 3 == 1 || i <= 100; };
    auto want = reference_topk(vecs, q.vector, q.limit + q.offset, pred);
    auto r = c->search(q);
    ASSERT_EQ(r.hits.size(), 10u);
    EXPECT_TRUE(r.exact);
    for (size_t k = 0; k < r.hits.size(); ++k) {
      EXPECT_EQ(r.hits[k].id, "doc" + std::to_string(want[k + q.offset].first));
      EXPECT_EQ(r.hits[k].score, want[k + q.offset].second);  // bit-exact: same formula
    }
  }
}

TEST(Index, FastDotAgreesWithTheExactDotOnEveryLength) {
  // The graph's distance kernel (AVX-512 / AVX2 / scalar, whichever this CPU runs) against
  // the double-accumulated reference, for lengths around every vector-width boundary.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int n : {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 512, 513, 768}) {
    std::vector<float> a(n), b(n);
    for (int i = 0; i < n; ++i) a[i] = u(rng), b[i] = u(rng);
    double mag = 0;
    for (int i = 0; i < n; ++i) mag += std::abs(double(a[i]) * b[i]);
    const float want = index::dot_exact(a.data(), b.data(), n);
    EXPECT_NEAR(index::dot_fast(a.data(), b.data(), n), want, 1e-6 * mag + 1e-7)
        << "n=" << n << " isa=" << index::dot_fast_isa();
    const size_t len = n;
    EXPECT_NEAR(index::ip_distance()(a.data(), b.data(), &len), 1.0f - want, 1e-6 * mag + 1e-6)
        << "n=" << n;
  }
}

TEST(Index, CompressedCodeKernelsAgreeWithTheirReferences) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int n : {1, 5, 16, 31, 32, 33, 64, 100, 512, 515}) {
    std::vector<float> a(n), b(n);
    for (int i = 0; i < n; ++i) a[i] = u(rng), b[i] = u(rng);
    const size_t len = n;
    std::vector<uint8_t> ha(index::fp16_code_bytes(len)), hb(ha.size());
    index::encode_fp16(a.data(), len, ha.data());
    index::encode_fp16(b.data(), len, hb.data());
    const double hf = index::fp16_dot_reference(ha.data(), hb.data(), len);
    EXPECT_NEAR(1.0 - index::fp16_distance()(ha.data(), hb.data(), &len), hf, 1e-5 * n) << n;
    EXPECT_NEAR(hf, index::dot_exact(a.data(), b.data(), n), 2e-3 * std::sqrt(n)) << n;
    std::vector<uint8_t> qa(index::int8_code_bytes(len)), qb(qa.size());
    index::encode_int8(a.data(), len, qa.data());
    index::encode_int8(b.data(), len, qb.data());
    const double qf = index::int8_dot_reference(qa.data(), qb.data(), len);
    EXPECT_NEAR(1.0 - index::int8_distance()(qa.data(), qb.data(), &len), qf, 1e-5 * n) << n;
    EXPECT_NEAR(qf, index::dot_exact(a.data(), b.data(), n), 2e-2 * std::sqrt(n)) << n;
  }
}

TEST(Collection, CompressedVectorsReRankToExactScoresAndKeepRecall) {
  const int dim = 64, n = 6000;
  auto docs = make_docs(n, dim, 21);
  std::vector<std::vector<float>> vecs;
  for (const auto& d : docs) vecs.push_back(d.vector);
  for (const char* storage : {"fp16", "int8"}) {
    const std::string dir = test::temp_dir() + "/c_" + storage;
    auto s = settings(dim);
    s.flat_threshold = 100;  // force the graph path
    s.vector_storage = storage;
    {
      auto c = Collection::create(dir, s);
      for (auto& r : c->upsert(docs)) ASSERT_TRUE(r.ok);
      c->snapshot();
    }
    auto c = Collection::open(dir);  // the compressed snapshot loads back
    EXPECT_EQ(c->stats().documents, n);
    int found = 0, total = 0;
    for (int t = 0; t < 40; ++t) {
      SearchQuery q;
      q.vector = random_vector(dim, 7000 + t);
      q.limit = 10;
      if (t % 4 == 3) q.filter = "NOT i:[0 TO 99]";  // the filtered graph path re-ranks too
      auto r = c->search(q);
      EXPECT_FALSE(r.exact) << storage;
      auto pred = [&](int i) { return t % 4 != 3 || i > 99; };
      auto want = reference_topk(vecs, q.vector, 10, pred);
      std::set<std::string> w;
      for (auto& [i, sc] : want) w.insert("doc" + std::to_string(i));
      ASSERT_EQ(r.hits.size(), 10u);
      for (size_t k = 0; k < r.hits.size(); ++k) {
        found += w.count(r.hits[k].id);
        // Re-ranked: exact fp32 cosines, in order.
        const int i = std::stoi(r.hits[k].id.substr(3));
        EXPECT_EQ(r.hits[k].score, test::reference_cosine(vecs[i], q.vector)) << storage;
        if (k) {
          EXPECT_GE(r.hits[k - 1].score, r.hits[k].score);
        }
      }
      total += 10;
      // The exact path scans SQLite's fp32 vectors: equal to brute force bit for bit.
      q.exact = true;
      auto e = c->search(q);
      ASSERT_EQ(e.hits.size(), 10u);
      for (size_t k = 0; k < 10; ++k) {
        EXPECT_EQ(e.hits[k].id, "doc" + std::to_string(want[k].first)) << storage;
        EXPECT_EQ(e.hits[k].score, want[k].second) << storage;
      }
    }
    EXPECT_GE(found, total * 9 / 10) << storage << " recall@10 " << double(found) / total;
  }
  auto bad = settings(dim);
  bad.vector_storage = "fp8";
  EXPECT_THROW(Collection::create(test::temp_dir() + "/bad", bad), Error);
}

TEST(Collection, HnswRecallAndSelectiveFiltersStillFillTheLimit) {
  const int dim = 32, n = 6000;
  auto s = settings(dim);
  s.flat_threshold = 100;  // force the graph path
  auto c = Collection::create(test::temp_dir() + "/c", s);
  auto docs = make_docs(n, dim, 3);
  std::vector<std::vector<float>> vecs;
  for (const auto& d : docs) vecs.push_back(d.vector);
  for (auto& r : c->upsert(docs)) ASSERT_TRUE(r.ok);
  int found = 0, total = 0;
  for (int t = 0; t < 50; ++t) {
    SearchQuery q;
    q.vector = random_vector(dim, 9000 + t);
    q.limit = 10;
    auto r = c->search(q);
    EXPECT_FALSE(r.exact);
    auto want = reference_topk(vecs, q.vector, 10, [](int) { return true; });
    std::set<std::string> w;
    for (auto& [i, sc] : want) w.insert("doc" + std::to_string(i));
    for (auto& h : r.hits) found += w.count(h.id);
    total += 10;
    // Scores are exact cosines even on the approximate path.
    for (auto& h : r.hits) {
      const int i = std::stoi(h.id.substr(3));
      EXPECT_EQ(h.score, test::reference_cosine(vecs[i], q.vector));
    }
  }
  EXPECT_GE(found, total * 9 / 10) << "recall@10 " << double(found) / total;
  {  // ids only: the same hits and scores, no text or metadata read
    SearchQuery q;
    q.vector = random_vector(dim, 77);
    q.limit = 7;
    q.offset = 3;
    auto full = c->search(q);
    q.with_metadata = false;
    auto ids = c->search(q);
    ASSERT_EQ(ids.hits.size(), full.hits.size());
    for (size_t k = 0; k < ids.hits.size(); ++k) {
      EXPECT_EQ(ids.hits[k].id, full.hits[k].id);
      EXPECT_EQ(ids.hits[k].score, full.hits[k].score);
      EXPECT_TRUE(ids.hits[k].metadata.empty());
      EXPECT_FALSE(full.hits[k].metadata.empty());
    }
  }
  // Filters of every selectivity: as many hits as match, up to the limit, all matching.
  for (const char* f :
       {"i:[0 TO 3]", "i:[0 TO 200]", "tags:five", "color:red", "even:true", "NOT i:5"}) {
    SearchQuery q;
    q.vector = random_vector(dim, 42);
    q.filter = f;
    q.limit = 10;
    auto r = c->search(q);
    const size_t want = std::min<int64_t>(10, r.candidates);
    EXPECT_EQ(r.hits.size(), want) << f;
    SearchQuery qe = q;
    qe.exact = true;
    auto e = c->search(qe);
    std::set<std::string> allowed;
    for (auto& h : c->search([&] {
                      SearchQuery all = q;
                      all.limit = n;
                      all.exact = true;
                      return all;
                    }())
                       .hits) {
      allowed.insert(h.id);
    }
    for (auto& h : r.hits) EXPECT_TRUE(allowed.count(h.id)) << f << " " << h.id;
    EXPECT_EQ(e.hits.size(), want);
  }
}

TEST(Collection, UpsertReplacesGetRemoveAndHashes) {
  auto c = Collection::create(test::temp_dir() + "/c", settings(4));
  DocumentInput d;
  d.id = "a";
  d.vector = {1, 0, 0, 0};
  d.text = "first";
  d.metadata = {{"k", "v"}};
  d.content_hash = "h1";
  auto r = c->upsert({d});
  ASSERT_TRUE(r[0].ok);
  EXPECT_FALSE(r[0].replaced);
  EXPECT_TRUE(c->has_hash("a", "h1"));
  EXPECT_FALSE(c->has_hash("a", "h2"));
  d.vector = {0, 2, 0, 0};
  d.text = "second";
  d.content_hash = "h2";
  r = c->upsert({d});
  ASSERT_TRUE(r[0].ok);
  EXPECT_TRUE(r[0].replaced);
  auto got = c->get("a");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got->text, "second");
  EXPECT_EQ(got->vector, (std::vector<float>{0, 2, 0, 0}));  // stored as given
  EXPECT_EQ(got->metadata, json({{"k", "v"}}));
  EXPECT_EQ(c->stats().documents, 1);
  SearchQuery q;
  q.vector = {0, 1, 0, 0};
  auto s = c->search(q);
  ASSERT_EQ(s.hits.size(), 1u);
  EXPECT_FLOAT_EQ(s.hits[0].score, 1.0f);
  q.method = SearchMethod::kLexical;
  q.text = "first";
  EXPECT_TRUE(c->search(q).hits.empty());  // the old text is no longer indexed
  q.text = "second";
  EXPECT_EQ(c->search(q).hits.size(), 1u);
  // Generated ids.
  DocumentInput anon;
  anon.vector = {0, 0, 1, 0};
  r = c->upsert({anon});
  ASSERT_TRUE(r[0].ok);
  EXPECT_EQ(r[0].id.size(), 32u);
  EXPECT_TRUE(c->get(r[0].id));
  EXPECT_EQ(c->remove({"a", "nope", "a"}), 1);
  EXPECT_FALSE(c->get("a"));
  EXPECT_EQ(c->stats().documents, 1);
  EXPECT_EQ(c->stats().ann_elements, 1);
}

TEST(Collection, BadDocumentsAreRejectedAloneAndNothingElseIsLost) {
  auto c = Collection::create(test::temp_dir() + "/c", settings(4));
  auto good = [](const std::string& id) {
    DocumentInput d;
    d.id = id;
    d.vector = {1, 2, 3, 4};
    return d;
  };
  std::vector<DocumentInput> batch;
  batch.push_back(good("ok1"));
  auto wrong_dim = good("dim");
  wrong_dim.vector = {1, 2, 3};
  batch.push_back(wrong_dim);
  auto nan = good("nan");
  nan.vector[2] = std::nanf("");
  batch.push_back(nan);
  auto zero = good("zero");
  zero.vector = {0, 0, 0, 0};
  batch.push_back(zero);
  batch.push_back(good("dup"));
  batch.push_back(good("dup"));
  auto bad_utf8 = good("utf8");
  bad_utf8.text = std::string("caf\xc3", 4);
  batch.push_back(bad_utf8);
  auto nested = good("nested");
  nested.metadata = {{"o", {{"x", 1}}}};
  batch.push_back(nested);
  auto mixed = good("mixed");
  mixed.metadata = {{"a", json::array({"x", 1})}};
  batch.push_back(mixed);
  auto reserved = good("reserved");
  reserved.metadata = {{"_score", 1}};
  batch.push_back(reserved);
  batch.push_back(good("ok2"));
  auto r = c->upsert(batch);
  ASSERT_EQ(r.size(), batch.size());
  EXPECT_TRUE(r[0].ok);
  EXPECT_TRUE(r.back().ok);
  for (size_t i = 1; i + 1 < r.size(); ++i) {
    EXPECT_FALSE(r[i].ok) << r[i].id;
    EXPECT_FALSE(r[i].error.empty());
    EXPECT_FALSE(c->get(r[i].id)) << r[i].id;
  }
  EXPECT_NE(r[1].error.find("dimension"), std::string::npos) << r[1].error;
  EXPECT_NE(r[2].error.find("vector[2]"), std::string::npos) << r[2].error;
  EXPECT_NE(r[4].error.find("duplicate"), std::string::npos) << r[4].error;
  EXPECT_NE(r[6].error.find("UTF-8"), std::string::npos) << r[6].error;
  EXPECT_EQ(c->stats().documents, 2);
  // Bad queries.
  SearchQuery q;
  q.vector = {1, 2, 3};
  EXPECT_THROW(c->search(q), Error);
  q.vector = {1, 2, 3, std::nanf("")};
  EXPECT_THROW(c->search(q), Error);
  q.vector = {1, 2, 3, 4};
  q.filter = "a:";
  EXPECT_THROW(c->search(q), Error);
  q.filter = "";
  q.limit = -1;
  EXPECT_THROW(c->search(q), Error);
  q.limit = 20000;
  EXPECT_THROW(c->search(q), Error);
  q.limit = 10;
  q.method = SearchMethod::kLexical;
  q.text = "  ";
  EXPECT_THROW(c->search(q), Error);
}

TEST(Collection, ReopenLoadsTheSnapshotCatchesUpOrRebuilds) {
  const int dim = 16;
  const auto dir = test::temp_dir() + "/c";
  const auto copy = test::temp_dir() + "/copy";
  std::vector<std::vector<float>> vecs;
  SearchQuery q;
  q.vector = random_vector(dim, 77);
  q.limit = 20;
  q.exact = true;
  std::vector<std::string> before;
  {
    auto c = Collection::create(dir, settings(dim));
    for (auto& r : c->upsert(make_docs(500, dim, 5))) ASSERT_TRUE(r.ok);
    c->snapshot();
    EXPECT_EQ(c->stats().snapshot_seq, c->stats().seq);
    for (auto& r : c->upsert(make_docs(300, dim, 6, 500))) ASSERT_TRUE(r.ok);
    const int64_t snap = c->stats().snapshot_seq;
    c->snapshot(301);  // only 300 changed: not yet
    EXPECT_EQ(c->stats().snapshot_seq, snap);
    EXPECT_EQ(c->remove({"doc1", "doc2", "doc600"}), 3);
    before = ids_of(c->search(q));
    // A copy taken now looks like a crash: a snapshot older than SQLite.
    fs::copy(dir, copy, fs::copy_options::recursive);
    fs::remove(copy + "/LOCK");
    // The same process cannot open it twice.
    EXPECT_THROW(Collection::open(dir), Error);
  }
  {
    auto c = Collection::open(copy);
    auto st = c->stats();
    EXPECT_FALSE(st.rebuilt);
    EXPECT_EQ(st.caught_up, 299 + 2);  // doc600 came and went after the snapshot
    EXPECT_EQ(st.documents, 797);
    EXPECT_EQ(st.ann_elements, 797);
    EXPECT_EQ(ids_of(c->search(q)), before);
  }
  {
    auto c = Collection::open(dir);  // closed cleanly: current snapshot
    EXPECT_EQ(c->stats().caught_up, 0);
    EXPECT_FALSE(c->stats().rebuilt);
    EXPECT_EQ(ids_of(c->search(q)), before);
  }
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".hnsw") fs::remove(e.path());
  }
  {
    auto c = Collection::open(dir);
    EXPECT_TRUE(c->stats().rebuilt);
    EXPECT_EQ(c->stats().ann_elements, 797);
    EXPECT_EQ(ids_of(c->search(q)), before);
    auto hnsw = q;
    hnsw.exact = false;
    EXPECT_EQ(c->search(hnsw).hits.size(), 20u);
  }
  // A corrupt snapshot is ignored (rebuilt from SQLite), never trusted.
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".hnsw") fs::resize_file(e.path(), 100);
  }
  {
    auto c = Collection::open(dir);
    EXPECT_TRUE(c->stats().rebuilt);
    EXPECT_EQ(ids_of(c->search(q)), before);
  }
}

TEST(Collection, BoundToItsModel) {
  const auto dir = test::temp_dir() + "/c";
  Collection::create(dir, settings(8)).reset();
  auto other = settings(8);
  other.model_id = "another-model";
  try {
    Collection::open(dir, &other);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("test-model"), std::string::npos);
  }
  auto wrong_dim = settings(16);
  EXPECT_THROW(Collection::open(dir, &wrong_dim), Error);
  EXPECT_THROW(Collection::create(dir, settings(8)), Error);
  EXPECT_THROW(Collection::open(test::temp_dir() + "/none"), Error);
  EXPECT_NO_THROW(Collection::open_or_create(dir, settings(8)));
}

}  // namespace
}  // namespace clipserve

// Collection vector-search benchmark (driven by bench/ann_bench.py): builds a collection from
// base.npy, then recall@10 and queries/s per efSearch on 1 and 2 threads for the in-
// distribution and cross-modal query sets, build time, reopen time, bytes per vector, peak RSS.
// Prints one JSON object (the same shape as ann_bench.py's peers).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clipserve/collection.h"
#include "core/npy.h"

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string arg(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace clipserve;
  const std::string data = arg(argc, argv, "data", "/tmp/annbench");
  const std::string out = arg(argc, argv, "out", data + "/coll");
  std::vector<int> efs;
  {
    const std::string s = arg(argc, argv, "efs", "16,32,64,128,256");
    for (size_t p = 0; p < s.size();) {
      size_t e = s.find(',', p);
      if (e == std::string::npos) e = s.size();
      efs.push_back(std::stoi(s.substr(p, e - p)));
      p = e + 1;
    }
  }
  const auto base = read_npy(data + "/base.npy");
  const int64_t n = base.shape.at(0);
  const int dim = static_cast<int>(base.shape.at(1));
  std::filesystem::remove_all(out);
  CollectionSettings s;
  s.model_id = "bench";
  s.dim = dim;
  s.hnsw_m = std::stoi(arg(argc, argv, "m", "16"));
  s.hnsw_ef_construction = std::stoi(arg(argc, argv, "efc", "200"));
  nlohmann::json res = {{"engine", "clipserve"}, {"n", n}};
  const auto t0 = Clock::now();
  {
    auto c = Collection::create(out, s);
    const auto* v = reinterpret_cast<const float*>(base.bytes.data());
    for (int64_t i = 0; i < n; i += 5000) {
      std::vector<DocumentInput> batch;
      for (int64_t j = i; j < std::min(n, i + 5000); ++j) {
        DocumentInput d;
        d.id = std::to_string(j);
        d.vector.assign(v + j * dim, v + (j + 1) * dim);
        batch.push_back(std::move(d));
      }
      for (const auto& r : c->upsert(std::move(batch))) {
        if (!r.ok) {
          std::fprintf(stderr, "upsert failed: %s\n", r.error.c_str());
          return 1;
        }
      }
    }
    res["build_s"] = secs(t0);
    const auto ts = Clock::now();
    c->snapshot();
    res["snapshot_s"] = secs(ts);
  }
  const auto to = Clock::now();
  auto c = Collection::open(out);
  res["reopen_s"] = secs(to);
  const auto st = c->stats();
  res["bytes_per_vector"] =
      static_cast<double>(st.db_bytes + st.ann_bytes) / static_cast<double>(n);
  res["db_bytes"] = st.db_bytes;
  res["ann_bytes"] = st.ann_bytes;
  res["results"] = nlohmann::json::array();
  for (const char* qs : {"in", "cross"}) {
    const auto qa = read_npy(data + "/q_" + qs + ".npy");
    const auto gt = read_npy(data + "/gt_" + qs + ".npy").to_i64();
    const int64_t nq = qa.shape.at(0);
    const auto* q = reinterpret_cast<const float*>(qa.bytes.data());
    for (int ef : efs) {
      c->set_ef_search(ef);
      for (int threads : {1, 2}) {
        std::vector<std::vector<std::string>> found(static_cast<size_t>(nq));
        const auto tq = Clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([&, t] {
            for (int64_t i = t; i < nq; i += threads) {
              SearchQuery sq;
              sq.vector.assign(q + i * dim, q + (i + 1) * dim);
              sq.limit = 10;
              for (auto& h : c->search(sq).hits) found[static_cast<size_t>(i)].push_back(h.id);
            }
          });
        }
        for (auto& th : pool) th.join();
        const double dt = secs(tq);
        double rec = 0;
        for (int64_t i = 0; i < nq; ++i) {
          std::set<std::string> g;
          for (int k = 0; k < 10; ++k)
            g.insert(std::to_string(gt[static_cast<size_t>(i * 10 + k)]));
          int hit = 0;
          for (const auto& id : found[static_cast<size_t>(i)]) hit += g.count(id) ? 1 : 0;
          rec += hit / 10.0;
        }
        res["results"].push_back({{"queries", qs},
                                  {"ef", ef},
                                  {"threads", threads},
                                  {"recall", rec / static_cast<double>(nq)},
                                  {"qps", static_cast<double>(nq) / dt}});
      }
    }
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  res["peak_rss_mb"] = static_cast<double>(ru.ru_maxrss) / 1024.0;
  std::printf("%s\n", res.dump().c_str());
  return 0;
}

// Collection test helpers: deterministic random vectors and the brute-force reference search
// (plain loops, independent of src/index/) that exact search must equal.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <utility>
#include <vector>

namespace clipserve::test {

inline std::vector<float> random_vector(int dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(static_cast<size_t>(dim));
  for (auto& x : v) x = nd(rng);
  return v;
}

// Cosine as the collection defines it: both sides scaled by 1/||v|| (norm summed in double,
// rounded to float), then the dot product summed in double.
inline std::vector<float> reference_unit(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  const double inv = 1.0 / std::sqrt(s);
  std::vector<float> u(v.size());
  for (size_t i = 0; i < v.size(); ++i) u[i] = static_cast<float>(v[i] * inv);
  return u;
}
inline float reference_cosine(const std::vector<float>& a, const std::vector<float>& b) {
  const auto ua = reference_unit(a), ub = reference_unit(b);
  double s = 0;
  for (size_t i = 0; i < ua.size(); ++i) s += static_cast<double>(ua[i]) * ub[i];
  return static_cast<float>(s);
}

/// (index, cosine) of the k best rows that pass `keep`, by decreasing cosine, ties by index.
inline std::vector<std::pair<int, float>> reference_topk(
    const std::vector<std::vector<float>>& rows, const std::vector<float>& q, int k,
    const std::function<bool(int)>& keep) {
  std::vector<std::pair<int, float>> all;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (keep(static_cast<int>(i)))
      all.emplace_back(static_cast<int>(i), reference_cosine(rows[i], q));
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  if (static_cast<int>(all.size()) > k) all.resize(static_cast<size_t>(k));
  return all;
}

}  // namespace clipserve::test

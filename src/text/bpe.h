// CLIP's byte-level BPE (open_clip SimpleTokenizer.bpe) over the 49,408-token vocabulary, with a
// thread-safe cache of encoded words.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace clipserve::text {

class Bpe {
 public:
  static constexpr int32_t kVocabSize = 49408;
  static constexpr int32_t kNumMerges = 48894;

  /// Builds the tables from the text of bpe_simple_vocab_16e6.txt (already decompressed).
  explicit Bpe(std::string_view merges_text);
  /// The process-wide instance built from the embedded vocabulary (built once, thread-safe).
  static const Bpe& get();

  /// Appends the ids of one pre-token (its UTF-8 bytes) to `out`. Uses the cache.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  /// The same without the cache (the reference the cache is tested against).
  void encode_word_uncached(std::string_view word, std::vector<int32_t>& out) const;

  /// The token string of an id (byte symbols as GPT-2's byte-to-unicode characters).
  const std::string& token(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::array<int32_t, 256> byte_id_{};  // id of each byte's symbol; + 256 with "</w>"
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::string> tokens_;

  struct CacheShard {
    mutable std::shared_mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
    size_t bytes = 0;  // approximate memory held by `map`
  };
  static constexpr size_t kCacheShards = 32;
  // Bounded memory: a shard that grows past kMaxShardBytes starts over (32 MiB in all).
  static constexpr size_t kMaxShardBytes = size_t{1} << 20;
  static constexpr size_t kMaxCachedWordBytes = 1024;
  mutable std::unique_ptr<CacheShard[]> cache_;
};

/// Decompresses a gzip stream; throws Error(kInvalidArgument) when it is corrupt.
std::string gunzip(std::string_view gz);

}  // namespace clipserve::text

// ftfy's data shared by its parts (ftfy.cpp, ftfy_badness.cpp): the single-byte code pages it
// tries and the character categories of its badness heuristic (built once, from ICU).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace clipserve::text::ftfy_detail {

// ---------------------------------------------------------------------------------------------
// Single-byte encodings ftfy tries, in its order. "Sloppy" variants decode the bytes a code page
// leaves undefined as the Latin-1 character of the same number, and byte 0x1A as U+FFFD.

enum CodecId {
  kLatin1,
  kSloppy1252,
  kSloppy1251,
  kSloppy1250,
  kSloppy1253,
  kSloppy1254,
  kSloppy1257,
  kIso8859_2,
  kMacRoman,
  kCp437,
  kNumCodecs
};

struct ByteCodec {
  std::array<char32_t, 256> decode{};
  std::array<bool, 256> defined{};  // false where the strict code page has no character
  std::unordered_map<char32_t, uint8_t> encode;  // characters >= 0x80 (and U+FFFD when sloppy)
  bool sloppy = false;

  bool can_encode(char32_t c) const {
    if (c < 0x80) return !(sloppy && c == 0x1A);
    return encode.count(c) != 0;
  }
};

// ---------------------------------------------------------------------------------------------
// Character categories of ftfy's badness heuristic (ftfy/badness.py MOJIBAKE_CATEGORIES) and the
// UTF-8 clue classes of chardata.py (derived here from the code pages instead of listed).

enum Category : uint32_t {
  kCommon = 1u << 0,
  kC1 = 1u << 1,
  kBad = 1u << 2,
  kLaw = 1u << 3,
  kCurrency = 1u << 4,
  kStartPunct = 1u << 5,
  kEndPunct = 1u << 6,
  kNumeric = 1u << 7,
  kKaomoji = 1u << 8,
  kUpperAccented = 1u << 9,
  kLowerAccented = 1u << 10,
  kUpperCommon = 1u << 11,
  kLowerCommon = 1u << 12,
  kBox = 1u << 13,
  kUtf8First2 = 1u << 14,
  kUtf8First3 = 1u << 15,
  kUtf8First4 = 1u << 16,
  kUtf8Cont = 1u << 17,
  kUtf8ContStrict = 1u << 18,
};

constexpr char32_t kCategoryTableSize = 0x2600;

struct FtfyData {
  std::array<ByteCodec, kNumCodecs> codecs;
  std::vector<uint32_t> categories;  // for code points < kCategoryTableSize
  std::array<std::u32string, 0xFFF0 - 0xFF01> width_map;

  std::unordered_map<char32_t, uint32_t> high_categories;  // members >= kCategoryTableSize
  char32_t high_min = 0x110000, high_max = 0;

  uint32_t category(char32_t c) const {
    if (c < kCategoryTableSize) return categories[c];
    if (c < high_min || c > high_max) return 0;
    auto it = high_categories.find(c);
    return it == high_categories.end() ? 0 : it->second;
  }
};

/// Built on first use (thread-safe), never freed.
const FtfyData& data();

}  // namespace clipserve::text::ftfy_detail

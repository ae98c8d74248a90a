// Content digests: the lowercase hex sha256 that caches and collections key their entries by.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace clipserve {

/// Lowercase hex of `bytes` (two characters per byte), e.g. a digest.
std::string to_hex(std::span<const uint8_t> bytes);

/// Lowercase hex SHA-256 of `data` (64 characters).
std::string sha256_hex(std::span<const uint8_t> data);
inline std::string sha256_hex(std::string_view s) {
  return sha256_hex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

}  // namespace clipserve

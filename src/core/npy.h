// NumPy .npy files (version 1/2, little-endian, C order): read any of <f4 <f8 <i4 <i8 |u1,
// write <f4 / <i8. Used by the CLI contract (preprocessed tensors, embeddings) and tests.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace clipserve {

struct NpyArray {
  std::string dtype;           ///< numpy descr, e.g. "<f4"
  std::vector<int64_t> shape;  ///< empty for a scalar
  std::vector<uint8_t> bytes;  ///< raw little-endian data, C order

  int64_t numel() const;
  /// Elements converted to float (any supported dtype).
  std::vector<float> to_f32() const;
  std::vector<int64_t> to_i64() const;
};

/// Parses .npy bytes; throws Error(kInvalidArgument) naming `name` on malformed input.
NpyArray parse_npy(std::span<const uint8_t> data, const std::string& name);
NpyArray read_npy(const std::string& path);
/// The version-1 header of a C-order <f4 array, padded with spaces to a multiple of 64 bytes
/// and to at least `total` bytes (a fixed-size header lets an appender rewrite the shape in
/// place as rows are added).
std::string npy_header_f32(const std::vector<int64_t>& shape, size_t total = 0);
std::vector<uint8_t> encode_npy_f32(std::span<const float> data, const std::vector<int64_t>& shape);
void write_npy_f32(const std::string& path, std::span<const float> data,
                   const std::vector<int64_t>& shape);

}  // namespace clipserve

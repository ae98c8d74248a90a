// safetensors files: a validating, memory-mapped reader (zero-copy float32 views, F16/BF16
// converted to float32) and a float32 writer. Format: 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data section; offsets are relative to the data section.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "model/weights.h"

namespace clipserve {

/// Every dtype the safetensors format defines (clipserve loads only the float ones).
enum class StDType {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64
};
const char* st_dtype_name(StDType d);
size_t st_dtype_size(StDType d);

struct SafetensorsTensorInfo {
  std::string name;
  StDType dtype = StDType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  ///< byte offsets relative to the data section
  uint64_t end = 0;
  int64_t numel() const;
};

/// The parsed header of a safetensors file.
struct SafetensorsHeader {
  std::vector<SafetensorsTensorInfo> tensors;  ///< in data order (by begin offset)
  std::vector<std::pair<std::string, std::string>> metadata;
  uint64_t data_offset = 0;  ///< where the data section starts in the file (8 + N)
};

/// Largest header accepted (the reference implementation's limit).
constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

/// Parses and validates the header of a whole file given as bytes: header length, JSON,
/// dtypes, shapes, offsets inside the data section, no overlaps, shape x dtype = byte
/// length. Throws Error(kInvalidArgument) naming `source` and the tensor.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file,
                                           const std::string& source);

/// An open, validated safetensors file (memory-mapped).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::vector<SafetensorsTensorInfo>& tensors() const { return header_.tensors; }
  /// Raw bytes of one tensor (inside the mapping).
  std::span<const uint8_t> raw(const SafetensorsTensorInfo& t) const;
  /// All F32/F16/BF16 tensors as float32: aligned F32 as zero-copy views (the map keeps the
  /// mapping alive), others converted into owned buffers. Tensors of other dtypes (e.g. an
  /// int64 `position_ids` buffer) are skipped; `skipped` receives their names if given.
  WeightMap to_weight_map(std::vector<std::string>* skipped = nullptr) const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

/// Converts the float tensors of safetensors bytes (already validated) into a WeightMap with
/// owned buffers; used by the fuzzer and tests that work on memory.
WeightMap safetensors_to_weight_map(std::span<const uint8_t> file, const SafetensorsHeader& header,
                                    const std::string& source);

/// Convenience: SafetensorsFile(path).to_weight_map().
WeightMap load_safetensors(const std::string& path);

/// One float32 tensor to write.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

/// Serializes the header exactly as the reference `safetensors` library does: compact JSON,
/// `__metadata__` first (if any), tensors in the given order with contiguous offsets, padded
/// with spaces so the data section starts at a multiple of 8.
std::string safetensors_header_json(const std::vector<TensorToWrite>& tensors,
                                    const std::vector<std::pair<std::string, std::string>>& meta);
/// Writes an F32 safetensors file atomically (temporary file + rename); the data is streamed,
/// never copied into one buffer.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});
/// Writes every tensor of `weights` in the given name order (all names must exist).
void write_safetensors(const std::string& path, const WeightMap& weights,
                       const std::vector<std::string>& order,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});

/// float16 / bfloat16 bit patterns to float32 (exact).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);

}  // namespace clipserve

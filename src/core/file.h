// Reading files: a read-only memory map (zero-copy weights and images) and whole-file reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace clipserve {

/// A read-only private mapping of a whole file. Move-only; unmaps on destruction.
/// Throws Error(kNotFound / kIo) naming the path.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

/// Reads a whole file; throws Error naming the path.
std::vector<uint8_t> read_file_bytes(const std::string& path);
std::string read_file_text(const std::string& path);
/// Writes atomically: to a unique `path.tmp.<pid>.<n>`, then rename over `path`.
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace clipserve

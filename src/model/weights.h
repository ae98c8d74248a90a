// WeightMap: the one internal layout of model weights, float32 tensors under open_clip's
// state-dict names, whatever file format they came from (safetensors, HF transformers, torch
// zip). Tensors are either views into a mapped file (zero-copy) or owned (converted).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace clipserve {

enum class DType { kF32, kF16, kBF16 };
const char* dtype_name(DType d);
size_t dtype_size(DType d);
/// "[768, 3, 32, 32]", for error messages.
std::string shape_str(const std::vector<int64_t>& shape);

struct WeightTensor {
  std::vector<int64_t> shape;
  const float* data = nullptr;  ///< points into `owned` or into a mapped file
  std::vector<float> owned;     ///< empty for zero-copy views
  int64_t numel() const;
};

class WeightMap {
 public:
  /// `source` names the file(s) in error messages.
  explicit WeightMap(std::string source = "<memory>") : source_(std::move(source)) {}
  // Views point into owned buffers and mappings: moving keeps them valid, copying would not.
  WeightMap(const WeightMap&) = delete;
  WeightMap& operator=(const WeightMap&) = delete;
  WeightMap(WeightMap&&) = default;
  WeightMap& operator=(WeightMap&&) = default;

  /// Returns the tensor's data; throws Error(kInvalidArgument) naming the source and the
  /// tensor when it is missing or its shape differs from `expected`.
  const float* get(const std::string& name, const std::vector<int64_t>& expected) const;
  const WeightTensor& at(const std::string& name) const;  ///< throws when missing
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  std::vector<std::string> names() const;
  size_t size() const { return tensors_.size(); }
  const std::string& source() const { return source_; }
  void set_source(std::string source) { source_ = std::move(source); }

  void add_owned(const std::string& name, std::vector<int64_t> shape, std::vector<float> data);
  /// `data` must stay valid as long as this map: pass the owner as `keepalive`.
  void add_view(const std::string& name, std::vector<int64_t> shape, const float* data);
  void keep_alive(std::shared_ptr<const void> owner) { keepalive_.push_back(std::move(owner)); }
  /// Removes a tensor (used when renaming during format conversion).
  void erase(const std::string& name) { tensors_.erase(name); }

 private:
  std::string source_;
  std::map<std::string, WeightTensor> tensors_;
  std::vector<std::shared_ptr<const void>> keepalive_;
};

}  // namespace clipserve

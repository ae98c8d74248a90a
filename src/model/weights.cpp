// WeightMap lookups with shape checks and errors naming file and tensor.
#include "model/weights.h"

#include "core/check.h"

namespace clipserve {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

size_t dtype_size(DType d) { return d == DType::kF32 ? 4 : 2; }

int64_t WeightTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

const WeightTensor& WeightMap::at(const std::string& name) const {
  auto it = tensors_.find(name);
  CS_CHECK_ARG(it != tensors_.end(), source_, ": tensor '", name, "' is missing");
  return it->second;
}

const float* WeightMap::get(const std::string& name, const std::vector<int64_t>& expected) const {
  const WeightTensor& t = at(name);
  CS_CHECK_ARG(t.shape == expected, source_, ": tensor '", name, "' has shape ", shape_str(t.shape),
               ", expected ", shape_str(expected));
  return t.data;
}

std::vector<std::string> WeightMap::names() const {
  std::vector<std::string> r;
  r.reserve(tensors_.size());
  for (const auto& kv : tensors_) r.push_back(kv.first);
  return r;
}

void WeightMap::add_owned(const std::string& name, std::vector<int64_t> shape,
                          std::vector<float> data) {
  WeightTensor t;
  t.shape = std::move(shape);
  t.owned = std::move(data);
  CS_ASSERT(static_cast<int64_t>(t.owned.size()) == t.numel(), name);
  t.data = t.owned.data();
  tensors_[name] = std::move(t);
  // std::map nodes are stable, but the moved vector's buffer is too; re-point to be explicit.
  tensors_[name].data = tensors_[name].owned.data();
}

void WeightMap::add_view(const std::string& name, std::vector<int64_t> shape, const float* data) {
  WeightTensor t;
  t.shape = std::move(shape);
  t.data = data;
  tensors_[name] = std::move(t);
}

}  // namespace clipserve

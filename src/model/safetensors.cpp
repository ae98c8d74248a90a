// safetensors reader (validating, memory-mapped) and float32 writer.
#include "model/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/check.h"
#include "model/weights.h"

namespace clipserve {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; clipserve maps it directly");

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

struct DTypeEntry {
  const char* name;
  StDType dtype;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {"BOOL", StDType::kBool, 1},      {"U8", StDType::kU8, 1},          {"I8", StDType::kI8, 1},
    {"F8_E5M2", StDType::kF8E5M2, 1}, {"F8_E4M3", StDType::kF8E4M3, 1}, {"I16", StDType::kI16, 2},
    {"U16", StDType::kU16, 2},        {"F16", StDType::kF16, 2},        {"BF16", StDType::kBF16, 2},
    {"I32", StDType::kI32, 4},        {"U32", StDType::kU32, 4},        {"F32", StDType::kF32, 4},
    {"F64", StDType::kF64, 8},        {"I64", StDType::kI64, 8},        {"U64", StDType::kU64, 8},
};

// Reads a non-negative integer that fits in int64 from a JSON value.
bool json_u63(const Json& v, uint64_t* out) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    uint64_t x = v.get<uint64_t>();
    if (x > uint64_t(INT64_MAX)) return false;
    *out = x;
    return true;
  }
  int64_t x = v.get<int64_t>();
  if (x < 0) return false;
  *out = static_cast<uint64_t>(x);
  return true;
}

Json parse_header_json(std::string_view text, const std::string& source) {
  // Duplicate keys would make "which tensor is it" ambiguous: refuse them. Depth is bounded
  // because a valid header is at most 3 levels deep.
  std::vector<std::set<std::string>> keys;
  bool duplicate = false, too_deep = false;
  std::string dup_key;
  auto cb = [&](int depth, Json::parse_event_t ev, Json& parsed) {
    if (depth > 4) too_deep = true;
    if (ev == Json::parse_event_t::object_start) keys.emplace_back();
    if (ev == Json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (ev == Json::parse_event_t::key && !keys.empty() && parsed.is_string()) {
      if (!keys.back().insert(parsed.get<std::string>()).second && !duplicate) {
        duplicate = true;
        dup_key = parsed.get<std::string>();
      }
    }
    return !too_deep;
  };
  Json j;
  try {
    j = Json::parse(text.begin(), text.end(), cb);
  } catch (const Json::exception& e) {
    CS_THROW(kInvalidArgument, source, ": safetensors header is not valid JSON: ", e.what());
  }
  CS_CHECK_ARG(!too_deep, source, ": safetensors header is nested too deeply");
  CS_CHECK_ARG(!duplicate, source, ": safetensors header has the key '", dup_key, "' twice");
  return j;
}

}  // namespace

const char* st_dtype_name(StDType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.name;
  return "?";
}

size_t st_dtype_size(StDType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.size;
  return 0;
}

int64_t SafetensorsTensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file,
                                           const std::string& source) {
  CS_CHECK_ARG(file.size() >= 8, source, ": not a safetensors file: ", file.size(),
               " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  CS_CHECK_ARG(n <= kMaxSafetensorsHeader, source, ": safetensors header length ", n,
               " is over the limit of ", kMaxSafetensorsHeader, " bytes (corrupt file?)");
  CS_CHECK_ARG(n <= file.size() - 8, source, ": file truncated: safetensors header length ", n,
               " but only ", file.size() - 8, " bytes follow");
  CS_CHECK_ARG(n >= 2 && file[8] == '{', source,
               ": safetensors header does not start with '{' (not a safetensors file?)");
  std::string_view text(reinterpret_cast<const char*>(file.data() + 8), n);
  Json j = parse_header_json(text, source);
  CS_CHECK_ARG(j.is_object(), source, ": safetensors header must be a JSON object");

  SafetensorsHeader h;
  h.data_offset = 8 + n;
  const uint64_t data_size = file.size() - h.data_offset;
  // nlohmann::json sorts keys; recover the header order from the offsets below instead.
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      CS_CHECK_ARG(v.is_object(), source, ": safetensors '__metadata__' must be an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        CS_CHECK_ARG(m.value().is_string(), source, ": safetensors '__metadata__' value of '",
                     m.key(), "' must be a string");
        h.metadata.emplace_back(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    CS_CHECK_ARG(!name.empty(), source, ": safetensors header has a tensor with an empty name");
    CS_CHECK_ARG(v.is_object(), source, ": tensor '", name, "': header entry must be an object");
    SafetensorsTensorInfo t;
    t.name = name;
    auto dt = v.find("dtype");
    CS_CHECK_ARG(dt != v.end() && dt->is_string(), source, ": tensor '", name,
                 "': missing or non-string 'dtype'");
    bool known = false;
    for (const auto& e : kDTypes) {
      if (*dt == e.name) {
        t.dtype = e.dtype;
        known = true;
      }
    }
    CS_CHECK_ARG(known, source, ": tensor '", name, "': unknown dtype ", dt->dump());
    auto sh = v.find("shape");
    CS_CHECK_ARG(sh != v.end() && sh->is_array() && sh->size() <= 8, source, ": tensor '", name,
                 "': 'shape' must be a list of at most 8 dimensions");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      uint64_t x = 0;
      CS_CHECK_ARG(json_u63(d, &x), source, ": tensor '", name,
                   "': shape dimensions must be non-negative integers, got ", sh->dump());
      t.shape.push_back(static_cast<int64_t>(x));
      if (x != 0 && numel > uint64_t(INT64_MAX) / x) overflow = true;
      numel *= x;
    }
    CS_CHECK_ARG(!overflow, source, ": tensor '", name, "': shape ", shape_str(t.shape),
                 " is too large");
    auto off = v.find("data_offsets");
    CS_CHECK_ARG(off != v.end() && off->is_array() && off->size() == 2 &&
                     json_u63((*off)[0], &t.begin) && json_u63((*off)[1], &t.end),
                 source, ": tensor '", name,
                 "': 'data_offsets' must be [begin, end] with non-negative integers");
    CS_CHECK_ARG(t.begin <= t.end, source, ": tensor '", name, "': data_offsets [", t.begin, ", ",
                 t.end, "] end before they begin");
    CS_CHECK_ARG(t.end <= data_size, source, ": tensor '", name, "': data_offsets [", t.begin, ", ",
                 t.end, "] reach past the end of the data section (", data_size,
                 " bytes; file truncated?)");
    size_t esize = st_dtype_size(t.dtype);
    CS_CHECK_ARG(numel <= uint64_t(INT64_MAX) / esize && numel * esize == t.end - t.begin, source,
                 ": tensor '", name, "': shape ", shape_str(t.shape), " x ", st_dtype_name(t.dtype),
                 " needs ", numel * esize, " bytes but data_offsets [", t.begin, ", ", t.end,
                 "] hold ", t.end - t.begin);
    h.tensors.push_back(std::move(t));
  }
  // Header order = data order for files written by the reference library; sort by offset
  // (ties by name, for empty tensors) and check that no two byte ranges overlap.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
  });
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const auto& prev = h.tensors[i - 1];
    const auto& cur = h.tensors[i];
    CS_CHECK_ARG(cur.begin >= prev.end || cur.begin == cur.end || prev.begin == prev.end, source,
                 ": tensor '", cur.name, "' (bytes ", cur.begin, "..", cur.end,
                 ") overlaps tensor '", prev.name, "' (bytes ", prev.begin, "..", prev.end, ")");
  }
  return h;
}

namespace {

void convert_to_f32(const SafetensorsTensorInfo& t, const uint8_t* src, float* dst) {
  int64_t n = t.numel();
  if (t.dtype == StDType::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
  } else if (t.dtype == StDType::kF16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = f16_to_f32(h);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = bf16_to_f32(h);
    }
  }
}

bool is_float_dtype(StDType d) {
  return d == StDType::kF32 || d == StDType::kF16 || d == StDType::kBF16;
}

}  // namespace

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal half: normalize
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | (uint32_t(112 - e) << 23) | ((mant & 0x3ff) << 13);
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

WeightMap safetensors_to_weight_map(std::span<const uint8_t> file, const SafetensorsHeader& header,
                                    const std::string& source) {
  WeightMap m(source);
  for (const auto& t : header.tensors) {
    if (!is_float_dtype(t.dtype)) continue;
    std::vector<float> data(static_cast<size_t>(t.numel()));
    convert_to_f32(t, file.data() + header.data_offset + t.begin, data.data());
    m.add_owned(t.name, t.shape, std::move(data));
  }
  return m;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : path_(path), file_(std::make_shared<MappedFile>(path)) {
  header_ = parse_safetensors_header(file_->bytes(), path);
}

std::span<const uint8_t> SafetensorsFile::raw(const SafetensorsTensorInfo& t) const {
  return {file_->data() + header_.data_offset + t.begin, t.end - t.begin};
}

WeightMap SafetensorsFile::to_weight_map(std::vector<std::string>* skipped) const {
  WeightMap m(path_);
  m.keep_alive(file_);
  for (const auto& t : header_.tensors) {
    if (!is_float_dtype(t.dtype)) {
      if (skipped != nullptr) skipped->push_back(t.name);
      continue;
    }
    const uint8_t* p = file_->data() + header_.data_offset + t.begin;
    if (t.dtype == StDType::kF32 && reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) {
      m.add_view(t.name, t.shape, reinterpret_cast<const float*>(p));
    } else {
      std::vector<float> data(static_cast<size_t>(t.numel()));
      convert_to_f32(t, p, data.data());
      m.add_owned(t.name, t.shape, std::move(data));
    }
  }
  return m;
}

WeightMap load_safetensors(const std::string& path) {
  return SafetensorsFile(path).to_weight_map();
}

std::string safetensors_header_json(const std::vector<TensorToWrite>& tensors,
                                    const std::vector<std::pair<std::string, std::string>>& meta) {
  OrderedJson j = OrderedJson::object();
  if (!meta.empty()) {
    OrderedJson m = OrderedJson::object();
    for (const auto& [k, v] : meta) m[k] = v;
    j["__metadata__"] = m;
  }
  uint64_t off = 0;
  for (const auto& t : tensors) {
    CS_CHECK_ARG(!t.name.empty() && t.name != "__metadata__", "invalid tensor name '", t.name, "'");
    CS_CHECK_ARG(!j.contains(t.name), "tensor '", t.name, "' is listed twice");
    uint64_t n = 1;
    for (auto d : t.shape) {
      CS_CHECK_ARG(d >= 0, "tensor '", t.name, "' has a negative dimension");
      n *= static_cast<uint64_t>(d);
    }
    OrderedJson e = OrderedJson::object();
    e["dtype"] = "F32";
    e["shape"] = t.shape;
    e["data_offsets"] = {off, off + 4 * n};
    j[t.name] = e;
    off += 4 * n;
  }
  std::string s = j.dump();
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

namespace {

class FdWriter {
 public:
  FdWriter(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) CS_THROW(kIo, path_, ": cannot create: ", std::strerror(errno));
  }
  ~FdWriter() {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, std::min<size_t>(size, 1 << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) CS_THROW(kIo, path_, ": write failed: ", std::strerror(errno));
      p += n;
      size -= static_cast<size_t>(n);
    }
  }
  void close() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) CS_THROW(kIo, path_, ": close failed: ", std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string header = safetensors_header_json(tensors, metadata);
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    FdWriter w(tmp);
    uint64_t n = header.size();
    w.write(&n, 8);
    w.write(header.data(), header.size());
    for (const auto& t : tensors) {
      int64_t numel = 1;
      for (auto d : t.shape) numel *= d;
      if (numel > 0) w.write(t.data, static_cast<size_t>(numel) * 4);
    }
    w.close();
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      CS_THROW(kIo, path, ": rename failed: ", std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

void write_safetensors(const std::string& path, const WeightMap& weights,
                       const std::vector<std::string>& order,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<TensorToWrite> ts;
  ts.reserve(order.size());
  for (const auto& name : order) {
    const WeightTensor& t = weights.at(name);
    ts.push_back({name, t.shape, t.data});
  }
  write_safetensors(path, ts, metadata);
}

}  // namespace clipserve

// .npy reader/writer (see npy.h).
#include "core/npy.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "core/file.h"

namespace clipserve {

namespace {

size_t dtype_size(const std::string& d) {
  if (d == "<f4" || d == "<i4" || d == "<u4") return 4;
  if (d == "<f8" || d == "<i8" || d == "<u8") return 8;
  if (d == "|u1" || d == "|i1" || d == "|b1") return 1;
  if (d == "<f2" || d == "<i2" || d == "<u2") return 2;
  return 0;
}

// Extracts the quoted value of 'key' from the header dict.
std::string header_field(const std::string& h, const std::string& key, const std::string& name) {
  auto k = h.find("'" + key + "'");
  CS_CHECK_ARG(k != std::string::npos, name, ": npy header has no '", key, "'");
  auto colon = h.find(':', k);
  CS_CHECK_ARG(colon != std::string::npos, name, ": bad npy header");
  size_t p = colon + 1;
  while (p < h.size() && h[p] == ' ') ++p;
  CS_CHECK_ARG(p < h.size(), name, ": bad npy header");
  if (h[p] == '\'') {
    auto e = h.find('\'', p + 1);
    CS_CHECK_ARG(e != std::string::npos, name, ": bad npy header");
    return h.substr(p + 1, e - p - 1);
  }
  if (h[p] == '(') {
    auto e = h.find(')', p);
    CS_CHECK_ARG(e != std::string::npos, name, ": bad npy header");
    return h.substr(p + 1, e - p - 1);
  }
  auto e = h.find_first_of(",}", p);
  CS_CHECK_ARG(e != std::string::npos, name, ": bad npy header");
  return h.substr(p, e - p);
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::to_f32() const {
  const int64_t n = numel();
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* p = bytes.data();
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == "<f4") {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else if (dtype == "<f8") {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = static_cast<float>(v);
    } else if (dtype == "<i8") {
      int64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = static_cast<float>(v);
    } else if (dtype == "<i4") {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = static_cast<float>(v);
    } else if (dtype == "|u1") {
      out[i] = p[i];
    } else {
      CS_THROW(kUnsupported, "npy dtype ", dtype, " cannot be read as float");
    }
  }
  return out;
}

std::vector<int64_t> NpyArray::to_i64() const {
  const int64_t n = numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == "<i8") {
      std::memcpy(&out[i], bytes.data() + 8 * i, 8);
    } else if (dtype == "<i4") {
      int32_t v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      out[i] = v;
    } else {
      CS_THROW(kUnsupported, "npy dtype ", dtype, " cannot be read as int64");
    }
  }
  return out;
}

NpyArray parse_npy(std::span<const uint8_t> data, const std::string& name) {
  CS_CHECK_ARG(data.size() >= 10 && std::memcmp(data.data(), "\x93NUMPY", 6) == 0, name,
               ": not a .npy file");
  const int major = data[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = data[8] | (data[9] << 8);
    hstart = 10;
  } else {
    CS_CHECK_ARG(data.size() >= 12, name, ": truncated .npy header");
    hlen = data[8] | (data[9] << 8) | (size_t(data[10]) << 16) | (size_t(data[11]) << 24);
    hstart = 12;
  }
  CS_CHECK_ARG(hstart + hlen <= data.size(), name, ": truncated .npy header");
  std::string h(reinterpret_cast<const char*>(data.data() + hstart), hlen);
  NpyArray a;
  a.dtype = header_field(h, "descr", name);
  CS_CHECK_ARG(dtype_size(a.dtype) != 0, name, ": unsupported npy dtype ", a.dtype);
  CS_CHECK_ARG(header_field(h, "fortran_order", name).find("False") != std::string::npos, name,
               ": Fortran-order .npy is not supported");
  std::string shape = header_field(h, "shape", name);
  size_t p = 0;
  while (p < shape.size()) {
    while (p < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p >= shape.size()) break;
    size_t e = p;
    while (e < shape.size() && shape[e] >= '0' && shape[e] <= '9') ++e;
    CS_CHECK_ARG(e > p && e - p < 12, name, ": bad npy shape (", shape, ")");
    a.shape.push_back(std::stoll(shape.substr(p, e - p)));
    p = e;
  }
  const size_t need = static_cast<size_t>(a.numel()) * dtype_size(a.dtype);
  const size_t off = hstart + hlen;
  CS_CHECK_ARG(data.size() - off >= need, name, ": truncated .npy data (need ", need,
               " bytes, have ", data.size() - off, ")");
  a.bytes.assign(data.begin() + off, data.begin() + off + need);
  return a;
}

NpyArray read_npy(const std::string& path) {
  MappedFile f(path);
  return parse_npy(f.bytes(), path);
}

std::string npy_header_f32(const std::vector<int64_t>& shape, size_t total) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    h += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) h += ", ";
  }
  h += "), }";
  const size_t want = std::max<size_t>(total, 10 + h.size() + 1);
  while ((10 + h.size() + 1) % 64 != 0 || 10 + h.size() + 1 < want) h += ' ';
  h += '\n';
  CS_CHECK_ARG(h.size() <= 0xffff, "npy header too long");
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h;
}

std::vector<uint8_t> encode_npy_f32(std::span<const float> data,
                                    const std::vector<int64_t>& shape) {
  const std::string h = npy_header_f32(shape);
  std::vector<uint8_t> out(h.size() + data.size() * 4);
  std::memcpy(out.data(), h.data(), h.size());
  if (!data.empty()) std::memcpy(out.data() + h.size(), data.data(), data.size() * 4);
  return out;
}

void write_npy_f32(const std::string& path, std::span<const float> data,
                   const std::vector<int64_t>& shape) {
  auto bytes = encode_npy_f32(data, shape);
  write_file_atomic(path, bytes);
}

}  // namespace clipserve

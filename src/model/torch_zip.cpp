// torch.save zip checkpoints: zip reader/writer and the state dict built from the pickle
// (the restricted unpickler is model/torch_pickle.cpp).
#include "model/torch_zip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "core/check.h"
#include "core/file.h"
#include "model/torch_pickle.h"

namespace clipserve {

using torch_pickle::kStorageTypes;
using torch_pickle::PPtr;
using torch_pickle::PValue;

namespace {

// ------------------------------------------------------------------------- zip reading

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;
  uint64_t size = 0;
};

uint64_t rd(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::vector<ZipEntry> read_zip_directory(std::span<const uint8_t> f, const std::string& src) {
  const uint64_t n = f.size();
  CS_CHECK_ARG(n >= 22, src, ": not a zip archive (too short)");
  // The end-of-central-directory record is in the last 22 + 65535 bytes.
  int64_t eocd = -1;
  for (int64_t i = int64_t(n) - 22; i >= 0 && i >= int64_t(n) - 22 - 65535; --i) {
    if (rd(f.data() + i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  CS_CHECK_ARG(eocd >= 0, src, ": not a zip archive (no end-of-central-directory record)");
  const uint8_t* e = f.data() + eocd;
  uint64_t count = rd(e + 10, 2), cd_size = rd(e + 12, 4), cd_off = rd(e + 16, 4);
  if ((count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) && eocd >= 20 &&
      rd(f.data() + eocd - 20, 4) == 0x07064b50) {
    uint64_t z = rd(f.data() + eocd - 20 + 8, 8);
    CS_CHECK_ARG(z <= n - 56 && rd(f.data() + z, 4) == 0x06064b50, src,
                 ": corrupt zip64 end-of-central-directory record");
    count = rd(f.data() + z + 32, 8);
    cd_size = rd(f.data() + z + 40, 8);
    cd_off = rd(f.data() + z + 48, 8);
  }
  CS_CHECK_ARG(cd_off <= n && cd_size <= n - cd_off && count <= cd_size / 46 + 1, src,
               ": corrupt zip central directory (offset ", cd_off, ", size ", cd_size, ")");
  std::vector<ZipEntry> out;
  uint64_t p = cd_off;
  for (uint64_t i = 0; i < count; ++i) {
    CS_CHECK_ARG(p + 46 <= cd_off + cd_size && rd(f.data() + p, 4) == 0x02014b50, src,
                 ": corrupt zip central directory entry ", i);
    const uint8_t* c = f.data() + p;
    uint64_t method = rd(c + 10, 2), csize = rd(c + 20, 4), usize = rd(c + 24, 4);
    uint64_t name_len = rd(c + 28, 2), extra_len = rd(c + 30, 2), comment_len = rd(c + 32, 2);
    uint64_t local = rd(c + 42, 4);
    CS_CHECK_ARG(p + 46 + name_len + extra_len + comment_len <= cd_off + cd_size, src,
                 ": corrupt zip central directory entry ", i);
    ZipEntry z;
    z.name.assign(reinterpret_cast<const char*>(c + 46), name_len);
    // zip64 extra field: 8-byte values for the 32-bit fields that are 0xFFFFFFFF.
    for (uint64_t x = 0; x + 4 <= extra_len;) {
      const uint8_t* ex = c + 46 + name_len + x;
      uint64_t id = rd(ex, 2), len = rd(ex + 2, 2);
      if (x + 4 + len > extra_len) break;
      if (id == 0x0001) {
        uint64_t q = 4;
        auto take = [&](uint64_t& v) {
          if (v == 0xFFFFFFFF && q + 8 <= 4 + len) {
            v = rd(ex + q, 8);
            q += 8;
          }
        };
        take(usize);
        take(csize);
        take(local);
      }
      x += 4 + len;
    }
    CS_CHECK_ARG(method == 0, src, ": zip entry '", z.name, "' is compressed (method ", method,
                 "); torch checkpoints store entries uncompressed");
    CS_CHECK_ARG(csize == usize, src, ": zip entry '", z.name, "' has inconsistent sizes");
    CS_CHECK_ARG(local <= n - 30 && rd(f.data() + local, 4) == 0x04034b50, src, ": zip entry '",
                 z.name, "' has a bad local header offset ", local);
    uint64_t lname = rd(f.data() + local + 26, 2), lextra = rd(f.data() + local + 28, 2);
    z.data_offset = local + 30 + lname + lextra;
    z.size = usize;
    CS_CHECK_ARG(z.data_offset <= n && z.size <= n - z.data_offset, src, ": zip entry '", z.name,
                 "' reaches past the end of the file (truncated?)");
    out.push_back(std::move(z));
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

void convert_elements(StDType dt, const uint8_t* src, int64_t index, float* dst) {
  switch (dt) {
    case StDType::kF32:
      std::memcpy(dst, src + 4 * index, 4);
      break;
    case StDType::kF16: {
      uint16_t h;
      std::memcpy(&h, src + 2 * index, 2);
      *dst = f16_to_f32(h);
      break;
    }
    case StDType::kBF16: {
      uint16_t h;
      std::memcpy(&h, src + 2 * index, 2);
      *dst = bf16_to_f32(h);
      break;
    }
    default: {  // F64
      double d;
      std::memcpy(&d, src + 8 * index, 8);
      *dst = static_cast<float>(d);
    }
  }
}

}  // namespace

namespace {

// `mapping`, when given, owns `f`: aligned contiguous F32 tensors become zero-copy views.
WeightMap parse_checkpoint(std::span<const uint8_t> f, const std::string& src,
                           std::shared_ptr<const void> mapping) {
  auto entries = read_zip_directory(f, src);
  std::string prefix;
  const ZipEntry* pkl = nullptr;
  std::map<std::string, const ZipEntry*> by_name;
  for (const auto& e : entries) {
    by_name[e.name] = &e;
    size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash + 1) == "data.pkl") {
      CS_CHECK_ARG(pkl == nullptr, src, ": more than one data.pkl in the archive");
      pkl = &e;
      prefix = e.name.substr(0, slash + 1);
    }
  }
  CS_CHECK_ARG(pkl != nullptr, src,
               ": not a torch.save checkpoint (no <name>/data.pkl in the zip)");
  if (by_name.count(prefix + "constants.pkl")) {
    CS_THROW(kUnsupported, src,
             ": this is a TorchScript archive (e.g. OpenAI's original .pt), not a state dict; use "
             "the hub's open_clip_pytorch_model.bin / open_clip_model.safetensors instead");
  }
  if (auto it = by_name.find(prefix + "byteorder"); it != by_name.end()) {
    std::string bo(reinterpret_cast<const char*>(f.data() + it->second->data_offset),
                   it->second->size);
    CS_CHECK_ARG(bo == "little", src, ": byteorder '", bo, "' is not supported");
  }
  PPtr root = torch_pickle::unpickle(f.subspan(pkl->data_offset, pkl->size), src + ":" + pkl->name);
  CS_CHECK_ARG(root->kind == PValue::kDict, src, ": the pickle is not a dict (not a state dict)");
  // open_clip training checkpoints: {"epoch": ..., "state_dict": {...}}.
  std::string strip;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const auto& key = root->items[k];
    if (key->kind == PValue::kStr && key->s == "state_dict" &&
        root->items[k + 1]->kind == PValue::kDict) {
      root = root->items[k + 1];
      strip = "module.";
      break;
    }
  }
  WeightMap m(src);
  if (mapping) m.keep_alive(mapping);
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const PPtr& key = root->items[k];
    const PPtr& val = root->items[k + 1];
    CS_CHECK_ARG(key->kind == PValue::kStr, src, ": state dict key ", k / 2, " is not a string");
    if (val->kind != PValue::kTensor) continue;
    std::string name = key->s;
    if (!strip.empty() && name.rfind(strip, 0) == 0) name = name.substr(strip.size());
    const PValue& st = *val->storage;
    StDType dt = kStorageTypes.at(st.s);
    if (dt != StDType::kF32 && dt != StDType::kF16 && dt != StDType::kBF16 && dt != StDType::kF64)
      continue;  // integer buffers (position_ids)
    auto it = by_name.find(prefix + "data/" + st.key);
    CS_CHECK_ARG(it != by_name.end(), src, ": tensor '", name, "': storage data/", st.key,
                 " is missing from the archive");
    const ZipEntry& ze = *it->second;
    const uint64_t esize = st_dtype_size(dt);
    CS_CHECK_ARG(uint64_t(st.numel) <= ze.size / esize, src, ": tensor '", name, "': storage ",
                 st.key, " holds ", ze.size, " bytes, less than ", st.numel, " x ", esize);
    int64_t numel = 1, extent = 0;
    bool contiguous = true;
    int64_t expect_stride = 1;
    for (size_t d = val->size.size(); d-- > 0;) {
      CS_CHECK_ARG(
          val->size[d] == 0 || numel <= (int64_t(1) << 40) / std::max<int64_t>(val->size[d], 1),
          src, ": tensor '", name, "' is too large");
      numel *= val->size[d];
      if (val->size[d] > 1 && val->stride[d] != expect_stride) contiguous = false;
      expect_stride *= std::max<int64_t>(val->size[d], 1);
      if (val->size[d] > 0) extent += (val->size[d] - 1) * val->stride[d];
    }
    // More elements than the storage holds needs zero strides (broadcast views), which no
    // saved state dict has; refusing them also bounds the work to the file's size.
    CS_CHECK_ARG(numel <= st.numel, src, ": tensor '", name, "' has ", numel,
                 " elements but its storage only ", st.numel);
    CS_CHECK_ARG(numel == 0 || val->offset + extent < st.numel, src, ": tensor '", name,
                 "' (offset ", val->offset, ", shape and strides) reaches past its storage of ",
                 st.numel, " elements");
    const uint8_t* base = f.data() + ze.data_offset;
    CS_CHECK_ARG(!m.contains(name), src, ": tensor '", name, "' appears twice");
    if (dt == StDType::kF32 && contiguous) {
      const uint8_t* p = base + 4 * val->offset;
      if (mapping && reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) {
        m.add_view(name, val->size, reinterpret_cast<const float*>(p));
      } else {
        std::vector<float> out(static_cast<size_t>(numel));
        if (numel > 0) std::memcpy(out.data(), p, static_cast<size_t>(numel) * 4);
        m.add_owned(name, val->size, std::move(out));
      }
      continue;
    }
    std::vector<float> out(static_cast<size_t>(numel));
    if (contiguous) {
      for (int64_t i = 0; i < numel; ++i) convert_elements(dt, base, val->offset + i, &out[i]);
    } else {
      std::vector<int64_t> idx(val->size.size(), 0);
      for (int64_t i = 0; i < numel; ++i) {
        int64_t src_index = val->offset;
        for (size_t d = 0; d < idx.size(); ++d) src_index += idx[d] * val->stride[d];
        convert_elements(dt, base, src_index, &out[i]);
        for (size_t d = idx.size(); d-- > 0;) {
          if (++idx[d] < val->size[d]) break;
          idx[d] = 0;
        }
      }
    }
    m.add_owned(name, val->size, std::move(out));
  }
  return m;
}

}  // namespace

WeightMap parse_torch_checkpoint(std::span<const uint8_t> f, const std::string& src) {
  return parse_checkpoint(f, src, nullptr);
}

WeightMap load_torch_checkpoint(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  return parse_checkpoint(file->bytes(), path, file);
}

std::vector<uint8_t> make_stored_zip(
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries) {
  std::vector<uint8_t> out, cd;
  auto put = [](std::vector<uint8_t>& v, uint64_t x, int n) {
    for (int i = 0; i < n; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
  };
  for (const auto& [name, data] : entries) {
    CS_CHECK_ARG(out.size() + data.size() < 0xFFFFFFF0ull, "zip writer: archive over 4 GB");
    uint32_t crc = static_cast<uint32_t>(crc32(0L, data.data(), static_cast<uInt>(data.size())));
    uint64_t local = out.size();
    // Pad with an extra field so the data starts at a multiple of 64, as torch does.
    size_t header_end = local + 30 + name.size() + 4;
    size_t pad = (64 - header_end % 64) % 64;
    put(out, 0x04034b50, 4);
    put(out, 20, 2);
    put(out, 0, 2);
    put(out, 0, 2);
    put(out, 0, 4);
    put(out, crc, 4);
    put(out, data.size(), 4);
    put(out, data.size(), 4);
    put(out, name.size(), 2);
    put(out, 4 + pad, 2);
    out.insert(out.end(), name.begin(), name.end());
    put(out, 0x4246, 2);  // "FB" padding field
    put(out, pad, 2);
    out.insert(out.end(), pad, 'Z');
    out.insert(out.end(), data.begin(), data.end());
    put(cd, 0x02014b50, 4);
    put(cd, 20, 2);
    put(cd, 20, 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 4);
    put(cd, crc, 4);
    put(cd, data.size(), 4);
    put(cd, data.size(), 4);
    put(cd, name.size(), 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 2);
    put(cd, 0, 4);
    put(cd, local, 4);
    cd.insert(cd.end(), name.begin(), name.end());
  }
  uint64_t cd_off = out.size();
  out.insert(out.end(), cd.begin(), cd.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, entries.size(), 2);
  put(out, entries.size(), 2);
  put(out, cd.size(), 4);
  put(out, cd_off, 4);
  put(out, 0, 2);
  return out;
}

void write_torch_checkpoint(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  std::vector<uint8_t> p;
  auto op = [&](uint8_t b) { p.push_back(b); };
  auto raw = [&](const std::string& s) { p.insert(p.end(), s.begin(), s.end()); };
  auto str = [&](const std::string& s) {
    op('X');
    for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(s.size() >> (8 * i)));
    raw(s);
  };
  auto integer = [&](int64_t v) {
    if (v >= 0 && v < (int64_t(1) << 31)) {
      op('J');
      for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(v >> (8 * i)));
    } else {
      op(0x8a);
      op(8);
      for (int i = 0; i < 8; ++i) op(static_cast<uint8_t>(uint64_t(v) >> (8 * i)));
    }
  };
  auto ordered_dict = [&] {
    raw("ccollections\nOrderedDict\n");
    op(')');
    op('R');
  };
  op(0x80);
  op(2);
  ordered_dict();
  op('(');
  std::vector<std::pair<std::string, std::vector<uint8_t>>> entries;
  entries.push_back({"archive/data.pkl", {}});
  entries.push_back({"archive/byteorder", {'l', 'i', 't', 't', 'l', 'e'}});
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& t = tensors[k];
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    str(t.name);
    raw("ctorch._utils\n_rebuild_tensor_v2\n");
    op('(');
    op('(');
    str("storage");
    raw("ctorch\nFloatStorage\n");
    str(std::to_string(k));
    str("cpu");
    integer(numel);
    op('t');
    op('Q');
    integer(0);
    op('(');
    for (auto d : t.shape) integer(d);
    op('t');
    op('(');
    int64_t stride = 1;
    std::vector<int64_t> strides(t.shape.size());
    for (size_t d = t.shape.size(); d-- > 0;) {
      strides[d] = stride;
      stride *= t.shape[d];
    }
    for (auto s : strides) integer(s);
    op('t');
    op(0x89);
    ordered_dict();
    op('t');
    op('R');
    const auto* b = reinterpret_cast<const uint8_t*>(t.data);
    entries.push_back({"archive/data/" + std::to_string(k),
                       std::vector<uint8_t>(b, b + static_cast<size_t>(numel) * 4)});
  }
  op('u');
  op('.');
  entries[0].second = std::move(p);
  entries.push_back({"archive/version", {'3', '\n'}});
  auto zip = make_stored_zip(entries);
  write_file_atomic(path, zip);
}

}  // namespace clipserve

// VectorIndex on hnswlib's HierarchicalNSW (header-only, Debian libhnswlib-dev): graph search,
// exact scan over its stored vectors, in-place replace, mark-deleted removal, file snapshots.
// hnswlib's SSE path prefetches one element past the end of a link list (a harmless read
// of the next heap bytes that AddressSanitizer reports): sanitized builds use its plain loops.
#if defined(__SANITIZE_ADDRESS__) && !defined(NO_MANUAL_VECTORIZATION)
#define NO_MANUAL_VECTORIZATION
#endif
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <queue>

#include "core/check.h"
#include "index/dot_simd.h"
#include "index/vector_index.h"

namespace clipserve::index {

float dot_exact(const float* a, const float* b, int dim) {
  double s = 0;
  for (int i = 0; i < dim; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

bool normalize(const float* v, int dim, float* out) {
  double s = 0;
  for (int i = 0; i < dim; ++i) {
    if (!std::isfinite(v[i])) return false;
    s += static_cast<double>(v[i]) * v[i];
  }
  if (!(s > 0) || !std::isfinite(s)) return false;
  const double inv = 1.0 / std::sqrt(s);
  for (int i = 0; i < dim; ++i) out[i] = static_cast<float>(v[i] * inv);
  return true;
}

namespace {

using Hnsw = hnswlib::HierarchicalNSW<float>;

// hnswlib's inner-product space over our codes with run-time dispatched kernels: Debian's
// header picks its SIMD at compile time, and this build targets baseline x86-64 (SSE only).
class CodeSpace : public hnswlib::SpaceInterface<float> {
 public:
  CodeSpace(int dim, VectorStorage storage) : dim_(static_cast<size_t>(dim)) {
    switch (storage) {
      case VectorStorage::kFp32:
        bytes_ = dim_ * sizeof(float), fn_ = ip_distance();
        break;
      case VectorStorage::kFp16:
        bytes_ = fp16_code_bytes(dim_), fn_ = fp16_distance();
        break;
      case VectorStorage::kInt8:
        bytes_ = int8_code_bytes(dim_), fn_ = int8_distance();
        break;
    }
  }
  size_t get_data_size() override { return bytes_; }
  hnswlib::DISTFUNC<float> get_dist_func() override { return fn_; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  size_t dim_;
  size_t bytes_ = 0;
  DistanceFn fn_ = nullptr;
};

// hnswlib's loader trusts the file (a failed load leaves the object impossible to destroy):
// check the header and the link-list layout against what this collection would write first.
void check_snapshot(const std::string& path, size_t data, int m) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) CS_THROW(kIo, "cannot read ", path);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  size_t off0 = 0, max_el = 0, count = 0, per_el = 0, label_off = 0, data_off = 0, max_m = 0,
         max_m0 = 0, mm = 0, efc = 0;
  int max_level = 0;
  hnswlib::tableint entry = 0;
  double mult = 0;
  auto rd = [&](auto& v) { in.read(reinterpret_cast<char*>(&v), sizeof(v)); };
  rd(off0), rd(max_el), rd(count), rd(per_el), rd(label_off), rd(data_off), rd(max_level);
  rd(entry), rd(max_m), rd(max_m0), rd(mm), rd(mult), rd(efc);
  const size_t links0 = max_m0 * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  const bool header_ok = in && off0 == 0 && mm == static_cast<size_t>(m) && max_m == mm &&
                         max_m0 == 2 * mm && data_off == links0 && label_off == links0 + data &&
                         per_el == label_off + sizeof(hnswlib::labeltype) && count <= max_el &&
                         count < (1ull << 32) && (count == 0 || entry < count) && max_level >= -1 &&
                         max_level < 64;
  if (!header_ok) CS_THROW(kIo, path, ": not a snapshot of this collection (header)");
  const size_t links = max_m * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  uint64_t pos = static_cast<uint64_t>(in.tellg()) + static_cast<uint64_t>(count) * per_el;
  for (size_t i = 0; i < count; ++i) {
    unsigned int n = 0;
    if (pos + sizeof(n) > file_size) CS_THROW(kIo, path, ": truncated snapshot");
    in.seekg(static_cast<std::streamoff>(pos));
    rd(n);
    if (!in || n % links != 0 || n / links > static_cast<size_t>(max_level)) {
      CS_THROW(kIo, path, ": corrupt snapshot (element ", i, ")");
    }
    pos += sizeof(n) + n;
  }
  if (pos != file_size) CS_THROW(kIo, path, ": snapshot size does not match its contents");
}

// Keeps the k best (score desc, label asc on ties).
class TopK {
 public:
  explicit TopK(int k) : k_(static_cast<size_t>(std::max(k, 0))) {}
  void push(int64_t label, float score) {
    if (k_ == 0) return;
    if (heap_.size() < k_) {
      heap_.emplace(score, label);
    } else if (better(score, label, heap_.top().first, heap_.top().second)) {
      heap_.pop();
      heap_.emplace(score, label);
    }
  }
  Scored take() {
    Scored out;
    while (!heap_.empty()) {
      out.emplace_back(heap_.top().second, heap_.top().first);
      heap_.pop();
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

 private:
  static bool better(float s, int64_t l, float s2, int64_t l2) {
    return s > s2 || (s == s2 && l < l2);
  }
  struct Worse {  // top() = the worst kept
    bool operator()(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) const {
      return better(a.first, a.second, b.first, b.second);
    }
  };
  size_t k_;
  std::priority_queue<std::pair<float, int64_t>, std::vector<std::pair<float, int64_t>>, Worse>
      heap_;
};

class HnswIndex : public VectorIndex {
 public:
  HnswIndex(const HnswParams& p, int64_t capacity) : p_(p), space_(p.dim, p.storage) {
    hnsw_ = std::make_unique<Hnsw>(&space_, static_cast<size_t>(std::max<int64_t>(capacity, 16)),
                                   p.m, p.ef_construction);
  }
  HnswIndex(const HnswParams& p, const std::string& path) : p_(p), space_(p.dim, p.storage) {
    check_snapshot(path, space_.get_data_size(), p.m);
    try {
      // hnswlib 0.6.2's loading constructor leaves num_deleted_ uninitialized before
      // counting into it: construct empty, zero it, then load.
      hnsw_ = std::make_unique<Hnsw>(&space_);
      hnsw_->num_deleted_ = 0;
      hnsw_->loadIndex(path, &space_);
      hnsw_->ef_ = 64;
    } catch (const std::exception& e) {
      (void)hnsw_.release();  // half-loaded: leaking beats freeing uninitialized pointers
      CS_THROW(kIo, path, ": ", e.what());
    }
    if (hnsw_->data_size_ != space_.get_data_size()) {
      CS_THROW(kIo, path, ": snapshot dimension or vector storage differs from the collection's");
    }
  }

  void add(int64_t label, const float* unit) override {
    hnsw_->addPoint(code(unit), static_cast<hnswlib::labeltype>(label));
  }
  bool exact_scores() const override { return p_.storage == VectorStorage::kFp32; }
  size_t code_bytes() const override { return hnsw_->data_size_; }
  bool remove(int64_t label) override {
    auto it = hnsw_->label_lookup_.find(static_cast<hnswlib::labeltype>(label));
    if (it == hnsw_->label_lookup_.end() || hnsw_->isMarkedDeleted(it->second)) return false;
    hnsw_->markDelete(static_cast<hnswlib::labeltype>(label));
    return true;
  }
  void set_ef(int ef) override { hnsw_->ef_ = static_cast<size_t>(std::max(ef, 1)); }
  Scored search(const float* q, int k) const override {
    if (k <= 0 || size() == 0) return {};
    auto pq = hnsw_->searchKnn(code(q), static_cast<size_t>(k));
    TopK top(k);
    while (!pq.empty()) {
      const auto label = static_cast<int64_t>(pq.top().second);
      const float approx = 1.0f - pq.top().first;
      pq.pop();
      if (!exact_scores()) {
        top.push(label, approx);
      } else if (const float* v = vector(label)) {
        top.push(label, dot_exact(q, v, p_.dim));
      }
    }
    return top.take();
  }
  Scored exact(const float* q, int k, const std::vector<int64_t>* labels) const override {
    CS_ASSERT(exact_scores(), "exact scan over a compressed index (the caller scans fp32)");
    TopK top(k);
    if (labels) {
      for (int64_t l : *labels) {
        if (const float* v = vector(l)) top.push(l, dot_exact(q, v, p_.dim));
      }
    } else {
      const size_t n = hnsw_->cur_element_count;
      for (size_t i = 0; i < n; ++i) {
        const auto id = static_cast<hnswlib::tableint>(i);
        if (hnsw_->isMarkedDeleted(id)) continue;
        const auto* v = reinterpret_cast<const float*>(hnsw_->getDataByInternalId(id));
        top.push(static_cast<int64_t>(hnsw_->getExternalLabel(id)), dot_exact(q, v, p_.dim));
      }
    }
    return top.take();
  }
  const float* vector(int64_t label) const override {
    if (!exact_scores()) return nullptr;
    auto it = hnsw_->label_lookup_.find(static_cast<hnswlib::labeltype>(label));
    if (it == hnsw_->label_lookup_.end() || hnsw_->isMarkedDeleted(it->second)) return nullptr;
    return reinterpret_cast<const float*>(hnsw_->getDataByInternalId(it->second));
  }
  int64_t size() const override {
    return static_cast<int64_t>(hnsw_->cur_element_count) - deleted();
  }
  int64_t deleted() const override { return static_cast<int64_t>(hnsw_->num_deleted_); }
  void reserve(int64_t n) override {
    if (static_cast<size_t>(n) > hnsw_->max_elements_) {
      hnsw_->resizeIndex(std::max(static_cast<size_t>(n), hnsw_->max_elements_ * 2));
    }
  }
  void save(const std::string& path) const override { hnsw_->saveIndex(path); }

 private:
  // The vector in the index's storage format (a per-thread buffer for compressed codes).
  const void* code(const float* unit) const {
    if (exact_scores()) return unit;
    thread_local std::vector<uint8_t> buf;
    buf.resize(hnsw_->data_size_);
    if (p_.storage == VectorStorage::kFp16) {
      encode_fp16(unit, static_cast<size_t>(p_.dim), buf.data());
    } else {
      encode_int8(unit, static_cast<size_t>(p_.dim), buf.data());
    }
    return buf.data();
  }

  HnswParams p_;
  CodeSpace space_;
  std::unique_ptr<Hnsw> hnsw_;
};

}  // namespace

const char* storage_name(VectorStorage s) {
  return s == VectorStorage::kFp16 ? "fp16" : s == VectorStorage::kInt8 ? "int8" : "fp32";
}
bool parse_storage(const std::string& name, VectorStorage* out) {
  for (auto s : {VectorStorage::kFp32, VectorStorage::kFp16, VectorStorage::kInt8}) {
    if (name == storage_name(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

std::unique_ptr<VectorIndex> make_hnsw(const HnswParams& p, int64_t capacity) {
  return std::make_unique<HnswIndex>(p, capacity);
}
std::unique_ptr<VectorIndex> load_hnsw(const HnswParams& p, const std::string& path) {
  return std::make_unique<HnswIndex>(p, path);
}

}  // namespace clipserve::index

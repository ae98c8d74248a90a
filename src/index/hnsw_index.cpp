// VectorIndex on hnswlib's HierarchicalNSW (header-only, Debian libhnswlib-dev): graph search,
// exact scan over its stored vectors, in-place replace, mark-deleted removal, file snapshots.
// hnswlib's SSE path prefetches one element past the end of a link list (a harmless read
// of the next heap bytes that AddressSanitizer reports): sanitized builds use its plain loops.
#if defined(__SANITIZE_ADDRESS__) && !defined(NO_MANUAL_VECTORIZATION)
#define NO_MANUAL_VECTORIZATION
#endif
#include <fcntl.h>
#include <hnswlib/hnswlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
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

// A snapshot read and checked before anything is handed to hnswlib. hnswlib's own loader
// trusts the file (a failed load leaves the object impossible to destroy) and walks it with a
// seek and two tellg per element (millions of syscalls at 1M vectors): this reads the level-0
// block in one go and the link lists in one buffer, checks the layout against what this
// collection would write, then fills the HierarchicalNSW fields as loadIndex does.
struct Snapshot {
  size_t max_el = 0, count = 0, per_el = 0, label_off = 0, data_off = 0, max_m = 0, max_m0 = 0,
         mm = 0, efc = 0;
  int max_level = 0;
  hnswlib::tableint entry = 0;
  double mult = 0;
  // The whole file mapped copy-on-write (MAP_PRIVATE): the level-0 block is used in place
  // (no copy, pages come from the page cache as searches touch them); writes stay private.
  void* map = MAP_FAILED;
  size_t map_len = 0;
  char* level0 = nullptr;       // count * per_el bytes inside the mapping
  const char* links = nullptr;  // per element: uint32 size, then size bytes
  size_t links_len = 0;
  ~Snapshot() {
    if (map != MAP_FAILED) ::munmap(map, map_len);
  }
};

std::unique_ptr<Snapshot> read_snapshot(const std::string& path, size_t data, int m) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) CS_THROW(kIo, "cannot read ", path, ": ", std::strerror(errno));
  struct stat st {};
  auto sn = std::make_unique<Snapshot>();
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    sn->map_len = static_cast<size_t>(st.st_size);
    sn->map = ::mmap(nullptr, sn->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  if (sn->map == MAP_FAILED) CS_THROW(kIo, "cannot map ", path);
  const auto file_size = static_cast<uint64_t>(sn->map_len);
  const char* base = static_cast<const char*>(sn->map);
  size_t off = 0, off0 = 0;
  auto rd = [&](auto& v) {
    if (off + sizeof(v) > file_size) CS_THROW(kIo, path, ": truncated snapshot");
    std::memcpy(&v, base + off, sizeof(v));
    off += sizeof(v);
  };
  rd(off0), rd(sn->max_el), rd(sn->count), rd(sn->per_el), rd(sn->label_off), rd(sn->data_off);
  rd(sn->max_level), rd(sn->entry), rd(sn->max_m), rd(sn->max_m0), rd(sn->mm), rd(sn->mult);
  rd(sn->efc);
  const size_t header = off;
  const size_t links0 = sn->max_m0 * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  const bool header_ok =
      off0 == 0 && sn->mm == static_cast<size_t>(m) && sn->max_m == sn->mm &&
      sn->max_m0 == 2 * sn->mm && sn->data_off == links0 && sn->label_off == links0 + data &&
      sn->per_el == sn->label_off + sizeof(hnswlib::labeltype) && sn->count <= sn->max_el &&
      sn->count < (1ull << 32) && (sn->count == 0 || sn->entry < sn->count) &&
      sn->max_level >= -1 && sn->max_level < 64 &&
      header + static_cast<uint64_t>(sn->count) * sn->per_el <= file_size;
  if (!header_ok) CS_THROW(kIo, path, ": not a snapshot of this collection (header)");
  const size_t level0_bytes = sn->count * sn->per_el;
  sn->level0 = static_cast<char*>(sn->map) + header;
  sn->links = base + header + level0_bytes;
  sn->links_len = file_size - header - level0_bytes;
  ::madvise(sn->map, sn->map_len, MADV_WILLNEED);  // read ahead while the links are parsed
  const size_t links = sn->max_m * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  size_t pos = 0;
  for (size_t i = 0; i < sn->count; ++i) {
    unsigned int n = 0;
    if (pos + sizeof(n) > sn->links_len) CS_THROW(kIo, path, ": truncated snapshot");
    std::memcpy(&n, sn->links + pos, sizeof(n));
    if (n % links != 0 || n / links > static_cast<size_t>(std::max(sn->max_level, 0)) ||
        pos + sizeof(n) + n > sn->links_len) {
      CS_THROW(kIo, path, ": corrupt snapshot (element ", i, ")");
    }
    pos += sizeof(n) + n;
  }
  if (pos != sn->links_len) CS_THROW(kIo, path, ": snapshot size does not match its contents");
  return sn;
}

// Moves a checked snapshot into an empty HierarchicalNSW (the fields loadIndex sets).
void install(Hnsw& h, Snapshot& sn, hnswlib::SpaceInterface<float>* space) {
  h.offsetLevel0_ = 0;
  h.max_elements_ = sn.count;  // the mapping holds exactly these (reserve() grows a copy)
  h.cur_element_count = sn.count;
  h.size_data_per_element_ = sn.per_el;
  h.label_offset_ = sn.label_off;
  h.offsetData_ = sn.data_off;
  h.maxlevel_ = sn.max_level;
  h.enterpoint_node_ = sn.entry;
  h.maxM_ = sn.max_m;
  h.maxM0_ = sn.max_m0;
  h.M_ = sn.mm;
  h.mult_ = sn.mult;
  h.ef_construction_ = sn.efc;
  h.data_size_ = space->get_data_size();
  h.fstdistfunc_ = space->get_dist_func();
  h.dist_func_param_ = space->get_dist_func_param();
  h.size_links_per_element_ =
      sn.max_m * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  h.size_links_level0_ = sn.max_m0 * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
  std::vector<std::mutex>(h.max_elements_).swap(h.link_list_locks_);
  std::vector<std::mutex>(Hnsw::max_update_element_locks).swap(h.link_list_update_locks_);
  h.element_levels_ = std::vector<int>(h.max_elements_);
  h.linkLists_ =
      static_cast<char**>(std::calloc(std::max<size_t>(1, h.max_elements_), sizeof(void*)));
  if (!h.linkLists_) CS_THROW(kIo, "out of memory for the snapshot's links");
  h.data_level0_memory_ = sn.level0;  // owned by the mapping (HnswIndex unmaps it)
  h.visited_list_pool_ = new hnswlib::VisitedListPool(1, h.max_elements_);
  h.revSize_ = 1.0 / h.mult_;
  h.ef_ = 10;
  h.num_deleted_ = 0;
  h.label_lookup_.reserve(sn.count);
  size_t pos = 0;
  for (size_t i = 0; i < sn.count; ++i) {
    const auto id = static_cast<hnswlib::tableint>(i);
    h.label_lookup_[h.getExternalLabel(id)] = id;
    unsigned int n = 0;
    std::memcpy(&n, sn.links + pos, sizeof(n));
    pos += sizeof(n);
    if (n == 0) {
      h.element_levels_[i] = 0;
      h.linkLists_[i] = nullptr;
    } else {
      h.element_levels_[i] = static_cast<int>(n / h.size_links_per_element_);
      h.linkLists_[i] = static_cast<char*>(std::malloc(n));
      if (!h.linkLists_[i]) CS_THROW(kIo, "out of memory for the snapshot's links");
      std::memcpy(h.linkLists_[i], sn.links + pos, n);
      pos += n;
    }
    if (h.isMarkedDeleted(id)) h.num_deleted_ += 1;
  }
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
    auto sn = read_snapshot(path, space_.get_data_size(), p.m);  // throws before hnswlib sees it
    // The empty constructor leaves every field to the loader (install sets them all).
    hnsw_ = std::make_unique<Hnsw>(&space_);
    try {
      install(*hnsw_, *sn, &space_);
      hnsw_->ef_ = 64;
    } catch (...) {
      (void)hnsw_.release();  // half-installed: leaking beats freeing uninitialized pointers
      throw;
    }
    map_ = sn->map, map_len_ = sn->map_len;
    sn->map = MAP_FAILED;  // the index owns the mapping now
  }
  ~HnswIndex() override {
    if (map_ != MAP_FAILED && hnsw_) {
      hnsw_->data_level0_memory_ = nullptr;  // hnswlib would free() it
      ::munmap(map_, map_len_);
    }
  }
  HnswIndex(const HnswIndex&) = delete;
  HnswIndex& operator=(const HnswIndex&) = delete;

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
    if (static_cast<size_t>(n) > hnsw_->max_elements_ && map_ != MAP_FAILED) {
      // hnswlib grows level 0 with realloc: give it a malloc'd copy of the mapped block.
      const size_t bytes = hnsw_->max_elements_ * hnsw_->size_data_per_element_;
      char* copy = static_cast<char*>(std::malloc(std::max<size_t>(1, bytes)));
      if (!copy) CS_THROW(kIo, "out of memory growing the vector index");
      std::memcpy(copy, hnsw_->data_level0_memory_, bytes);
      hnsw_->data_level0_memory_ = copy;
      ::munmap(map_, map_len_);
      map_ = MAP_FAILED;
    }
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
  void* map_ = MAP_FAILED;  // the snapshot mapping level 0 lives in, until reserve() copies it
  size_t map_len_ = 0;
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

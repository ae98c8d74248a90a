// The vector-store interface a collection searches through (labels = SQLite row ids), and
// its HNSW implementation (hnswlib, inner product on L2-normalized vectors). An external
// engine (pgvector, Qdrant, ...) would stand behind the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace clipserve::index {

/// (label, cosine) pairs by decreasing score.
using Scored = std::vector<std::pair<int64_t, float>>;

/// Thread-safety: search / exact / vector / size may run concurrently with each other; add
/// and remove may run concurrently with each other (distinct labels) but not with readers
/// or save (the collection's shared_mutex enforces it).
class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  /// Inserts or replaces the unit vector of `label`.
  virtual void add(int64_t label, const float* unit) = 0;
  /// Removes `label` if present; returns whether it was.
  virtual bool remove(int64_t label) = 0;
  /// Approximate top-k, beam width max(ef, k). Scores are exact (dot_exact) when
  /// exact_scores(), else the compressed codes' dot products (the caller re-ranks).
  virtual Scored search(const float* unit_query, int k) const = 0;
  /// Whether the index holds fp32 vectors: search scores, exact() and vector() are exact.
  virtual bool exact_scores() const = 0;
  /// Bytes of vector data per element in memory (the graph's links come on top).
  virtual size_t code_bytes() const = 0;
  /// Beam width of search(); a writer-side call (no search may run meanwhile).
  virtual void set_ef(int ef) = 0;
  /// Exact top-k over every live vector, or only over `labels` when given (fp32 only:
  /// on a compressed index it is a bug, the caller scans the fp32 source instead).
  virtual Scored exact(const float* unit_query, int k,
                       const std::vector<int64_t>* labels = nullptr) const = 0;
  /// The stored unit vector of `label`, or nullptr (also for every label of a compressed
  /// index).
  virtual const float* vector(int64_t label) const = 0;
  virtual int64_t size() const = 0;     ///< live vectors
  virtual int64_t deleted() const = 0;  ///< removed, still occupying slots
  virtual void reserve(int64_t n) = 0;  ///< room for n vectors in total
  virtual void save(const std::string& path) const = 0;
};

/// How the index holds its copy of the vectors: fp32, or compressed (fp16, int8 with a
/// per-vector scale; dot_simd.h) with exact scores left to the caller.
enum class VectorStorage { kFp32, kFp16, kInt8 };
/// "fp32" / "fp16" / "int8"; parse returns false on anything else.
const char* storage_name(VectorStorage s);
bool parse_storage(const std::string& name, VectorStorage* out);

struct HnswParams {
  int dim = 0;
  int m = 16;
  int ef_construction = 200;
  VectorStorage storage = VectorStorage::kFp32;
};

std::unique_ptr<VectorIndex> make_hnsw(const HnswParams& p, int64_t capacity);
/// Loads a snapshot written by save(); throws Error(kIo) when it is unreadable or does not
/// match `p.dim`.
std::unique_ptr<VectorIndex> load_hnsw(const HnswParams& p, const std::string& path);

/// Exact cosine of two unit vectors: the dot product accumulated in double (the reference
/// every search result is scored with).
float dot_exact(const float* a, const float* b, int dim);
/// v / ||v|| with the norm accumulated in double; false when the norm is zero or not finite.
bool normalize(const float* v, int dim, float* out);

}  // namespace clipserve::index

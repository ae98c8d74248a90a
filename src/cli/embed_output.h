// Where `clipserve embed` writes its rows: OUT.npy + OUT.paths.txt, JSON lines or CSV, appended
// in durable chunks so an interrupted job keeps what it wrote and --resume skips it.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace clipserve::cli {

enum class EmbedFormat { kNpy, kJsonl, kCsv };

/// "npy", "jsonl" or "csv"; anything else throws Error(kInvalidArgument).
EmbedFormat parse_embed_format(const std::string& s);

/// The row-order file written next to an .npy output: "emb.npy" -> "emb.paths.txt"
/// (a name without the .npy suffix gets ".paths.txt" appended).
std::string paths_file_for(const std::string& out);

/// An output file (or pair) that rows are appended to. Each row has a key: the input as given
/// (an image path, "text:...", "FILE.jsonl:LINE"). Keys may not contain a newline.
///   npy:   OUT is a float32 (rows, dim) .npy whose 128-byte header is rewritten after each
///          append; OUT.paths.txt holds one key per row, in row order.
///   jsonl: one {"path": key, "embedding": [...]} object per line.
///   csv:   a header "path,e0,...,e{dim-1}", then one row per input (RFC 4180 quoting).
/// append() returns only after the rows are on disk (fdatasync). A crash may leave a torn tail
/// (a partial row, or rows whose header/paths update did not land); opening with resume
/// truncates it, so the kept rows are exactly the acknowledged ones.
class EmbedOutput {
 public:
  /// resume=false: creates or truncates the output. resume=true: keeps the existing rows
  /// (checking the format and the dimension) and remembers their keys.
  static std::unique_ptr<EmbedOutput> open(const std::string& path, EmbedFormat format, int dim,
                                           bool resume);
  virtual ~EmbedOutput() = default;
  /// Keys already written (resume), to skip.
  const std::unordered_set<std::string>& existing() const { return existing_; }
  size_t rows() const { return rows_; }
  /// Appends keys.size() rows of dim floats from `data`, durably.
  virtual void append(const std::vector<std::string>& keys, const float* data) = 0;

 protected:
  std::unordered_set<std::string> existing_;
  size_t rows_ = 0;
};

}  // namespace clipserve::cli

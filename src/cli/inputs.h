// Folder-scale CLI jobs: expanding directories and file lists into inputs, a progress line
// with rate and ETA, and the failure summary every batch command prints.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace clipserve::cli {

/// Lower-case image extensions a directory is scanned for (".jpg", ".png", ...).
const std::vector<std::string>& image_extensions();

/// One input of a job: a path or other argument, or an error found while listing it
/// (an unreadable directory, an unreadable --files-from list).
struct InputEntry {
  std::string value;
  std::string error;  ///< non-empty: this entry failed before it was opened
};

/// Expands command-line inputs in order: a directory becomes its image files (recursive, by
/// extension, sorted by path; symlinked directories are not followed, so there are no loops);
/// each `lists` entry (a file, or "-" for stdin) adds one path per non-blank line
/// (a trailing '\r' is dropped). Every other argument passes through unchanged, so a missing
/// file is reported by the command that opens it.
std::vector<InputEntry> expand_inputs(const std::vector<std::string>& args,
                                      const std::vector<std::string>& lists);

/// A progress line on stderr (only when enabled: a terminal and no --no-progress):
///   [=====     ] 412/1000  37.2/s  ETA 16s  3 failed
class Progress {
 public:
  Progress(size_t total, const char* unit, bool enabled);
  void update(size_t done, size_t failed);
  /// Clears the line so a message can be printed on its own line.
  void interrupt();
  void finish();
  bool enabled() const { return enabled_; }
  double seconds() const;

 private:
  size_t total_;
  const char* unit_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

/// Failures of a job: printed as they happen ("clipserve CMD: INPUT: reason") and summarized at
/// the end (count and the first few), so a long job's errors are not lost in its output.
class Failures {
 public:
  explicit Failures(std::string command) : command_(std::move(command)) {}
  void add(const std::string& input, const std::string& reason, Progress* progress = nullptr);
  size_t count() const { return items_.size(); }
  /// "N failed:" and up to `show` of them, on stderr (nothing when there were none).
  void summarize(size_t show = 20) const;

 private:
  std::string command_;
  std::vector<std::pair<std::string, std::string>> items_;
};

/// A CSV field (RFC 4180): quoted, with doubled quotes, when it holds , " CR or LF.
std::string csv_field(const std::string& s);

/// True when stderr is a terminal and progress was not turned off.
bool progress_wanted(bool no_progress_flag);

}  // namespace clipserve::cli

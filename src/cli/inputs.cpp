// Folder-scale CLI jobs: directory and file-list expansion, progress line, failure summary.
#include "cli/inputs.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <system_error>

namespace clipserve::cli {

namespace fs = std::filesystem;

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> e = {".jpg", ".jpeg", ".png", ".webp",
                                             ".gif", ".bmp",  ".tif", ".tiff"};
  return e;
}

namespace {

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  const auto& e = image_extensions();
  return std::find(e.begin(), e.end(), ext) != e.end();
}

void expand_directory(const std::string& dir, std::vector<InputEntry>& out) {
  std::vector<std::string> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    out.push_back({dir, "cannot list the directory: " + ec.message()});
    return;
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      out.push_back({it->path().string(), "cannot list: " + ec.message()});
      ec.clear();
      continue;
    }
    std::error_code fe;
    if (it->is_regular_file(fe) && has_image_extension(it->path())) {
      found.push_back(it->path().string());
    }
  }
  std::sort(found.begin(), found.end());
  for (auto& f : found) out.push_back({std::move(f), {}});
}

void read_list(std::istream& in, std::vector<InputEntry>& out) {
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    out.push_back({line, {}});
  }
}

}  // namespace

std::vector<InputEntry> expand_inputs(const std::vector<std::string>& args,
                                      const std::vector<std::string>& lists) {
  std::vector<InputEntry> out;
  for (const auto& a : args) {
    std::error_code ec;
    if (a.rfind("text:", 0) != 0 && a.rfind('@', 0) != 0 && fs::is_directory(a, ec)) {
      expand_directory(a, out);
    } else {
      out.push_back({a, {}});
    }
  }
  for (const auto& l : lists) {
    if (l == "-") {
      read_list(std::cin, out);
      continue;
    }
    std::ifstream in(l);
    if (!in) {
      out.push_back({l, "cannot open the --files-from list"});
      continue;
    }
    read_list(in, out);
  }
  return out;
}

Progress::Progress(size_t total, const char* unit, bool enabled)
    : total_(total), unit_(unit), enabled_(enabled), start_(std::chrono::steady_clock::now()) {
  last_ = start_ - std::chrono::seconds(1);
}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(size_t done, size_t failed) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;  // ~10 redraws/s
  last_ = now;
  const int width = 30;
  const int fill = total_ ? static_cast<int>(width * std::min(done, total_) / total_) : width;
  const double s = seconds();
  const double rate = s > 0 ? done / s : 0.0;
  char eta[32] = "";
  if (done < total_ && rate > 0) {
    const long left = static_cast<long>((total_ - done) / rate + 0.5);
    if (left >= 3600) {
      std::snprintf(eta, sizeof eta, "  ETA %ldh%02ldm", left / 3600, (left % 3600) / 60);
    } else if (left >= 60) {
      std::snprintf(eta, sizeof eta, "  ETA %ldm%02lds", left / 60, left % 60);
    } else {
      std::snprintf(eta, sizeof eta, "  ETA %lds", left);
    }
  }
  std::fprintf(stderr, "\r[%s%s] %zu/%zu %s  %.1f/s%s", std::string(fill, '=').c_str(),
               std::string(width - fill, ' ').c_str(), done, total_, unit_, rate, eta);
  if (failed) std::fprintf(stderr, "  %zu failed", failed);
  std::fprintf(stderr, "\033[K");
  drawn_ = true;
}

void Progress::interrupt() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\r\033[K");
  drawn_ = false;
  last_ = std::chrono::steady_clock::now() - std::chrono::seconds(1);
}

void Progress::finish() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

void Failures::add(const std::string& input, const std::string& reason, Progress* progress) {
  if (progress) progress->interrupt();
  // Errors usually name their input already ("cat.jpg: truncated JPEG"): say it once.
  std::string r = reason;
  if (r.size() > input.size() + 2 && r.compare(0, input.size(), input) == 0 &&
      r.compare(input.size(), 2, ": ") == 0) {
    r = r.substr(input.size() + 2);
  }
  std::fprintf(stderr, "clipserve %s: %s: %s\n", command_.c_str(), input.c_str(), r.c_str());
  items_.emplace_back(input, r);
}

void Failures::summarize(size_t show) const {
  if (items_.empty()) return;
  std::fprintf(stderr, "clipserve %s: %zu failed:\n", command_.c_str(), items_.size());
  for (size_t i = 0; i < items_.size() && i < show; ++i) {
    std::fprintf(stderr, "  %s: %s\n", items_[i].first.c_str(), items_[i].second.c_str());
  }
  if (items_.size() > show) std::fprintf(stderr, "  ... and %zu more\n", items_.size() - show);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

bool progress_wanted(bool no_progress_flag) { return !no_progress_flag && isatty(STDERR_FILENO); }

}  // namespace clipserve::cli

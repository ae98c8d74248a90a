// `clipserve embed` outputs (see embed_output.h): durable appends, torn-tail repair on resume.
#include "cli/embed_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli/inputs.h"
#include "core/check.h"
#include "core/npy.h"

namespace clipserve::cli {

namespace {

constexpr size_t kNpyHeader = 128;  // fixed, so the row count can grow in place

// A file descriptor with whole-buffer writes and errors naming the path.
class File {
 public:
  File(const std::string& path, bool truncate) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
    if (fd_ < 0) fail("open");
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  size_t size() const {
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail("stat");
    return static_cast<size_t>(st.st_size);
  }
  std::string read_at(size_t at, size_t len) const {
    std::string s(len, '\0');
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::pread(fd_, s.data() + off, s.size() - off, static_cast<off_t>(at + off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("read");
      off += static_cast<size_t>(n);
    }
    return s;
  }
  std::string read_all() const { return read_at(0, size()); }
  void write_at(size_t off, const void* data, size_t len) {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
      ssize_t n = ::pwrite(fd_, p, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("write");
      p += n;
      off += static_cast<size_t>(n);
      len -= static_cast<size_t>(n);
    }
  }
  void truncate(size_t len) {
    if (::ftruncate(fd_, static_cast<off_t>(len)) != 0) fail("truncate");
  }
  void sync() {
    if (::fdatasync(fd_) != 0) fail("sync");
  }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const char* what) const {
    CS_THROW(kIo, "cannot ", what, " ", path_, ": ", std::strerror(errno));
  }
  std::string path_;
  int fd_ = -1;
};

// Complete lines of `s` (a torn last line without '\n' is dropped); *kept = their byte length.
std::vector<std::string> complete_lines(const std::string& s, size_t* kept) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t e = s.find('\n', pos);
    if (e == std::string::npos) break;
    lines.push_back(s.substr(pos, e - pos));
    pos = e + 1;
  }
  *kept = pos;
  return lines;
}

// The first field of a CSV line (quotes undone); *rest = what follows its comma.
std::string csv_first_field(const std::string& line, size_t* fields) {
  std::string f;
  size_t i = 0;
  if (!line.empty() && line[0] == '"') {
    for (i = 1; i < line.size(); ++i) {
      if (line[i] == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          f += '"';
          ++i;
        } else {
          ++i;
          break;
        }
      } else {
        f += line[i];
      }
    }
  } else {
    i = line.find(',');
    if (i == std::string::npos) i = line.size();
    f = line.substr(0, i);
  }
  *fields = 1;
  for (; i < line.size(); ++i) *fields += line[i] == ',';
  return f;
}

class NpyOutput : public EmbedOutput {
 public:
  NpyOutput(const std::string& path, int dim, bool resume)
      : dim_(dim), npy_(path, !resume), paths_(paths_file_for(path), !resume) {
    if (resume && npy_.size() > 0) {
      const std::string h = npy_.read_at(0, std::min(npy_.size(), kNpyHeader));
      const size_t hlen =
          h.size() >= 10 && h.compare(0, 6, "\x93NUMPY") == 0
              ? (static_cast<unsigned char>(h[8]) | (static_cast<unsigned char>(h[9]) << 8)) + 10
              : 0;
      CS_CHECK_ARG(hlen == kNpyHeader, path,
                   ": not an output of `clipserve embed` that can be resumed");
      const auto shape_at = h.find("'shape': (");
      CS_CHECK_ARG(h.find("'descr': '<f4'") != std::string::npos && shape_at != std::string::npos,
                   path, ": not a float32 .npy");
      long long r = 0, c = 0;
      CS_CHECK_ARG(std::sscanf(h.c_str() + shape_at, "'shape': (%lld, %lld)", &r, &c) == 2, path,
                   ": not a 2-D .npy");
      CS_CHECK_ARG(c == dim, path, ": has ", c, " columns, this model embeds into ", dim);
      const size_t row_bytes = 4ul * dim;
      const size_t data_rows = (npy_.size() - kNpyHeader) / row_bytes;
      size_t kept = 0;
      auto keys = complete_lines(paths_.read_all(), &kept);
      rows_ = std::min({static_cast<size_t>(r), data_rows, keys.size()});
      keys.resize(rows_);
      size_t key_bytes = 0;
      for (auto& k : keys) {
        key_bytes += k.size() + 1;
        existing_.insert(std::move(k));
      }
      paths_.truncate(key_bytes);
      npy_.truncate(kNpyHeader + rows_ * row_bytes);
      write_header();
      paths_.sync();
    } else {
      write_header();
    }
  }

  void append(const std::vector<std::string>& keys, const float* data) override {
    if (keys.empty()) return;
    const size_t row_bytes = 4ul * dim_;
    npy_.write_at(kNpyHeader + rows_ * row_bytes, data, keys.size() * row_bytes);
    std::string lines;
    for (const auto& k : keys) lines += k + "\n";
    paths_.write_at(paths_.size(), lines.data(), lines.size());
    npy_.sync();
    paths_.sync();
    rows_ += keys.size();
    write_header();  // the rows count only once the header says so
  }

 private:
  void write_header() {
    const std::string h = npy_header_f32({static_cast<int64_t>(rows_), dim_}, kNpyHeader);
    CS_ASSERT(h.size() == kNpyHeader);
    npy_.write_at(0, h.data(), h.size());
    npy_.sync();
  }
  int dim_;
  File npy_, paths_;
};

class LinesOutput : public EmbedOutput {
 public:
  LinesOutput(const std::string& path, EmbedFormat f, int dim, bool resume)
      : format_(f), dim_(dim), file_(path, !resume) {
    size_t kept = 0;
    std::vector<std::string> lines;
    if (resume) lines = complete_lines(file_.read_all(), &kept);
    size_t good_bytes = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      const std::string where = path + ":" + std::to_string(i + 1);
      if (f == EmbedFormat::kCsv && i == 0) {
        CS_CHECK_ARG(l.rfind("path,e0", 0) == 0, where, ": not a CSV written by clipserve embed");
      } else if (f == EmbedFormat::kCsv) {
        size_t fields = 0;
        std::string key = csv_first_field(l, &fields);
        CS_CHECK_ARG(fields == static_cast<size_t>(dim) + 1, where, ": has ", fields - 1,
                     " values, this model embeds into ", dim);
        existing_.insert(std::move(key));
        ++rows_;
      } else {
        nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
        CS_CHECK_ARG(j.is_object() && j.contains("path") && j["path"].is_string() &&
                         j.contains("embedding") && j["embedding"].is_array(),
                     where, ": not a line written by clipserve embed");
        CS_CHECK_ARG(j["embedding"].size() == static_cast<size_t>(dim), where, ": has ",
                     j["embedding"].size(), " values, this model embeds into ", dim);
        existing_.insert(j["path"].get<std::string>());
        ++rows_;
      }
      good_bytes += l.size() + 1;
    }
    file_.truncate(good_bytes);  // a torn last line goes
    if (f == EmbedFormat::kCsv && good_bytes == 0) {
      std::string h = "path";
      for (int k = 0; k < dim; ++k) h += ",e" + std::to_string(k);
      h += "\n";
      file_.write_at(0, h.data(), h.size());
    }
    file_.sync();
  }

  void append(const std::vector<std::string>& keys, const float* data) override {
    std::string out;
    char buf[32];
    for (size_t r = 0; r < keys.size(); ++r) {
      const float* row = data + r * dim_;
      if (format_ == EmbedFormat::kCsv) {
        out += csv_field(keys[r]);
        for (int k = 0; k < dim_; ++k) {
          std::snprintf(buf, sizeof buf, ",%.9g", row[k]);
          out += buf;
        }
      } else {
        nlohmann::ordered_json j;
        j["path"] = keys[r];
        j["embedding"] = std::vector<float>(row, row + dim_);
        out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
      out += '\n';
    }
    file_.write_at(file_.size(), out.data(), out.size());
    file_.sync();
    rows_ += keys.size();
  }

 private:
  EmbedFormat format_;
  int dim_;
  File file_;
};

}  // namespace

EmbedFormat parse_embed_format(const std::string& s) {
  if (s == "npy") return EmbedFormat::kNpy;
  if (s == "jsonl") return EmbedFormat::kJsonl;
  if (s == "csv") return EmbedFormat::kCsv;
  CS_THROW(kInvalidArgument, "--format must be npy, jsonl or csv, got '", s, "'");
}

std::string paths_file_for(const std::string& out) {
  if (out.size() > 4 && out.compare(out.size() - 4, 4, ".npy") == 0) {
    return out.substr(0, out.size() - 4) + ".paths.txt";
  }
  return out + ".paths.txt";
}

std::unique_ptr<EmbedOutput> EmbedOutput::open(const std::string& path, EmbedFormat format, int dim,
                                               bool resume) {
  if (format == EmbedFormat::kNpy) return std::make_unique<NpyOutput>(path, dim, resume);
  return std::make_unique<LinesOutput>(path, format, dim, resume);
}

}  // namespace clipserve::cli

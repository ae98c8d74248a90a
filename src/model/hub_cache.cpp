// The Hugging Face cache's files (hub_cache.h): digests, atomic writes, snapshot links.
#include "model/hub_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/check.h"
#include "core/digest.h"

namespace clipserve::hub_cache {

namespace fs = std::filesystem;

// sha256 of the file, or (git=true) the git blob sha1: sha1("blob <size>\0" + content).
std::string file_digest(const std::string& path, bool git) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) CS_THROW(kIo, path, ": cannot open for verification: ", std::strerror(errno));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, git ? EVP_sha1() : EVP_sha256(), nullptr);
  if (git) {
    struct stat st {};
    ::fstat(fd, &st);
    std::string prefix = "blob " + std::to_string(st.st_size);
    EVP_DigestUpdate(ctx, prefix.c_str(), prefix.size() + 1);  // with the NUL
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return to_hex({md, len});
}

int64_t file_size_or(const std::string& path, int64_t fallback) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fallback;
  return st.st_size;
}

// A temporary name no other thread or process uses at the same time.
std::string unique_tmp(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++counter);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = unique_tmp(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) CS_THROW(kIo, tmp, ": cannot create: ", std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    CS_THROW(kIo, path, ": cannot write: ", std::strerror(e));
  }
}

// snapshots/<commit>/<file> -> ../../blobs/<etag> (relative, as huggingface_hub makes it).
void link_snapshot(const std::string& repo_dir, const std::string& commit,
                   const std::string& filename, const std::string& etag) {
  fs::path link = fs::path(repo_dir) / "snapshots" / commit / filename;
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  if (ec) CS_THROW(kIo, link.parent_path().string(), ": cannot create: ", ec.message());
  std::string up = "../../";
  for (char c : filename)
    if (c == '/') up += "../";
  std::string target = up + "blobs/" + etag;
  std::string tmp = unique_tmp(link.string());
  if (::symlink(target.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), link.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    CS_THROW(kIo, link.string(), ": cannot create the snapshot link: ", std::strerror(e));
  }
}

}  // namespace clipserve::hub_cache

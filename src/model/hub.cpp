// Hub downloads with libcurl into the Hugging Face cache layout. The protocol follows
// huggingface_hub: HEAD the resolve URL without following the CDN redirect to read the
// commit (X-Repo-Commit), the content hash (X-Linked-Etag for LFS files = sha256, else
// ETag = git blob sha1) and the size; then GET the blob into blobs/<etag>.incomplete
// (resumable with Range), verify, rename to blobs/<etag>, and link
// snapshots/<commit>/<file> -> ../../blobs/<etag>.
#include "model/hub.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "core/check.h"
#include "core/file.h"
#include "model/hub_cache.h"

namespace clipserve {

namespace fs = std::filesystem;
using hub_cache::file_digest;
using hub_cache::file_size_or;
using hub_cache::link_snapshot;
using hub_cache::write_text_atomic;

namespace {

std::atomic<uint64_t> g_requests{0};

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

bool env_truthy(const char* name) {
  std::string v = env_or(name, "");
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool is_hex(const std::string& s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// Percent-encodes a path ('/' kept), as the hub's resolve URLs expect.
std::string url_path_encode(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      r += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      r += buf;
    }
  }
  return r;
}

std::string url_host(const std::string& url) {
  size_t p = url.find("://");
  if (p == std::string::npos) return "";
  size_t start = p + 3;
  size_t end = url.find('/', start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// ETags come quoted and sometimes weak ("W/"); the hub's are hashes.
std::string normalize_etag(std::string e) {
  e = trim(e);
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

void check_repo_id(const std::string& repo_id) {
  size_t slash = repo_id.find('/');
  bool ok = !repo_id.empty() && repo_id.size() <= 200 && repo_id.find("..") == std::string::npos &&
            repo_id.front() != '/' && repo_id.back() != '/' &&
            (slash == std::string::npos || repo_id.find('/', slash + 1) == std::string::npos);
  for (char c : repo_id)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
                c == '/');
  CS_CHECK_ARG(ok, "invalid hub repository id '", repo_id, "' (expected ORG/NAME)");
}

void check_filename(const std::string& f) {
  CS_CHECK_ARG(!f.empty() && f.front() != '/' && f.find("..") == std::string::npos &&
                   f.find('\\') == std::string::npos,
               "invalid file name in repository: '", f, "'");
}

void check_revision(const std::string& r) {
  CS_CHECK_ARG(!r.empty() && r.find("..") == std::string::npos && r.front() != '/' &&
                   r.find('\n') == std::string::npos,
               "invalid revision '", r, "'");
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};
void ensure_curl() { static CurlGlobal g; }

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; last value wins
  CURLcode curl_code = CURLE_OK;
  std::string curl_error;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

size_t header_cb(char* buf, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string line(buf, size * n);
  if (line.rfind("HTTP/", 0) == 0) r->headers.clear();  // a new response (after 1xx/redirect)
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r->headers[name] = trim(line.substr(colon + 1));
  }
  return size * n;
}

struct CurlHandle {
  CURL* h;
  curl_slist* headers = nullptr;
  CurlHandle() : h(curl_easy_init()) { CS_CHECK_ARG(h != nullptr, "curl_easy_init failed"); }
  ~CurlHandle() {
    if (headers != nullptr) curl_slist_free_all(headers);
    curl_easy_cleanup(h);
  }
};

void common_setup(CurlHandle& c, const std::string& url, const HubOptions& opt, bool send_token,
                  Response& resp) {
  curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT, opt.connect_timeout_s);
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_TIME, opt.stall_timeout_s);
  curl_easy_setopt(c.h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c.h, CURLOPT_HEADERDATA, &resp);
  curl_easy_setopt(c.h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  std::string ua = std::string("User-Agent: clipserve/") + CLIPSERVE_VERSION;
  c.headers = curl_slist_append(c.headers, ua.c_str());
  c.headers = curl_slist_append(c.headers, "Accept-Encoding: identity");
  if (send_token && !opt.token.empty()) {
    std::string auth = "Authorization: Bearer " + opt.token;
    c.headers = curl_slist_append(c.headers, auth.c_str());
  }
  curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, c.headers);
}

void perform(CurlHandle& c, Response& resp) {
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c.h, CURLOPT_ERRORBUFFER, err);
  ++g_requests;
  resp.curl_code = curl_easy_perform(c.h);
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &resp.status);
  resp.curl_error = err[0] ? err : curl_easy_strerror(resp.curl_code);
}

[[noreturn]] void throw_http_error(const Response& r, const std::string& what,
                                   const HubOptions& opt) {
  std::string code = r.header("x-error-code");
  std::string msg = r.header("x-error-message");
  std::string detail = code.empty() ? "" : " (" + code + (msg.empty() ? "" : ": " + msg) + ")";
  if (r.status == 401 || r.status == 403) {
    CS_THROW(kInvalidArgument, what, ": access denied (HTTP ", r.status, ")", detail, ". ",
             opt.token.empty() ? "The repository may be private or gated: set HF_TOKEN."
                               : "Check that HF_TOKEN grants access to this repository.");
  }
  if (r.status == 404) CS_THROW(kNotFound, what, ": not found on ", opt.endpoint, detail);
  if (r.status == 429 || r.status >= 500)
    CS_THROW(kUnavailable, what, ": the hub answered HTTP ", r.status, detail, "; try again later");
  CS_THROW(kIo, what, ": unexpected HTTP ", r.status, detail);
}

struct Metadata {
  std::string commit, etag, location;
  int64_t size = -1;
};

// `missing_commit` receives the commit of a 404 EntryNotFound answer (the file does not
// exist at that commit), which is cached as huggingface_hub does (.no_exist/).
Metadata head_metadata(const std::string& url0, const HubOptions& opt, const std::string& what,
                       std::string* missing_commit) {
  std::string url = url0;
  for (int hop = 0; hop < 6; ++hop) {
    CurlHandle c;
    Response r;
    common_setup(c, url, opt, true, r);
    curl_easy_setopt(c.h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 0L);
    perform(c, r);
    if (r.curl_code != CURLE_OK) {
      CS_THROW(kUnavailable, what, ": cannot reach ", opt.endpoint, ": ", r.curl_error,
               " (set HF_HUB_OFFLINE=1 to use only the local cache)");
    }
    std::string location = r.header("location");
    // Relative redirects are repository renames: follow them. Absolute ones point at the
    // CDN and carry the metadata already.
    if (r.status >= 300 && r.status < 400 && !location.empty() && location.front() == '/') {
      url = opt.endpoint + location;
      continue;
    }
    if (r.status == 404 && r.header("x-error-code") == "EntryNotFound")
      *missing_commit = r.header("x-repo-commit");
    if (r.status >= 400 || (r.status >= 300 && location.empty())) throw_http_error(r, what, opt);
    Metadata m;
    m.commit = r.header("x-repo-commit");
    m.etag = normalize_etag(!r.header("x-linked-etag").empty() ? r.header("x-linked-etag")
                                                               : r.header("etag"));
    std::string size =
        !r.header("x-linked-size").empty() ? r.header("x-linked-size") : r.header("content-length");
    if (!size.empty()) m.size = std::strtoll(size.c_str(), nullptr, 10);
    m.location = r.status >= 300 ? location : url;
    CS_CHECK_ARG(!m.commit.empty() && !m.etag.empty(), what, ": the server at ", opt.endpoint,
                 " did not send X-Repo-Commit / ETag headers (not a Hugging Face hub?)");
    CS_CHECK_ARG(
        m.commit.find('/') == std::string::npos && m.commit.find("..") == std::string::npos &&
            m.etag.find('/') == std::string::npos && m.etag.find("..") == std::string::npos,
        what, ": malformed commit or etag from the server");
    return m;
  }
  CS_THROW(kIo, what, ": too many redirects");
}

// Writes the GET body to the .incomplete file; restarts the file when the server ignores
// the Range request.
struct Sink {
  int fd = -1;
  int64_t offset = 0;    // bytes already on disk before this attempt
  int64_t written = 0;   // bytes written in this attempt
  bool checked = false;  // status examined
  bool restart = false;  // server sent 200 to a range request: file truncated
  int write_errno = 0;
  CURL* curl = nullptr;
  // progress
  std::string label;
  int64_t total = -1;
  bool show_progress = false;
  std::chrono::steady_clock::time_point start, last_print;
};

size_t sink_cb(char* buf, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  if (!s->checked) {
    s->checked = true;
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400) return 0;  // error body: abort, status reported by the caller
    if (status == 200 && s->offset > 0) {
      if (::ftruncate(s->fd, 0) != 0 || ::lseek(s->fd, 0, SEEK_SET) != 0) {
        s->write_errno = errno;
        return 0;
      }
      s->offset = 0;
      s->restart = true;
    }
  }
  size_t len = size * n;
  const char* p = buf;
  while (len > 0) {
    ssize_t w = ::write(s->fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s->write_errno = errno;
      return 0;
    }
    p += w;
    len -= static_cast<size_t>(w);
    s->written += w;
  }
  if (s->show_progress) {
    auto now = std::chrono::steady_clock::now();
    if (now - s->last_print > std::chrono::milliseconds(200)) {
      s->last_print = now;
      double done = double(s->offset + s->written);
      double secs = std::chrono::duration<double>(now - s->start).count();
      double rate = secs > 0 ? s->written / secs : 0;
      if (s->total > 0) {
        int pct = static_cast<int>(100.0 * done / double(s->total));
        int bar = pct * 30 / 100;
        std::fprintf(stderr, "\r%s [%-30s] %3d%% %.1f/%.1f MB %.1f MB/s ", s->label.c_str(),
                     std::string(static_cast<size_t>(bar), '#').c_str(), pct, done / 1e6,
                     s->total / 1e6, rate / 1e6);
      } else {
        std::fprintf(stderr, "\r%s %.1f MB %.1f MB/s ", s->label.c_str(), done / 1e6, rate / 1e6);
      }
    }
  }
  return size * n;
}

void download_blob(const Metadata& m, const std::string& blob, const std::string& what,
                   const HubOptions& opt) {
  const std::string part = blob + ".incomplete";
  const bool send_token = url_host(m.location) == url_host(opt.endpoint);
  std::string last_error;
  for (int attempt = 1; attempt <= opt.max_attempts; ++attempt) {
    int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) CS_THROW(kIo, part, ": cannot create: ", std::strerror(errno));
    Sink s;
    s.fd = fd;
    s.offset = file_size_or(part, 0);
    if (m.size >= 0 && s.offset > m.size) {  // stale partial file: start over
      if (::ftruncate(fd, 0) != 0) {
        ::close(fd);
        CS_THROW(kIo, part, ": cannot truncate: ", std::strerror(errno));
      }
      s.offset = 0;
    }
    if (m.size >= 0 && s.offset == m.size) {
      ::close(fd);
      break;
    }
    CurlHandle c;
    Response r;
    common_setup(c, m.location, opt, send_token, r);
    curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.h, CURLOPT_MAXREDIRS, 5L);
    if (s.offset > 0) curl_easy_setopt(c.h, CURLOPT_RESUME_FROM_LARGE, curl_off_t(s.offset));
    s.curl = c.h;
    s.label = what;
    s.total = m.size;
    s.show_progress = opt.progress && ::isatty(2);
    s.start = s.last_print = std::chrono::steady_clock::now();
    curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, sink_cb);
    curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &s);
    perform(c, r);
    int close_rc = ::close(fd);
    if (s.show_progress) std::fprintf(stderr, "\n");
    if (s.write_errno != 0 || close_rc != 0) {
      int e = s.write_errno != 0 ? s.write_errno : errno;
      if (e == ENOSPC || e == EDQUOT)
        CS_THROW(kIo, part, ": disk full while downloading ", what, " (",
                 m.size >= 0 ? std::to_string(m.size / 1000000) + " MB needed" : "size unknown",
                 "); free space or set HF_HUB_CACHE to another disk");
      CS_THROW(kIo, part, ": write failed: ", std::strerror(e));
    }
    if (r.status == 416) {  // our partial file is not a prefix the server recognizes
      ::unlink(part.c_str());
      last_error = "HTTP 416";
      continue;
    }
    if (r.status >= 400) throw_http_error(r, what, opt);
    if (r.curl_code == CURLE_OK) {
      if (m.size < 0 || file_size_or(part, -1) == m.size) break;
      last_error = "size mismatch after download";
    } else {
      last_error = r.curl_error;
    }
    if (attempt < opt.max_attempts) {
      std::fprintf(stderr, "clipserve: %s: transfer interrupted (%s) at %lld bytes; resuming\n",
                   what.c_str(), last_error.c_str(), static_cast<long long>(file_size_or(part, 0)));
      std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    }
  }
  int64_t got = file_size_or(part, -1);
  if (m.size >= 0 && got != m.size) {
    CS_THROW(kUnavailable, what, ": download incomplete after ", opt.max_attempts, " attempts (",
             got, " of ", m.size, " bytes; last error: ", last_error,
             "). Run the command again to resume.");
  }
  // Verify against the hash the hub gave: LFS files carry their sha256, git files their
  // git blob sha1. A mismatch removes the file so the next run starts clean.
  std::string want = m.etag;
  for (auto& ch : want) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (is_hex(want, 64) || is_hex(want, 40)) {
    std::string have = file_digest(part, want.size() == 40);
    if (have != want) {
      ::unlink(part.c_str());
      CS_THROW(kIo, what, ": checksum mismatch: the hub says ",
               want.size() == 64 ? "sha256 " : "git sha1 ", want, ", the downloaded file has ",
               have, " (removed; run again to retry)");
    }
  }
  if (::rename(part.c_str(), blob.c_str()) != 0)
    CS_THROW(kIo, blob, ": rename failed: ", std::strerror(errno));
}

}  // namespace

HubOptions hub_options_from_env() {
  HubOptions o;
  o.endpoint = env_or("HF_ENDPOINT", o.endpoint);
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  std::string home = env_or("HOME", "/tmp");
  std::string hf_home =
      env_or("HF_HOME", env_or("XDG_CACHE_HOME", home + "/.cache") + "/huggingface");
  o.cache_dir = env_or("HF_HUB_CACHE", env_or("HUGGINGFACE_HUB_CACHE", hf_home + "/hub"));
  o.token = env_or("HF_TOKEN", env_or("HUGGING_FACE_HUB_TOKEN", ""));
  if (o.token.empty()) {
    std::string token_path = env_or("HF_TOKEN_PATH", hf_home + "/token");
    std::error_code ec;
    if (fs::is_regular_file(token_path, ec)) {
      try {
        o.token = trim(read_file_text(token_path));
      } catch (const Error&) {
      }
    }
  }
  o.offline = env_truthy("HF_HUB_OFFLINE");
  return o;
}

uint64_t hub_request_count() { return g_requests.load(); }

std::string hub_repo_cache_dir(const std::string& cache_dir, const std::string& repo_id) {
  std::string folder = "models--";
  for (char c : repo_id) folder += c == '/' ? std::string("--") : std::string(1, c);
  return (fs::path(cache_dir) / folder).string();
}

std::optional<HubFile> hub_cached_file(const std::string& repo_id, const std::string& filename,
                                       const std::string& revision, const HubOptions& opt) {
  check_repo_id(repo_id);
  check_filename(filename);
  check_revision(revision);
  std::string repo_dir = hub_repo_cache_dir(opt.cache_dir, repo_id);
  std::string commit = revision;
  if (!is_hex(revision, 40)) {
    std::string ref = repo_dir + "/refs/" + revision;
    std::error_code ec;
    if (!fs::is_regular_file(ref, ec)) return std::nullopt;
    try {
      commit = trim(read_file_text(ref));
    } catch (const Error&) {
      return std::nullopt;
    }
    if (commit.empty() || commit.find('/') != std::string::npos) return std::nullopt;
  }
  fs::path p = fs::path(repo_dir) / "snapshots" / commit / filename;
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;  // follows the link: the blob must exist
  return HubFile{p.string(), commit, false};
}

bool hub_known_missing(const std::string& repo_id, const std::string& filename,
                       const std::string& revision, const HubOptions& opt) {
  std::string repo_dir = hub_repo_cache_dir(opt.cache_dir, repo_id);
  std::string commit = revision;
  if (!is_hex(revision, 40)) {
    std::error_code ec;
    if (!fs::is_regular_file(repo_dir + "/refs/" + revision, ec)) return false;
    try {
      commit = trim(read_file_text(repo_dir + "/refs/" + revision));
    } catch (const Error&) {
      return false;
    }
  }
  std::error_code ec;
  return !commit.empty() && commit.find('/') == std::string::npos &&
         fs::exists(fs::path(repo_dir) / ".no_exist" / commit / filename, ec);
}

HubFile hub_download(const std::string& repo_id, const std::string& filename,
                     const std::string& revision, const HubOptions& opt) {
  check_repo_id(repo_id);
  check_filename(filename);
  check_revision(revision);
  const std::string what = repo_id + "/" + filename + (revision == "main" ? "" : "@" + revision);
  auto cached = hub_cached_file(repo_id, filename, revision, opt);
  if (!cached && !opt.check_remote && hub_known_missing(repo_id, filename, revision, opt)) {
    CS_THROW(kNotFound, what, ": not in the repository (cached answer from ", opt.endpoint,
             "; `pull --refresh` asks again)");
  }
  if (opt.offline) {
    if (cached) return *cached;
    CS_THROW(kUnavailable, what, ": not in the local cache ", opt.cache_dir,
             " and HF_HUB_OFFLINE is set (unset it to download)");
  }
  if (cached && !opt.check_remote) return *cached;
  ensure_curl();
  const std::string url = opt.endpoint + "/" + repo_id + "/resolve/" + url_path_encode(revision) +
                          "/" + url_path_encode(filename);
  const std::string repo_dir = hub_repo_cache_dir(opt.cache_dir, repo_id);
  Metadata m;
  try {
    std::string missing_commit;
    try {
      m = head_metadata(url, opt, what, &missing_commit);
    } catch (const Error&) {
      // Remember "no such file at this commit" (huggingface_hub's .no_exist markers), so
      // optional files and format fallbacks cost no request on the next run.
      if (is_hex(missing_commit, 40)) {
        std::error_code e2;
        fs::path marker = fs::path(repo_dir) / ".no_exist" / missing_commit / filename;
        fs::create_directories(marker.parent_path(), e2);
        if (!e2) {
          write_text_atomic(marker.string(), "");
          if (revision != missing_commit) {
            fs::create_directories(fs::path(repo_dir) / "refs", e2);
            write_text_atomic(repo_dir + "/refs/" + revision, missing_commit);
          }
        }
      }
      throw;
    }
  } catch (const Error& e) {
    // Like huggingface_hub: an unreachable hub falls back to the cache.
    if (cached && e.code() == ErrorCode::kUnavailable) {
      std::fprintf(stderr, "clipserve: %s; using the cached copy\n", e.what());
      return *cached;
    }
    throw;
  }
  std::error_code ec;
  fs::create_directories(repo_dir + "/blobs", ec);
  if (ec) CS_THROW(kIo, repo_dir, "/blobs: cannot create: ", ec.message());
  const std::string blob = repo_dir + "/blobs/" + m.etag;
  auto complete = [&] {
    std::error_code e2;
    return fs::is_regular_file(blob, e2) && (m.size < 0 || file_size_or(blob, -1) == m.size);
  };
  bool downloaded = false;
  if (!complete()) {
    // One writer per blob, across processes: the lock file huggingface_hub uses too
    // (<cache>/.locks/models--ORG--NAME/<etag>.lock, flock), so we also cooperate with it.
    const fs::path lock_dir = fs::path(opt.cache_dir) / ".locks" / fs::path(repo_dir).filename();
    fs::create_directories(lock_dir, ec);
    const std::string lock_path = (lock_dir / (m.etag + ".lock")).string();
    int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) CS_THROW(kIo, lock_path, ": cannot create lock file: ", std::strerror(errno));
    while (::flock(lock_fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    try {
      if (!complete()) {  // another process may have finished it while we waited
        download_blob(m, blob, what, opt);
        downloaded = true;
      }
    } catch (...) {
      ::close(lock_fd);
      throw;
    }
    ::close(lock_fd);
  }
  link_snapshot(repo_dir, m.commit, filename, m.etag);
  if (revision != m.commit) {
    fs::create_directories(fs::path(repo_dir) / "refs" / fs::path(revision).parent_path(), ec);
    write_text_atomic(repo_dir + "/refs/" + revision, m.commit);
  }
  return HubFile{(fs::path(repo_dir) / "snapshots" / m.commit / filename).string(), m.commit,
                 downloaded};
}

}  // namespace clipserve

// Tests of the hub client against an in-process HTTP server that behaves like the Hugging
// Face hub: resolve URLs, X-Repo-Commit / X-Linked-Etag / ETag headers, CDN redirects for
// LFS files, Range requests. It can drop the connection mid-file, corrupt content, demand a
// token and count requests, so resume, checksum, offline and cache reuse are all exercised.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "clipserve/error.h"
#include "core/file.h"
#include "model/hub.h"
#include "model/hub_names.h"
#include "model/layout.h"
#include "model/model_dir.h"
#include "model/synthetic.h"
#include "testing.h"

namespace clipserve {
namespace {

namespace fs = std::filesystem;

std::string git_sha1(const std::string& data) {
  std::string blob = "blob " + std::to_string(data.size());
  blob.push_back('\0');
  return test::digest_hex(blob + data, EVP_sha1());
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.name = "tiny";
  c.embed_dim = 32;
  c.vision = {64, 32, 64, 1, 32, 4.0f};
  c.text = {77, 1000, 64, 2, 1, 4.0f};
  return c;
}

// A minimal hub: one connection per request (Connection: close), enough HTTP/1.1 for curl.
class FakeHub {
 public:
  struct File {
    std::string content;
    bool lfs = false;    // served through a CDN redirect with X-Linked-Etag
    std::string etag;    // what the hub claims (sha256 or git sha1)
    std::string served;  // what it actually sends (differs to test checksums)
  };
  std::string commit = "0123456789abcdef0123456789abcdef01234567";
  std::map<std::string, std::map<std::string, File>> repos;  // repo -> file -> content
  std::map<std::string, std::string> renamed;  // old repo id -> new (relative 307 redirect)
  std::string required_token;                  // non-empty: repos need "Authorization: Bearer <it>"
  std::atomic<int64_t> drop_after{-1};         // next CDN body stops after this many bytes
  std::atomic<int> requests{0};
  std::mutex mu;
  std::vector<std::string> log;  // "METHOD path range"

  FakeHub() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0)
      std::abort();
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeHub() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void add(const std::string& repo, const std::string& name, const std::string& content, bool lfs) {
    File f;
    f.content = f.served = content;
    f.lfs = lfs;
    f.etag = lfs ? test::digest_hex(content, EVP_sha256()) : git_sha1(content);
    repos[repo][name] = f;
  }
  std::vector<std::string> take_log() {
    std::lock_guard<std::mutex> l(mu);
    auto r = log;
    log.clear();
    return r;
  }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      handle(c);
      ::close(c);
    }
  }

  static void send_all(int c, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  void respond(int c, int status, const std::string& reason,
               const std::vector<std::pair<std::string, std::string>>& headers,
               const std::string& body, bool head, int64_t drop = -1) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    bool has_len = false;
    for (const auto& [k, v] : headers) {
      h += k + ": " + v + "\r\n";
      has_len = has_len || k == "Content-Length";
    }
    if (!has_len) h += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    h += "Connection: close\r\n\r\n";
    send_all(c, h);
    if (head) return;
    if (drop >= 0 && drop < int64_t(body.size())) {
      send_all(c, body.substr(0, static_cast<size_t>(drop)));
      return;  // connection closes mid-body
    }
    send_all(c, body);
  }

  void handle(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    ++requests;
    std::string method = req.substr(0, req.find(' '));
    size_t p1 = req.find(' ') + 1;
    std::string path = req.substr(p1, req.find(' ', p1) - p1);
    std::map<std::string, std::string> hdr;
    size_t pos = req.find("\r\n") + 2;
    while (pos < req.size()) {
      size_t end = req.find("\r\n", pos);
      if (end == pos || end == std::string::npos) break;
      std::string line = req.substr(pos, end - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string k = line.substr(0, colon);
        for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        hdr[k] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      pos = end + 2;
    }
    {
      std::lock_guard<std::mutex> l(mu);
      log.push_back(method + " " + path + (hdr.count("range") ? " " + hdr["range"] : ""));
    }
    const bool head = method == "HEAD";
    if (path.rfind("/cdn/", 0) == 0) {  // the CDN: no token, Range support
      std::string sha = path.substr(5);
      for (auto& [repo, files] : repos) {
        for (auto& [name, f] : files) {
          if (f.etag != sha) continue;
          const std::string& body = f.served;
          int64_t drop = drop_after.exchange(-1);
          if (hdr.count("range")) {
            int64_t start = std::atoll(hdr["range"].c_str() + 6);  // "bytes=N-"
            if (start >= int64_t(body.size())) {
              respond(c, 416, "Range Not Satisfiable", {}, "", head);
              return;
            }
            std::string part = body.substr(static_cast<size_t>(start));
            respond(c, 206, "Partial Content",
                    {{"Content-Range", "bytes " + std::to_string(start) + "-" +
                                           std::to_string(body.size() - 1) + "/" +
                                           std::to_string(body.size())}},
                    part, head, drop);
            return;
          }
          respond(c, 200, "OK", {}, body, head, drop);
          return;
        }
      }
      respond(c, 404, "Not Found", {}, "", head);
      return;
    }
    // /ORG/NAME/resolve/REV/FILE
    size_t r = path.find("/resolve/");
    if (r == std::string::npos) {
      respond(c, 404, "Not Found", {}, "", head);
      return;
    }
    std::string repo = path.substr(1, r - 1);
    std::string rest = path.substr(r + 9);
    if (auto ren = renamed.find(repo); ren != renamed.end()) {
      respond(c, 307, "Temporary Redirect", {{"Location", "/" + ren->second + "/resolve/" + rest}},
              "", head);
      return;
    }
    std::string file = rest.substr(rest.find('/') + 1);
    auto it = repos.find(repo);
    if (it == repos.end()) {
      respond(c, 404, "Not Found", {{"X-Error-Code", "RepoNotFound"}}, "", head);
      return;
    }
    if (!required_token.empty() && hdr["authorization"] != "Bearer " + required_token) {
      respond(c, 401, "Unauthorized", {{"X-Error-Code", "GatedRepo"}}, "", head);
      return;
    }
    auto f = it->second.find(file);
    if (f == it->second.end()) {
      respond(c, 404, "Not Found", {{"X-Error-Code", "EntryNotFound"}, {"X-Repo-Commit", commit}},
              "", head);
      return;
    }
    const File& fl = f->second;
    if (fl.lfs) {
      respond(c, 302, "Found",
              {{"Location", endpoint() + "/cdn/" + fl.etag},
               {"X-Repo-Commit", commit},
               {"X-Linked-Etag", "\"" + fl.etag + "\""},
               {"X-Linked-Size", std::to_string(fl.content.size())},
               {"ETag", "\"" + git_sha1("pointer") + "\""}},
              "", head);
    } else {
      respond(c, 200, "OK", {{"X-Repo-Commit", commit}, {"ETag", "\"" + fl.etag + "\""}}, fl.served,
              head);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct HubFixture : ::testing::Test {
  FakeHub hub;
  HubOptions opt;
  std::string model_dir;
  std::string weights, config;

  void SetUp() override {
    model_dir = test::temp_dir() + "/src";
    write_synthetic_model(tiny_config(), 11, model_dir);
    weights = read_file_text(model_dir + "/open_clip_model.safetensors");
    config = read_file_text(model_dir + "/open_clip_config.json");
    hub.add("org/tiny", "open_clip_config.json", config, false);
    hub.add("org/tiny", "open_clip_model.safetensors", weights, true);
    opt.endpoint = hub.endpoint();
    opt.cache_dir = test::temp_dir() + "/cache";
    opt.progress = false;
    opt.connect_timeout_s = 5;
    opt.stall_timeout_s = 10;
  }
};

TEST_F(HubFixture, DownloadsIntoHfCacheLayout) {
  HubFile f = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  EXPECT_TRUE(f.downloaded);
  EXPECT_EQ(f.commit, hub.commit);
  const std::string repo = opt.cache_dir + "/models--org--tiny";
  const std::string sha = hub.repos["org/tiny"]["open_clip_model.safetensors"].etag;
  EXPECT_EQ(f.path, repo + "/snapshots/" + hub.commit + "/open_clip_model.safetensors");
  EXPECT_TRUE(fs::is_symlink(f.path));
  EXPECT_EQ(fs::read_symlink(f.path).string(), "../../blobs/" + sha);
  EXPECT_EQ(read_file_text(repo + "/blobs/" + sha), weights);
  EXPECT_EQ(read_file_text(repo + "/refs/main"), hub.commit);
  EXPECT_FALSE(fs::exists(repo + "/blobs/" + sha + ".incomplete"));
  // HEAD on the resolve URL (redirect not followed), then GET through the redirect.
  auto log = hub.take_log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], "HEAD /org/tiny/resolve/main/open_clip_model.safetensors");
  EXPECT_EQ(log[1], "GET /cdn/" + sha);
  // A git-tracked file (no redirect) is verified against its git blob sha1.
  HubFile c = hub_download("org/tiny", "open_clip_config.json", "main", opt);
  EXPECT_EQ(read_file_text(c.path), config);
}

TEST_F(HubFixture, FollowsRelativeRedirectsOfRenamedRepositories) {
  hub.renamed["org/old-name"] = "org/tiny";
  HubFile f = hub_download("org/old-name", "open_clip_model.safetensors", "main", opt);
  EXPECT_EQ(read_file_text(f.path), weights);
  EXPECT_NE(f.path.find("models--org--old-name"), std::string::npos) << f.path;
  auto log = hub.take_log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0], "HEAD /org/old-name/resolve/main/open_clip_model.safetensors");
  EXPECT_EQ(log[1], "HEAD /org/tiny/resolve/main/open_clip_model.safetensors");
}

TEST_F(HubFixture, ConcurrentDownloadsOfOneBlobFetchItOnce) {
  // Both callers HEAD; the blob lock lets one download while the other waits and reuses it.
  std::vector<std::string> paths(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      paths[i] = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt).path;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& p : paths) EXPECT_EQ(read_file_text(p), weights);
  int gets = 0;
  for (const auto& line : hub.take_log()) gets += line.rfind("GET /cdn/", 0) == 0;
  EXPECT_EQ(gets, 1);
  EXPECT_TRUE(fs::exists(opt.cache_dir + "/.locks/models--org--tiny"));
}

TEST_F(HubFixture, SecondRunMakesNoRequest) {
  hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  int before = hub.requests.load();
  uint64_t client_before = hub_request_count();
  HubFile again = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  EXPECT_FALSE(again.downloaded);
  EXPECT_EQ(hub.requests.load(), before);
  EXPECT_EQ(hub_request_count(), client_before);
  // --refresh asks the hub (one HEAD) but does not download the blob again.
  opt.check_remote = true;
  HubFile refreshed = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  EXPECT_FALSE(refreshed.downloaded);
  EXPECT_EQ(hub.requests.load(), before + 1);
}

TEST_F(HubFixture, ResumesAfterTheServerDropsTheConnection) {
  hub.drop_after = static_cast<int64_t>(weights.size() / 3);
  HubFile f = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  EXPECT_EQ(read_file_text(f.path), weights);
  auto log = hub.take_log();
  ASSERT_EQ(log.size(), 3u);  // HEAD, GET (dropped), GET with Range from where it stopped
  const std::string sha = hub.repos["org/tiny"]["open_clip_model.safetensors"].etag;
  EXPECT_EQ(log[1], "GET /cdn/" + sha);
  EXPECT_EQ(log[2], "GET /cdn/" + sha + " bytes=" + std::to_string(weights.size() / 3) + "-");
}

TEST_F(HubFixture, ResumesAPartialFileLeftByAKilledRun) {
  const std::string sha = hub.repos["org/tiny"]["open_clip_model.safetensors"].etag;
  const std::string blobs = opt.cache_dir + "/models--org--tiny/blobs";
  fs::create_directories(blobs);
  {
    std::string half = weights.substr(0, 1000);
    write_file_atomic(blobs + "/" + sha + ".incomplete",
                      {reinterpret_cast<const uint8_t*>(half.data()), half.size()});
  }
  // A killed run leaves only the .incomplete file: nothing looks complete.
  EXPECT_FALSE(hub_cached_file("org/tiny", "open_clip_model.safetensors", "main", opt));
  HubFile f = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  EXPECT_EQ(read_file_text(f.path), weights);
  auto log = hub.take_log();
  EXPECT_EQ(log.back(), "GET /cdn/" + sha + " bytes=1000-");
}

TEST_F(HubFixture, ChecksumMismatchIsRejectedAndRemoved) {
  auto& f = hub.repos["org/tiny"]["open_clip_model.safetensors"];
  f.served[f.served.size() / 2] ^= 0x01;
  try {
    hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
    FAIL() << "accepted a corrupted download";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(f.etag), std::string::npos) << e.what();
  }
  const std::string blobs = opt.cache_dir + "/models--org--tiny/blobs/";
  EXPECT_FALSE(fs::exists(blobs + f.etag));
  EXPECT_FALSE(fs::exists(blobs + f.etag + ".incomplete"));
  EXPECT_FALSE(hub_cached_file("org/tiny", "open_clip_model.safetensors", "main", opt));
  // A corrupted git-tracked file too.
  auto& c = hub.repos["org/tiny"]["open_clip_config.json"];
  c.served[0] = '[';
  EXPECT_THROW(hub_download("org/tiny", "open_clip_config.json", "main", opt), Error);
}

TEST_F(HubFixture, OfflineModeUsesOnlyTheCache) {
  opt.offline = true;
  try {
    hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("HF_HUB_OFFLINE"), std::string::npos) << e.what();
  }
  EXPECT_EQ(hub.requests.load(), 0);
  opt.offline = false;
  hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  int before = hub.requests.load();
  opt.offline = true;
  opt.check_remote = true;  // offline wins over --refresh
  HubFile f = hub_download("org/tiny", "open_clip_model.safetensors", "main", opt);
  EXPECT_EQ(read_file_text(f.path), weights);
  EXPECT_EQ(hub.requests.load(), before);
}

TEST_F(HubFixture, ClearErrorsForMissingRepoFileTokenAndNetwork) {
  try {
    hub_download("org/nope", "open_clip_model.safetensors", "main", opt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("org/nope"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("RepoNotFound"), std::string::npos) << e.what();
  }
  EXPECT_THROW(hub_download("org/tiny", "missing.bin", "main", opt), Error);
  hub.required_token = "secret";
  try {
    hub_download("org/tiny", "open_clip_config.json", "main", opt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HF_TOKEN"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
  }
  opt.token = "secret";
  EXPECT_NO_THROW(hub_download("org/tiny", "open_clip_config.json", "main", opt));
  EXPECT_NO_THROW(hub_download("org/tiny", "open_clip_model.safetensors", "main", opt));
  HubOptions dead = opt;
  dead.endpoint = "http://127.0.0.1:1";  // nothing listens there
  dead.cache_dir = test::temp_dir();
  try {
    hub_download("org/tiny", "open_clip_config.json", "main", dead);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("cannot reach"), std::string::npos) << e.what();
  }
  EXPECT_THROW(hub_download("../etc", "x", "main", opt), Error);
  EXPECT_THROW(hub_download("org/tiny", "../x", "main", opt), Error);
}

TEST_F(HubFixture, LoadModelFromHfHubName) {
  LoadedModel m = load_model("hf-hub:org/tiny", opt);
  EXPECT_TRUE(m.config == tiny_config());
  WeightMap want = synthetic_weights(tiny_config(), 11);
  for (const auto& name : want.names()) {
    ASSERT_TRUE(m.weights.contains(name)) << name;
    EXPECT_EQ(std::memcmp(m.weights.at(name).data, want.at(name).data, want.at(name).numel() * 4),
              0)
        << name;
  }
  // Cached: loading again makes no request, offline too.
  int before = hub.requests.load();
  opt.offline = true;
  LoadedModel again = load_model("hf-hub:org/tiny", opt);
  EXPECT_EQ(hub.requests.load(), before);
}

TEST_F(HubFixture, LoadsATransformersRepositoryByHfHubName) {
  std::string hf_dir = test::temp_dir() + "/hf";
  auto [rc, out] = test::run_command(test::cli_path() + " convert " + model_dir +
                                     " --to hf --out " + hf_dir + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  hub.add("openai/tiny-clip", "config.json", read_file_text(hf_dir + "/config.json"), false);
  hub.add("openai/tiny-clip", "preprocessor_config.json",
          read_file_text(hf_dir + "/preprocessor_config.json"), false);
  hub.add("openai/tiny-clip", "model.safetensors", read_file_text(hf_dir + "/model.safetensors"),
          true);
  LoadedModel m = load_model("hf-hub:openai/tiny-clip", opt);
  EXPECT_TRUE(m.config == tiny_config());
  WeightMap want = synthetic_weights(tiny_config(), 11);
  for (const auto& name : want.names()) {
    EXPECT_EQ(std::memcmp(m.weights.at(name).data, want.at(name).data, want.at(name).numel() * 4),
              0)
        << name;
  }
}

TEST_F(HubFixture, LoadModelDirAcceptsNamesWithEnvironmentOptions) {
  ::setenv("HF_ENDPOINT", opt.endpoint.c_str(), 1);
  ::setenv("HF_HUB_CACHE", opt.cache_dir.c_str(), 1);
  LoadedModel m = load_model_dir("hf-hub:org/tiny");
  ::unsetenv("HF_ENDPOINT");
  ::unsetenv("HF_HUB_CACHE");
  EXPECT_TRUE(m.config == tiny_config());
  EXPECT_TRUE(fs::exists(opt.cache_dir + "/models--org--tiny/refs/main"));
}

TEST_F(HubFixture, PretrainedTagUsesTableRepoConfigAndTorchFallback) {
  // ViT-B-32/openai lives in timm/vit_base_patch32_clip_224.openai with QuickGELU. Serve only
  // the torch .bin there: the resolver falls back to it after the safetensors 404.
  std::string bin_dir = test::temp_dir() + "/bin";
  auto [rc, out] = test::run_command(test::cli_path() + " convert " + model_dir +
                                     " --to open_clip_torch --out " + bin_dir + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  hub.add("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin",
          read_file_text(bin_dir + "/open_clip_pytorch_model.bin"), true);
  ResolvedModel r = resolve_model("ViT-B-32/openai", opt);
  ASSERT_TRUE(r.config.has_value());
  EXPECT_TRUE(r.config->quick_gelu);
  EXPECT_EQ(r.config->vision.patch_size, 32);
  EXPECT_EQ(r.config->vision.width, 768);
  EXPECT_TRUE(fs::exists(r.dir + "/open_clip_pytorch_model.bin"));
  EXPECT_EQ(detect_model_format(r.dir), ModelFormat::kOpenClipTorch);
  // The 404 for the safetensors is remembered (.no_exist, as huggingface_hub does): the next
  // resolution makes no request at all.
  EXPECT_TRUE(fs::exists(opt.cache_dir +
                         "/models--timm--vit_base_patch32_clip_224.openai/.no_exist/" + hub.commit +
                         "/open_clip_model.safetensors"));
  int before = hub.requests.load();
  ResolvedModel again = resolve_model("ViT-B-32/openai", opt);
  EXPECT_EQ(again.dir, r.dir);
  EXPECT_EQ(hub.requests.load(), before);
  // --refresh asks again (and still falls back).
  HubOptions refresh = opt;
  refresh.check_remote = true;
  EXPECT_EQ(resolve_model("ViT-B-32/openai", refresh).dir, r.dir);
  EXPECT_GT(hub.requests.load(), before);
  // The tiny weights are not ViT-B-32's: loading names the first mismatching tensor.
  try {
    load_model_dir(r.dir, r.config);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("open_clip_pytorch_model.bin"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("positional_embedding"), std::string::npos) << e.what();
  }
}

TEST_F(HubFixture, PullCommandDownloadsOnceAndPrintsTheDirectory) {
  std::string env = "HF_ENDPOINT=" + opt.endpoint + " HF_HUB_CACHE=" + opt.cache_dir + " ";
  auto [rc, out] = test::run_command(env + test::cli_path() + " pull hf-hub:org/tiny 2>/dev/null");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("/models--org--tiny/snapshots/" + hub.commit), std::string::npos) << out;
  int before = hub.requests.load();
  auto [rc2, out2] = test::run_command(env + test::cli_path() + " pull hf-hub:org/tiny 2>&1");
  EXPECT_EQ(rc2, 0) << out2;
  EXPECT_EQ(hub.requests.load(), before);
  auto [rc3, out3] = test::run_command("HF_HUB_OFFLINE=1 " + env + test::cli_path() +
                                       " pull hf-hub:org/other 2>&1");
  EXPECT_NE(rc3, 0);
  EXPECT_NE(out3.find("HF_HUB_OFFLINE"), std::string::npos) << out3;
}

TEST(HubOptions, ReadFromEnvironment) {
  ::setenv("HF_ENDPOINT", "https://mirror.example/", 1);
  ::setenv("HF_HOME", "/tmp/hfhome", 1);
  ::unsetenv("HF_HUB_CACHE");
  ::setenv("HF_TOKEN", "tok", 1);
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  HubOptions o = hub_options_from_env();
  EXPECT_EQ(o.endpoint, "https://mirror.example");
  EXPECT_EQ(o.cache_dir, "/tmp/hfhome/hub");
  EXPECT_EQ(o.token, "tok");
  EXPECT_TRUE(o.offline);
  ::setenv("HF_HUB_CACHE", "/tmp/hc", 1);
  ::setenv("HF_HUB_OFFLINE", "0", 1);
  o = hub_options_from_env();
  EXPECT_EQ(o.cache_dir, "/tmp/hc");
  EXPECT_FALSE(o.offline);
  for (const char* v : {"HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE"})
    ::unsetenv(v);
  EXPECT_EQ(hub_repo_cache_dir("/c", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
            "/c/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K");
}

TEST(ModelNames, ParsesTagsHubNamesAndDirectories) {
  ModelSource a = parse_model_name("ViT-B-32/laion2b_s34b_b79k");
  EXPECT_EQ(a.kind, ModelSource::Kind::kPretrained);
  EXPECT_EQ(a.repo_id, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K");
  EXPECT_FALSE(a.pretrained.quick_gelu);
  ModelSource b = parse_model_name("ViT-L-14:OpenAI");  // open_clip's ':' form, tag normalized
  EXPECT_EQ(b.repo_id, "timm/vit_large_patch14_clip_224.openai");
  EXPECT_TRUE(b.pretrained.quick_gelu);
  EXPECT_TRUE(parse_model_name("ViT-B-32-quickgelu/laion400m-e32").pretrained.quick_gelu);
  ModelSource l = parse_model_name("ViT-L-14/laion2b_s32b_b82k");
  ASSERT_TRUE(l.pretrained.mean.has_value());
  EXPECT_EQ((*l.pretrained.mean)[0], 0.5f);
  EXPECT_EQ(parse_model_name("ViT-L-14-336/openai").repo_id,
            "timm/vit_large_patch14_clip_336.openai");
  ModelSource h = parse_model_name("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K@abc");
  EXPECT_EQ(h.kind, ModelSource::Kind::kHubRepo);
  EXPECT_EQ(h.revision, "abc");
  std::string dir = test::temp_dir();
  EXPECT_EQ(parse_model_name(dir).kind, ModelSource::Kind::kLocalDir);
  try {
    parse_model_name("ViT-B-32/nonsense");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("laion2b_s34b_b79k"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_model_name("RN50/openai"), Error);
  EXPECT_THROW(parse_model_name("hf-hub:noslash"), Error);
  // Every architecture of the table is a built-in one, every repo id is ORG/NAME.
  for (const auto& t : pretrained_tags()) {
    EXPECT_NO_THROW(builtin_model_config(t.arch)) << t.arch;
    EXPECT_EQ(std::count(t.repo_id.begin(), t.repo_id.end(), '/'), 1) << t.repo_id;
  }
}

}  // namespace
}  // namespace clipserve

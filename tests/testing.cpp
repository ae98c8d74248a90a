// Implementation of the shared test helpers.
#include "testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "core/digest.h"

namespace clipserve::test {

namespace fs = std::filesystem;

std::string data_dir() { return CLIPSERVE_TEST_DATA; }

std::optional<std::string> shared_fixtures() {
  if (const char* env = std::getenv("CLIPSERVE_SHARED")) {
    fs::path p = fs::path(env) / "fixtures";
    if (fs::is_directory(p)) return p.string();
  }
  fs::path p = fs::path(CLIPSERVE_SHARED_DIR) / "fixtures";
  if (fs::is_directory(p)) return fs::canonical(p).string();
  return std::nullopt;
}

namespace {
struct TempRoot {
  fs::path path;
  ~TempRoot() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};
TempRoot g_temp_root;
}  // namespace

std::string temp_dir() {
  static int counter = 0;
  if (g_temp_root.path.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "clipserve-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    g_temp_root.path = p;
  }
  fs::path d = g_temp_root.path / std::to_string(counter++);
  fs::create_directories(d);
  return d.string();
}

std::string cli_path() { return CLIPSERVE_CLI; }

std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int status = pclose(f);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return {code, out};
}

std::string digest_hex(std::string_view data, const EVP_MD* md) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return to_hex({out, len});
}

double cosine(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = a.size() == b.size() ? 0.f : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

float max_abs(std::span<const float> a) {
  float m = 0;
  for (float x : a) m = std::max(m, std::fabs(x));
  return m;
}

int process_threads() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  ADD_FAILURE() << "no Threads: line in /proc/self/status";
  return -1;
}

int threads_left_by_callers(int n, const std::function<void()>& call) {
  const int before = process_threads();
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::vector<std::promise<void>> done(n);
  std::vector<std::thread> callers;
  for (int i = 0; i < n; ++i) {
    callers.emplace_back([&, i] {
      call();
      done[i].set_value();
      gate.wait();
    });
  }
  for (auto& d : done) d.get_future().wait();
  const int during = process_threads();
  release.set_value();
  for (auto& t : callers) t.join();
  return during - before - n;
}

}  // namespace clipserve::test

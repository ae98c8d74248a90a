// Helpers shared by the tests: data locations, skipping when ../shared is absent, comparisons.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace clipserve::test {

/// tests/data in the repo (always present).
std::string data_dir();
/// ../shared/fixtures if it exists, else nullopt.
std::optional<std::string> shared_fixtures();
/// A fresh empty temporary directory, removed at process exit.
std::string temp_dir();
/// Path to the built clipserve CLI binary.
std::string cli_path();
/// Runs a shell command, returns {exit status, stdout}.
std::pair<int, std::string> run_command(const std::string& cmd);

/// Lowercase hex digest of `data` (OpenSSL `md`, e.g. EVP_sha256()): the checksums the hub
/// and the synthetic-weight goldens use.
std::string digest_hex(std::string_view data, const EVP_MD* md);

double cosine(std::span<const float> a, std::span<const float> b);
float max_abs_diff(std::span<const float> a, std::span<const float> b);
float max_abs(std::span<const float> a);

/// The process's OS threads now (/proc/self/status), e.g. to count OpenMP pools.
int process_threads();

/// Runs `call` on `n` new threads at once and returns how many OS threads the process had
/// while they were all still alive after their calls, minus those n: the threads the calls
/// left behind (each caller thread that opens its own OpenMP pool leaves its workers).
int threads_left_by_callers(int n, const std::function<void()>& call);

}  // namespace clipserve::test

/// Skips the current test (with a message in the output) when ../shared is missing.
#define CS_REQUIRE_SHARED(var)                                          \
  auto var##_opt = ::clipserve::test::shared_fixtures();                \
  if (!var##_opt)                                                       \
    GTEST_SKIP() << "../shared/fixtures not found: skipping (it holds " \
                    "the larger golden sets)";                          \
  const std::string var = *var##_opt

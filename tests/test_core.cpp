// Tests of src/core: .npy round trips and malformed input, argument parsing, file errors, the
// compute thread (one thread, priorities, errors, re-entry).
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "cli/command.h"
#include "clipserve/error.h"
#include "core/check.h"
#include "core/compute_thread.h"
#include "core/file.h"
#include "core/npy.h"
#include "testing.h"

namespace clipserve {
namespace {

TEST(Npy, RoundTrip) {
  std::vector<float> v = {1.5f, -2.f, 3.25f, 0.f, 7.f, 8.f};
  std::string path = test::temp_dir() + "/a.npy";
  write_npy_f32(path, v, {2, 3});
  NpyArray a = read_npy(path);
  EXPECT_EQ(a.dtype, "<f4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.to_f32(), v);
  EXPECT_EQ((std::filesystem::file_size(path) - 6 * 4) % 64, 0u);  // header aligned to 64
}

TEST(Npy, RejectsTruncatedAndGarbage) {
  std::vector<float> v(12, 1.f);
  auto bytes = encode_npy_f32(v, {3, 4});
  for (size_t cut : {size_t(0), size_t(5), size_t(20), bytes.size() - 1}) {
    std::span<const uint8_t> s(bytes.data(), cut);
    EXPECT_THROW(parse_npy(s, "x.npy"), Error) << cut;
  }
  std::vector<uint8_t> junk(100, 'a');
  EXPECT_THROW(parse_npy(junk, "junk"), Error);
}

TEST(File, MissingFileNamesPath) {
  try {
    MappedFile f("/nonexistent/file.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.bin"), std::string::npos);
  }
}

TEST(Args, ParsesOptionsFlagsAndLists) {
  cli::Args a;
  a.option("model").option("batch").flag("raw");
  const char* argv[] = {"embed", "--model", "m", "--batch=1,16", "--raw", "x.npy", "--", "--y"};
  a.parse(8, const_cast<char**>(argv));
  EXPECT_EQ(a.get_or("model", ""), "m");
  EXPECT_TRUE(a.has("raw"));
  EXPECT_EQ(a.get_int_list("batch", {}), (std::vector<int>{1, 16}));
  EXPECT_EQ(a.positional(), (std::vector<std::string>{"x.npy", "--y"}));
  cli::Args b;
  const char* bad[] = {"x", "--nope"};
  EXPECT_THROW(b.parse(2, const_cast<char**>(bad)), Error);
}

TEST(ComputeThread, OneThreadErrorsReachTheCaller) {
  if (!compute_thread_enabled()) GTEST_SKIP() << "CLIPSERVE_COMPUTE_THREAD=off";
  std::thread::id first, second;
  run_on_compute_thread([&] { first = std::this_thread::get_id(); });
  std::thread([&] { run_on_compute_thread([&] { second = std::this_thread::get_id(); }); }).join();
  EXPECT_EQ(first, second);
  EXPECT_NE(first, std::this_thread::get_id());
  EXPECT_FALSE(on_compute_thread());
  bool inside = false, nested = false;
  run_on_compute_thread([&] {
    inside = on_compute_thread();
    run_on_compute_thread([&] { nested = true; });  // runs at once: no deadlock
  });
  EXPECT_TRUE(inside);
  EXPECT_TRUE(nested);
  try {
    run_on_compute_thread([] { CS_CHECK_ARG(false, "bad shape ", 3); });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad shape 3"), std::string::npos) << e.what();
  }
  run_on_compute_thread([] {});  // still serving after an error
}

TEST(ComputeThread, HighPriorityCallsStartFirst) {
  if (!compute_thread_enabled()) GTEST_SKIP() << "CLIPSERVE_COMPUTE_THREAD=off";
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::mutex mu;
  std::vector<std::string> order;
  auto record = [&](const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(s);
  };
  // The compute thread is held by a blocking call while the others queue up behind it.
  std::promise<void> running;
  std::thread blocker([&] {
    run_on_compute_thread([&] {
      running.set_value();
      gate.wait();
    });
  });
  running.get_future().wait();
  std::vector<std::thread> callers;
  auto queue = [&](const std::string& name, ComputePriority p, int waiting) {
    callers.emplace_back([&record, name, p] { run_on_compute_thread([&] { record(name); }, p); });
    while (compute_thread_waiting() < waiting) std::this_thread::yield();
  };
  queue("image 1", ComputePriority::kNormal, 1);
  queue("image 2", ComputePriority::kNormal, 2);
  queue("text 1", ComputePriority::kHigh, 3);
  queue("text 2", ComputePriority::kHigh, 4);
  release.set_value();
  blocker.join();
  for (auto& t : callers) t.join();
  EXPECT_EQ(order, (std::vector<std::string>{"text 1", "text 2", "image 1", "image 2"}));
}

}  // namespace
}  // namespace clipserve

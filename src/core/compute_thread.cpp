// The process's compute thread (compute_thread.h): two FIFO queues by priority, one thread.
#include "core/compute_thread.h"

#include <pthread.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace clipserve {

namespace {

thread_local bool t_on_compute = false;

struct ComputeThread {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::packaged_task<void()>> high, normal;
  bool started = false;

  void loop() {
    t_on_compute = true;
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !high.empty() || !normal.empty(); });
        auto& q = high.empty() ? normal : high;
        task = std::move(q.front());
        q.pop_front();
      }
      task();  // an exception lands in the task's future
    }
  }

  std::future<void> post(std::packaged_task<void()> task, ComputePriority p) {
    auto f = task.get_future();
    std::lock_guard<std::mutex> lock(mu);
    if (!started) {
      // Never joined: it lives as long as the process, and engines destroyed during static
      // destruction may still call it.
      std::thread([this] { loop(); }).detach();
      started = true;
    }
    (p == ComputePriority::kHigh ? high : normal).push_back(std::move(task));
    cv.notify_one();
    return f;
  }
};

ComputeThread* g_compute = nullptr;
std::once_flag g_once;

ComputeThread& compute() {
  std::call_once(g_once, [] {
    g_compute = new ComputeThread();  // leaked on purpose (see post)
    // A forked child has no compute thread: it starts a fresh one on first use.
    pthread_atfork(nullptr, nullptr, [] {
      g_compute = new ComputeThread();
      t_on_compute = false;
    });
  });
  return *g_compute;
}

}  // namespace

bool on_compute_thread() { return t_on_compute; }

int compute_thread_waiting() {
  ComputeThread& c = compute();
  std::lock_guard<std::mutex> lock(c.mu);
  return static_cast<int>(c.high.size() + c.normal.size());
}

bool compute_thread_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("CLIPSERVE_COMPUTE_THREAD");
    return v == nullptr || std::strcmp(v, "off") != 0;
  }();
  return enabled;
}

void run_on_compute_thread(const std::function<void()>& fn, ComputePriority priority) {
  if (t_on_compute || !compute_thread_enabled()) {
    fn();
    return;
  }
  compute().post(std::packaged_task<void()>([&fn] { fn(); }), priority).get();
}

}  // namespace clipserve

// Dynamic batcher for one tower: a queue drained by one worker thread. An item that arrives
// while the tower is idle is dispatched at once; while it is busy (a batch was running when
// the items arrived, or more items of the tower are still being preprocessed upstream) items
// are coalesced up to max_batch, waiting at most max_wait_us after the oldest one arrived.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace clipserve::engine {

using Clock = std::chrono::steady_clock;

template <typename Item>
class Batcher {
 public:
  struct Entry {
    Item item;
    Clock::time_point enqueued;
  };
  /// Runs one batch (1..max_batch entries, FIFO order) on the worker thread; `started` is when
  /// the batch left the queue. It must not throw: it reports failures to the items' owners.
  using RunFn = std::function<void(std::vector<Entry>& batch, Clock::time_point started)>;

  /// `upstream` (optional) counts the tower's items still on their way (being preprocessed):
  /// while it is non-zero a queued item waits (up to max_wait_us) for them to join its batch.
  Batcher(int max_batch, int max_wait_us, RunFn run, std::function<int()> upstream = {})
      : max_batch_(std::max(1, max_batch)),
        max_wait_(std::chrono::microseconds(std::max(0, max_wait_us))),
        run_(std::move(run)),
        upstream_(std::move(upstream)),
        worker_([this] { loop(); }) {}

  /// Runs every queued item, then joins the worker.
  ~Batcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  void push(Item item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Entry{std::move(item), Clock::now()});
    }
    cv_.notify_one();
  }

  /// Wakes the worker to re-check `upstream` (an upstream item failed and will never arrive).
  void notify() {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_one();
  }

  /// Runs `fn` on the worker thread between batches and waits for it (warm-up uses this so
  /// that the thread, and its OpenMP team, that will run the real batches runs the warm-up).
  void call(std::function<void()> fn) {
    std::packaged_task<void()> task(std::move(fn));
    auto done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(std::move(task));
    }
    cv_.notify_one();
    done.get();  // rethrows what fn threw
  }

  /// Items waiting in the queue (not those being encoded).
  size_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    bool was_busy = false;  // the queue filled while a batch ran: coalesce
    auto upstream = [&] { return upstream_ ? upstream_() : 0; };
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !calls_.empty(); });
      if (!calls_.empty()) {
        auto task = std::move(calls_.front());
        calls_.pop_front();
        lock.unlock();
        task();
        lock.lock();
        continue;
      }
      if (queue_.empty()) return;  // stopping and drained
      const size_t full = static_cast<size_t>(max_batch_);
      if (!stop_ && queue_.size() < full && (was_busy || upstream() > 0)) {
        const auto deadline = queue_.front().enqueued + max_wait_;
        cv_.wait_until(lock, deadline, [&] {
          // After a busy batch the window stays open for new arrivals; otherwise it closes as
          // soon as nothing more is on its way.
          return stop_ || queue_.size() >= full || (!was_busy && upstream() == 0);
        });
      }
      const size_t n = std::min(queue_.size(), static_cast<size_t>(max_batch_));
      std::vector<Entry> batch;
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      const auto started = Clock::now();
      lock.unlock();
      run_(batch, started);
      batch.clear();  // release the items before taking the lock again
      lock.lock();
      was_busy = !queue_.empty();
    }
  }

  const int max_batch_;
  const Clock::duration max_wait_;
  RunFn run_;
  std::function<int()> upstream_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  std::deque<std::packaged_task<void()>> calls_;
  bool stop_ = false;
  std::thread worker_;  // last: starts after every other member is constructed
};

}  // namespace clipserve::engine

// The process's compute thread: the serving paths run every backend call on it, so one
// OpenMP thread pool serves all models (see docs/backends.md, "One compute thread").
#pragma once

#include <functional>

namespace clipserve {

/// Order in which waiting calls start: every waiting kHigh call before any kNormal one (short,
/// latency-bound work such as a text query first; a running call is never interrupted).
enum class ComputePriority { kHigh, kNormal };

/// Runs `fn` on the compute thread and waits for it; an exception `fn` throws is rethrown here.
/// Called on the compute thread itself, runs `fn` at once. `fn` must not wait for another
/// thread that itself calls this (that thread would wait behind `fn`).
///
/// Why: libgomp keeps one thread pool per thread that opens parallel regions, and once the
/// pools of a process hold more threads than there are CPUs it stops spinning between regions
/// and puts its threads to sleep after each one. A text query runs ~100 short regions, so a
/// batcher thread, a loading thread and a request thread, each with its own pool, made one
/// query 2-3x slower than the same call on a quiet thread. With every call here, the process
/// has one pool of `threads` threads.
void run_on_compute_thread(const std::function<void()>& fn,
                           ComputePriority priority = ComputePriority::kNormal);

/// Whether the calling thread is the compute thread.
bool on_compute_thread();

/// Calls waiting for the compute thread (not the running one).
int compute_thread_waiting();

/// False when CLIPSERVE_COMPUTE_THREAD=off was set at start: then every call runs on its
/// caller's thread, as before the compute thread existed (for A/B benchmarks only).
bool compute_thread_enabled();

}  // namespace clipserve

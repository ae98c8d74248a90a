// OpenMP thread-pool settings shared by oneDNN and our kernels (one pool for both).
#pragma once

#include <string>

namespace clipserve::cpu {

/// The wait policy in effect ("passive", "active" or "default"). libgomp's default (spin a
/// while, then sleep) is the fastest on dedicated cores; on cores shared with other busy
/// processes OMP_WAIT_POLICY=passive is 2-4x faster (a preempted spinning thread stalls every
/// barrier). libgomp reads it at process start, so it is the user's environment that decides.
/// The wait policy in effect ("passive", "active" or "default").
std::string omp_wait_policy();

}  // namespace clipserve::cpu

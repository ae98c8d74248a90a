// OpenMP thread-pool settings shared by oneDNN and our kernels (one pool for both).
#pragma once

#include <string>

namespace clipserve::cpu {

/// libgomp's spin-waiting at barriers makes a forward pass 2-4x slower when the cores are
/// shared with other busy processes (a preempted thread stalls every barrier), while sleeping
/// waits cost little. libgomp reads OMP_WAIT_POLICY only at process start, so CLI commands
/// call this first: unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, it sets
/// OMP_WAIT_POLICY=passive and re-executes the program with the same arguments
/// (`argv` is the full argument vector, argv[argc] == nullptr). Returns if nothing to do or
/// when exec fails.
void prefer_passive_omp_wait(char** argv);

/// The wait policy in effect ("passive", "active" or "default").
std::string omp_wait_policy();

}  // namespace clipserve::cpu

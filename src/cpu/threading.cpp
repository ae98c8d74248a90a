// OpenMP wait-policy reporting for benchmarks (see threading.h).
#include "cpu/threading.h"

#include <cstdlib>

namespace clipserve::cpu {

std::string omp_wait_policy() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  return p != nullptr ? p : "default";
}

}  // namespace clipserve::cpu

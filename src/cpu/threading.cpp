// OpenMP wait-policy selection for the CLI (see threading.h).
#include "cpu/threading.h"

#include <unistd.h>

#include <cstdlib>

namespace clipserve::cpu {

void prefer_passive_omp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): carry on with the default policy.
}

std::string omp_wait_policy() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  return p != nullptr ? p : "default";
}

}  // namespace clipserve::cpu

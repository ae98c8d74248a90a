// Portable build of the CPU kernels and the runtime dispatch.
#include "cpu/kernels.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace clipserve::cpu {

namespace generic {
#include "cpu/kernels_impl.h"
}  // namespace generic

namespace avx512 {
extern const Kernels kKernels;
}  // namespace avx512

namespace {
const Kernels kGeneric{generic::layer_norm_impl, generic::attention_softmax_impl,
                       generic::to_bf16_impl, "generic"};
}  // namespace

const Kernels& generic_kernels() { return kGeneric; }

const Kernels& kernels() {
  static const Kernels& k = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                                ? avx512::kKernels
                                : kGeneric;
  return k;
}

}  // namespace clipserve::cpu

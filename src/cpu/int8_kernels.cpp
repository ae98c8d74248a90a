// Portable build of the int8 row kernels (int8_kernels_impl.h) and the runtime dispatch.
#include "cpu/int8_kernels.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace clipserve::cpu {

namespace int8_generic {
#include "cpu/int8_kernels_impl.h"
}  // namespace int8_generic

namespace int8_avx512 {
extern const Int8Kernels kInt8Kernels;
}  // namespace int8_avx512

namespace {
const Int8Kernels kGeneric{int8_generic::quantize_impl, int8_generic::epilogue_impl,
                           int8_generic::quantize_heads_impl, "generic"};
}  // namespace

const Int8Kernels& generic_int8_kernels() { return kGeneric; }

const Int8Kernels& int8_kernels() {
  static const Int8Kernels& k =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
          ? int8_avx512::kInt8Kernels
          : kGeneric;
  return k;
}

}  // namespace clipserve::cpu

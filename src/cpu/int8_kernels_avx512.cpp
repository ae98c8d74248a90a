// AVX-512 build of the int8 row kernels (same source as the generic build; int8_kernels_impl.h).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cpu/int8_kernels.h"

namespace clipserve::cpu::int8_avx512 {

#include "cpu/int8_kernels_impl.h"

extern const Int8Kernels kInt8Kernels;
const Int8Kernels kInt8Kernels{quantize_impl, epilogue_impl, quantize_heads_impl, "avx512"};

}  // namespace clipserve::cpu::int8_avx512

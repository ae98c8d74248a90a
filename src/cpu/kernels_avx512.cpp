// AVX-512 build of the CPU kernels (same source as the generic build; see kernels_impl.h).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cpu/kernels.h"

namespace clipserve::cpu::avx512 {

#include "cpu/kernels_impl.h"

extern const Kernels kKernels;
const Kernels kKernels{layer_norm_impl, attention_softmax_impl, to_bf16_impl, "avx512"};

}  // namespace clipserve::cpu::avx512

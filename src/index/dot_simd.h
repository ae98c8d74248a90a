// Fast float dot products for graph navigation (AVX-512 / AVX2+FMA chosen at run time, a
// plain loop elsewhere); final scores still come from dot_exact (vector_index.h).
#pragma once

#include <cstddef>

namespace clipserve::index {

/// sum a[i] * b[i] in float with the widest vector unit this CPU has. Agrees with
/// dot_exact to float rounding (a different summation order), not bit for bit.
float dot_fast(const float* a, const float* b, size_t n);

/// hnswlib's inner-product distance (1 - a.b) for `*(const size_t*)param` floats, through
/// the same kernel as dot_fast.
using DistanceFn = float (*)(const void* a, const void* b, const void* param);
DistanceFn ip_distance();

/// "avx512", "avx2" or "scalar": the kernel dot_fast uses on this machine.
const char* dot_fast_isa();

}  // namespace clipserve::index

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

namespace clipserve::index {

/// Compressed vector codes for the in-memory search copy (exact scores come from fp32).
/// fp16: dim IEEE halves (round to nearest even). int8: a float scale s = max|x| / 127
/// followed by dim int8 values round(x / s); the dot of two codes is s_a * s_b * sum(qa*qb).
size_t fp16_code_bytes(size_t dim);
size_t int8_code_bytes(size_t dim);
void encode_fp16(const float* x, size_t dim, void* code);
void encode_int8(const float* x, size_t dim, void* code);
/// Dot products of two codes of `*(const size_t*)param` values, as hnswlib distances
/// (1 - dot), with the widest vector unit this CPU has.
DistanceFn fp16_distance();
DistanceFn int8_distance();
/// Reference dots of two codes (plain loops, double accumulation), for tests.
double fp16_dot_reference(const void* a, const void* b, size_t dim);
double int8_dot_reference(const void* a, const void* b, size_t dim);

}  // namespace clipserve::index

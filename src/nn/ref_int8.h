// Reference int8 quantization and int8 linear layer (plain loops): the definition the fast
// oneDNN int8 path (src/cpu/int8.h) is tested against.
//
// Scheme (symmetric, no zero points):
//   weights: per output channel o, s_w[o] = max_i |w[o][i]| / 127, q = round(w * (127 / max)).
//   activations: dynamic, per tensor (one scale for all rows) or per row (token), same rule.
//   round = round half to even, clamped to [-127, 127]; an all-zero group gets scale 0, q 0.
//   y[r][o] = acc[r][o] * s_x[r] * s_w[o] + b[o], acc the exact int32 dot product of q's.
#pragma once

#include <cstdint>
#include <vector>

namespace clipserve::nn::ref {

/// Symmetric int8 weights of a torch Linear ([out, in] row-major), one scale per output row.
struct QuantWeights {
  int in = 0, out = 0;
  std::vector<int8_t> q;     ///< [out, in]
  std::vector<float> scale;  ///< [out]
};

/// Per output channel quantization (done once at load by every int8 backend).
QuantWeights quantize_weights(const float* w, int out, int in);

/// q[i] = round(x[i] * (127 / absmax)) over one group of n values (the product and the
/// reciprocal in float); returns absmax / 127: 0 when the group is all zeros, NaN when it
/// holds a non-finite value (q then all zeros).
float quantize_group(const float* x, long n, int8_t* q);

/// Dynamic activation quantization of [rows, in]: per_row ? one scale per row : one scale
/// for the whole tensor (scale[0] .. scale[rows-1] all equal).
void quantize_activations(const float* x, int rows, int in, bool per_row, int8_t* q, float* scale);

/// y[r][o] = float(double(acc) * s_x[r] * s_w[o] + b[o]), acc exact (int64 here); b may be
/// null. x is float: it is quantized here with quantize_activations(per_row).
void linear_int8(const float* x, int rows, const QuantWeights& w, const float* b, bool per_row,
                 float* y);

}  // namespace clipserve::nn::ref

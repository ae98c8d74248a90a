// Reference int8 quantization and int8 linear layer (plain loops): the definition the fast
// oneDNN int8 path (src/cpu/int8.h) is tested against.
//
// Scheme (symmetric, no zero points):
//   weights: per output channel o, s_w[o] = max_i |w[o][i]| / 127, q = round(w * (127 / max)).
//   activations: dynamic, per tensor (one scale for all rows) or per row (token), same rule.
//   round = round half to even, clamped to [-127, 127]; an all-zero group gets scale 0, q 0.
//   y[r][o] = acc[r][o] * s_x[r] * s_w[o] + b[o], acc the exact int32 dot product of q's.
//   outlier split (per row, LLM.int8-style, the default of both backends): the values of a
//   row with |x| > kOutlierRatio * rms(row) (at most kMaxOutliers, in column order) are taken
//   out of the int8 part (q = 0, the row's scale from the remaining values) and added in
//   float: y[r][o] += s_w[o] * sum_k x[r][c_k] * q_w[o][c_k].
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

/// Outlier threshold (times the row's root mean square) and the most columns split per row.
constexpr float kOutlierRatio = 6.0f;
constexpr int kMaxOutliers = 8;

/// Per-row quantization with the outlier split: q[i] as quantize_group over the non-outlier
/// values (outliers get q 0), the outliers' columns and values in col/val (*count of them,
/// kmax 0: none split). rms = sqrt(sum x^2 / n) with the sum in 16 float lanes (i mod 16)
/// added in double, the threshold float(ratio * rms) in double: the fast kernel's order.
float quantize_row_split(const float* x, int n, int8_t* q, int kmax, int* count, int* col,
                         float* val);

/// Dynamic activation quantization of [rows, in]: per_row ? one scale per row : one scale
/// for the whole tensor (scale[0] .. scale[rows-1] all equal).
void quantize_activations(const float* x, int rows, int in, bool per_row, int8_t* q, float* scale);

/// y[r][o] = float(double(acc) * s_x[r] * s_w[o] + b[o]), acc exact (int64 here); b may be
/// null. x is float: it is quantized here with quantize_activations(per_row), or (per_row and
/// kmax > 0) with quantize_row_split, the outliers added in double.
void linear_int8(const float* x, int rows, const QuantWeights& w, const float* b, bool per_row,
                 float* y, int kmax = 0);

/// The int8 path's attention core for one sequence (ref::attention's layout): q, k, v rounded
/// to bf16 (round to nearest even), scores and softmax in double, the probabilities rounded
/// to bf16 before P V (double accumulation): the cpu int8 path's bf16 head-plane attention.
void attention_bf16(const float* qkv, int tokens, int width, int heads, bool causal, float* out);

/// float -> bf16 -> float, round to nearest even.
float round_bf16(float x);

}  // namespace clipserve::nn::ref

// Plain reference kernels of the CLIP forward pass (double accumulation, obvious loops):
// the ground truth every optimized kernel is tested against.
#pragma once

namespace clipserve::nn::ref {

/// y[r] = LayerNorm(x[r]) * gamma + beta over `width`, eps 1e-5 (open_clip / torch default).
void layer_norm(const float* x, int rows, int width, const float* gamma, const float* beta,
                float* y);
/// y[r][o] = b[o] + sum_i x[r][i] * w[o][i]; w is [out, in] row-major (torch Linear). b may be
/// null.
void linear(const float* x, int rows, int in, const float* w, const float* b, int out, float* y);
/// Multi-head self-attention core for one sequence: qkv is [tokens, 3*width] (q | k | v, as
/// in_proj produces), out is [tokens, width] (heads concatenated, before out_proj).
/// `causal`: token i attends to tokens 0..i only.
void attention(const float* qkv, int tokens, int width, int heads, bool causal, float* out);
/// In place: exact GELU 0.5*x*(1+erf(x/sqrt(2))) or QuickGELU x*sigmoid(1.702*x).
void gelu(float* x, long n, bool quick);

}  // namespace clipserve::nn::ref

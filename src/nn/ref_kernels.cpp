// Reference kernels: straightforward loops in double precision.
#include "nn/ref_kernels.h"

#include <cmath>
#include <vector>

namespace clipserve::nn::ref {

namespace {

// Dot product with four double partial sums: same math as a single sum up to rounding in
// double, and fast enough that ViT-L-14 runs in a test.
double dot(const float* a, const float* b, int n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += double(a[i]) * b[i];
    s1 += double(a[i + 1]) * b[i + 1];
    s2 += double(a[i + 2]) * b[i + 2];
    s3 += double(a[i + 3]) * b[i + 3];
  }
  for (; i < n; ++i) s0 += double(a[i]) * b[i];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

void layer_norm(const float* x, int rows, int width, const float* gamma, const float* beta,
                float* y) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<long>(r) * width;
    float* yr = y + static_cast<long>(r) * width;
    double mean = 0;
    for (int i = 0; i < width; ++i) mean += xr[i];
    mean /= width;
    double var = 0;
    for (int i = 0; i < width; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= width;  // biased variance, as torch's layer_norm
    const double inv = 1.0 / std::sqrt(var + 1e-5);
    for (int i = 0; i < width; ++i) {
      yr[i] = static_cast<float>((xr[i] - mean) * inv * gamma[i] + beta[i]);
    }
  }
}

void linear(const float* x, int rows, int in, const float* w, const float* b, int out, float* y) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < out; ++o) {
      const double s = dot(x + static_cast<long>(r) * in, w + static_cast<long>(o) * in, in);
      y[static_cast<long>(r) * out + o] = static_cast<float>(s + (b ? b[o] : 0.0));
    }
  }
}

void attention(const float* qkv, int tokens, int width, int heads, bool causal, float* out) {
  const int d = width / heads;
  const long stride = 3L * width;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < tokens; ++i) {
      std::vector<double> p(tokens, 0.0);
      const float* q = qkv + i * stride + h * d;
      const int last = causal ? i : tokens - 1;
      double mx = -INFINITY;
      for (int j = 0; j <= last; ++j) {
        const float* k = qkv + j * stride + width + h * d;
        p[j] = dot(q, k, d) * scale;
        mx = std::max(mx, p[j]);
      }
      double sum = 0;
      for (int j = 0; j <= last; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      for (int c = 0; c < d; ++c) {
        double acc = 0;
        for (int j = 0; j <= last; ++j) acc += p[j] * qkv[j * stride + 2 * width + h * d + c];
        out[static_cast<long>(i) * width + h * d + c] = static_cast<float>(acc / sum);
      }
    }
  }
}

void gelu(float* x, long n, bool quick) {
  for (long i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(quick ? v / (1.0 + std::exp(-1.702 * v))
                                    : 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
  }
}

}  // namespace clipserve::nn::ref

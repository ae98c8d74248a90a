// Reference int8 quantization and linear layer: scalar loops, exact integer accumulation.
#include "nn/ref_int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace clipserve::nn::ref {

float quantize_group(const float* x, long n, int8_t* q) {
  if (n <= 0) return 0.0f;  // (also tells GCC's -Wstringop-overflow that n is positive)
  float amax = 0.0f;
  bool finite = true;
  for (long i = 0; i < n; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    finite = finite && std::isfinite(x[i]);
  }
  if (!finite || !(amax > 0.0f)) {
    // All zeros, or a non-finite input: scale NaN so the layer's output shows it.
    std::fill(q, q + n, int8_t{0});
    return finite ? 0.0f : NAN;
  }
  const float inv = 127.0f / amax;
  for (long i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
  return amax / 127.0f;
}

float quantize_row_split(const float* x, int n, int8_t* q, int kmax, int* count, int* col,
                         float* val) {
  *count = 0;
  if (n <= 0) return 0.0f;
  float amax = 0.0f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    finite = finite && std::isfinite(x[i]);
  }
  if (!finite || !(amax > 0.0f)) {
    std::fill(q, q + n, int8_t{0});
    return finite ? 0.0f : NAN;
  }
  float rest = amax;
  int k = 0;
  if (kmax > 0) {
    float lanes[16] = {};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      for (int l = 0; l < 16; ++l) lanes[l] += x[i + l] * x[i + l];
    }
    double sum = 0;
    for (float v : lanes) sum += v;
    for (; i < n; ++i) sum += double(x[i]) * x[i];
    const float thr = static_cast<float>(kOutlierRatio * std::sqrt(sum / n));
    if (amax > thr) {
      rest = 0.0f;
      for (int c = 0; c < n; ++c) {
        const float a = std::fabs(x[c]);
        if (a > thr && k < kmax) {
          col[k] = c;
          val[k] = x[c];
          ++k;
        } else {
          rest = std::max(rest, a);
        }
      }
    }
  }
  *count = k;
  if (!(rest > 0.0f)) {
    std::fill(q, q + n, int8_t{0});
    return 0.0f;
  }
  const float inv = 127.0f / rest;
  for (int i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
  for (int j = 0; j < k; ++j) q[col[j]] = 0;
  return rest / 127.0f;
}

QuantWeights quantize_weights(const float* w, int out, int in) {
  QuantWeights qw;
  qw.in = in;
  qw.out = out;
  qw.q.resize(static_cast<size_t>(out) * in);
  qw.scale.resize(out);
  for (int o = 0; o < out; ++o) {
    const long off = static_cast<long>(o) * in;
    qw.scale[o] = quantize_group(w + off, in, qw.q.data() + off);
  }
  return qw;
}

void quantize_activations(const float* x, int rows, int in, bool per_row, int8_t* q, float* scale) {
  if (per_row) {
    for (int r = 0; r < rows; ++r) {
      const long off = static_cast<long>(r) * in;
      scale[r] = quantize_group(x + off, in, q + off);
    }
    return;
  }
  const float s = quantize_group(x, static_cast<long>(rows) * in, q);
  std::fill(scale, scale + rows, s);
}

void linear_int8(const float* x, int rows, const QuantWeights& w, const float* b, bool per_row,
                 float* y, int kmax) {
  const int in = w.in, out = w.out;
  std::vector<int8_t> qx(static_cast<size_t>(rows) * in);
  std::vector<float> sx(rows);
  const bool split = per_row && kmax > 0;
  std::vector<int> cnt(rows, 0), col(split ? static_cast<size_t>(rows) * kmax : 0);
  std::vector<float> val(col.size());
  if (split) {
    for (int r = 0; r < rows; ++r) {
      const long off = static_cast<long>(r) * in, ko = static_cast<long>(r) * kmax;
      sx[r] = quantize_row_split(x + off, in, qx.data() + off, kmax, &cnt[r], col.data() + ko,
                                 val.data() + ko);
    }
  } else {
    quantize_activations(x, rows, in, per_row, qx.data(), sx.data());
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < out; ++o) {
      const int8_t* a = qx.data() + static_cast<long>(r) * in;
      const int8_t* c = w.q.data() + static_cast<long>(o) * in;
      int64_t acc = 0;
      for (int i = 0; i < in; ++i) acc += int32_t{a[i]} * int32_t{c[i]};
      double v = double(acc) * sx[r] * w.scale[o] + (b ? b[o] : 0.0);
      for (int k = 0; k < cnt[r]; ++k) {
        const long j = static_cast<long>(r) * kmax + k;
        v += double(val[j]) * c[col[j]] * w.scale[o];
      }
      y[static_cast<long>(r) * out + o] = static_cast<float>(v);
    }
  }
}

float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf / NaN unchanged
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

void attention_bf16(const float* qkv, int tokens, int width, int heads, bool causal, float* out) {
  const int d = width / heads;
  const long stride = 3L * width;
  std::vector<float> b(static_cast<size_t>(tokens) * stride);
  for (size_t i = 0; i < b.size(); ++i) b[i] = round_bf16(qkv[i]);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
#pragma omp parallel for collapse(2) schedule(static)
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < tokens; ++i) {
      std::vector<double> p(tokens, 0.0);
      const float* q = b.data() + i * stride + h * d;
      const int last = causal ? i : tokens - 1;
      double mx = -INFINITY;
      for (int j = 0; j <= last; ++j) {
        const float* k = b.data() + j * stride + width + h * d;
        double acc = 0;
        for (int c = 0; c < d; ++c) acc += double(q[c]) * k[c];
        p[j] = acc * scale;
        mx = std::max(mx, p[j]);
      }
      double sum = 0;
      for (int j = 0; j <= last; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      for (int j = 0; j <= last; ++j) p[j] = round_bf16(static_cast<float>(p[j] / sum));
      for (int c = 0; c < d; ++c) {
        double acc = 0;
        for (int j = 0; j <= last; ++j) acc += p[j] * b[j * stride + 2 * width + h * d + c];
        out[static_cast<long>(i) * width + h * d + c] = static_cast<float>(acc);
      }
    }
  }
}

}  // namespace clipserve::nn::ref

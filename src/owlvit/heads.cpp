// OWL-ViT's heads (see heads.h); the float arithmetic follows transformers' op order.
#include "owlvit/heads.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "nn/ref_kernels.h"

namespace clipserve::owlvit {

namespace {

// y = x @ w^T + b for `rows` rows; w [out, in].
void linear(HeadImpl impl, const float* x, int rows, int in, const float* w, const float* b,
            int out, float* y) {
  if (impl == HeadImpl::kReference) {
    nn::ref::linear(x, rows, in, w, b, out, y);
    return;
  }
  const dnnl_status_t st = dnnl_sgemm('N', 'T', rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
  CS_ASSERT(st == dnnl_success, "dnnl_sgemm failed: ", static_cast<int>(st));
  if (b == nullptr) return;
  for (long r = 0; r < rows; ++r) {
    float* yr = y + r * out;
    for (int o = 0; o < out; ++o) yr[o] += b[o];
  }
}

double norm(const float* v, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += double(v[i]) * v[i];
  return std::sqrt(s);
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

HeadWeights bind_head_weights(const ModelConfig& cfg, const WeightMap& towers,
                              const WeightMap& heads) {
  HeadWeights h;
  h.width = cfg.vision.width;
  h.text_width = cfg.text.width;
  h.grid = cfg.vision.grid();
  const int64_t d = h.width, t = h.text_width;
  h.post_ln_w = towers.get("visual.ln_post.weight", {d});
  h.post_ln_b = towers.get("visual.ln_post.bias", {d});
  h.ln_w = heads.get("layer_norm.weight", {d});
  h.ln_b = heads.get("layer_norm.bias", {d});
  h.class_w = heads.get("class_head.dense0.weight", {t, d});
  h.class_b = heads.get("class_head.dense0.bias", {t});
  h.shift_w = heads.get("class_head.logit_shift.weight", {1, d});
  h.shift_b = heads.get("class_head.logit_shift.bias", {1});
  h.scale_w = heads.get("class_head.logit_scale.weight", {1, d});
  h.scale_b = heads.get("class_head.logit_scale.bias", {1});
  h.box0_w = heads.get("box_head.dense0.weight", {d, d});
  h.box0_b = heads.get("box_head.dense0.bias", {d});
  h.box1_w = heads.get("box_head.dense1.weight", {d, d});
  h.box1_b = heads.get("box_head.dense1.bias", {d});
  h.box2_w = heads.get("box_head.dense2.weight", {4, d});
  h.box2_b = heads.get("box_head.dense2.bias", {4});
  return h;
}

std::vector<float> box_bias(int grid) {
  CS_CHECK_ARG(grid > 0, "box_bias: grid must be positive");
  const long n = static_cast<long>(grid) * grid;
  std::vector<float> out(n * 4);
  auto bias = [](float c) {
    c = std::clamp(c, 0.0f, 1.0f);
    return std::log(c + 1e-4f) - std::log1p(-c + 1e-4f);
  };
  const float size = static_cast<float>(1.0 / grid);
  const float size_bias = bias(size);
  for (int y = 0; y < grid; ++y) {
    for (int x = 0; x < grid; ++x) {
      float* o = out.data() + (static_cast<long>(y) * grid + x) * 4;
      o[0] = bias(static_cast<float>(x + 1) / static_cast<float>(grid));
      o[1] = bias(static_cast<float>(y + 1) / static_cast<float>(grid));
      o[2] = size_bias;
      o[3] = size_bias;
    }
  }
  return out;
}

ImageHeads run_image_heads(const HeadWeights& w, const float* hidden, HeadImpl impl) {
  ImageHeads r;
  r.grid = w.grid;
  r.width = w.width;
  r.text_width = w.text_width;
  const int n = w.boxes(), d = w.width, t = w.text_width;
  // post_layernorm over every token, then patches * class token, then layer_norm.
  std::vector<float> post(static_cast<size_t>(n + 1) * d);
  nn::ref::layer_norm(hidden, n + 1, d, w.post_ln_w, w.post_ln_b, post.data());
  r.feature_map.resize(static_cast<size_t>(n) * d);
  for (long i = 0; i < n; ++i) {
    for (int c = 0; c < d; ++c) r.feature_map[i * d + c] = post[(i + 1) * d + c] * post[c];
  }
  nn::ref::layer_norm(r.feature_map.data(), n, d, w.ln_w, w.ln_b, r.feature_map.data());
  const float* f = r.feature_map.data();

  // Box head: dense0 -> GELU -> dense1 -> GELU -> dense2, + bias, sigmoid.
  std::vector<float> a(static_cast<size_t>(n) * d), b(static_cast<size_t>(n) * d);
  linear(impl, f, n, d, w.box0_w, w.box0_b, d, a.data());
  nn::ref::gelu(a.data(), static_cast<long>(n) * d, /*quick=*/false);
  linear(impl, a.data(), n, d, w.box1_w, w.box1_b, d, b.data());
  nn::ref::gelu(b.data(), static_cast<long>(n) * d, false);
  r.pred_boxes.resize(static_cast<size_t>(n) * 4);
  linear(impl, b.data(), n, d, w.box2_w, w.box2_b, 4, r.pred_boxes.data());
  const std::vector<float> bias = box_bias(w.grid);
  for (size_t i = 0; i < r.pred_boxes.size(); ++i)
    r.pred_boxes[i] = sigmoid(r.pred_boxes[i] + bias[i]);

  // Class head parts that do not depend on the queries.
  r.class_raw.resize(static_cast<size_t>(n) * t);
  linear(impl, f, n, d, w.class_w, w.class_b, t, r.class_raw.data());
  r.class_embeds.resize(r.class_raw.size());
  for (long i = 0; i < n; ++i) {
    const float* src = r.class_raw.data() + i * t;
    const float den = static_cast<float>(norm(src, t)) + 1e-6f;
    for (int c = 0; c < t; ++c) r.class_embeds[i * t + c] = src[c] / den;
  }
  r.logit_shift.resize(n);
  r.logit_scale.resize(n);
  linear(impl, f, n, d, w.shift_w, w.shift_b, 1, r.logit_shift.data());
  linear(impl, f, n, d, w.scale_w, w.scale_b, 1, r.logit_scale.data());
  for (float& s : r.logit_scale) s = (s > 0 ? s : std::expm1(s)) + 1.0f;
  return r;
}

std::vector<float> normalize_text_queries(const float* raw, int q, int t) {
  std::vector<float> out(static_cast<size_t>(q) * t);
  for (long i = 0; i < q; ++i) {
    const float n1 = static_cast<float>(norm(raw + i * t, t));
    for (int c = 0; c < t; ++c) out[i * t + c] = raw[i * t + c] / n1;
    const float n2 = static_cast<float>(norm(out.data() + i * t, t)) + 1e-6f;
    for (int c = 0; c < t; ++c) out[i * t + c] /= n2;
  }
  return out;
}

std::vector<float> normalize_image_query(const float* raw, int t) {
  std::vector<float> out(raw, raw + t);
  const float n = static_cast<float>(norm(raw, t)) + 1e-6f;
  for (float& v : out) v /= n;
  return out;
}

std::vector<float> class_logits(const ImageHeads& img, const float* queries, int q,
                                const uint8_t* mask, HeadImpl impl) {
  const int n = img.boxes(), t = img.text_width;
  std::vector<float> out(static_cast<size_t>(n) * q);
  if (impl == HeadImpl::kFast) {
    if (q == 0 || n == 0) return out;
    const dnnl_status_t st = dnnl_sgemm('N', 'T', n, q, t, 1.0f, img.class_embeds.data(), t,
                                        queries, t, 0.0f, out.data(), q);
    CS_ASSERT(st == dnnl_success, "dnnl_sgemm failed: ", static_cast<int>(st));
    for (long i = 0; i < n; ++i) {
      for (int j = 0; j < q; ++j) {
        float& v = out[i * q + j];
        v = mask != nullptr && mask[j] == 0 ? -1e6f : (v + img.logit_shift[i]) * img.logit_scale[i];
      }
    }
    return out;
  }
  for (long i = 0; i < n; ++i) {
    const float* e = img.class_embeds.data() + i * t;
    for (int j = 0; j < q; ++j) {
      const float* qe = queries + static_cast<long>(j) * t;
      double dot = 0;
      for (int c = 0; c < t; ++c) dot += double(e[c]) * qe[c];
      const float v = (static_cast<float>(dot) + img.logit_shift[i]) * img.logit_scale[i];
      out[i * q + j] = mask != nullptr && mask[j] == 0 ? -1e6f : v;
    }
  }
  return out;
}

int best_query_box(const ImageHeads& qi, const std::array<float, 4>& tb) {
  const int n = qi.boxes(), t = qi.text_width;
  CS_CHECK_ARG(n > 0, "best_query_box: no boxes");
  CS_CHECK_ARG(tb[2] > tb[0] && tb[3] > tb[1], "example box must have x1 > x0 and y1 > y0");
  // IoU (float32, as transformers' box_iou) of each predicted box with the target box.
  const float area1 = (tb[2] - tb[0]) * (tb[3] - tb[1]);
  std::vector<float> iou(n), giou(n);
  bool all_zero = true;
  for (int i = 0; i < n; ++i) {
    const float* b = qi.pred_boxes.data() + static_cast<long>(i) * 4;
    const float x0 = b[0] - 0.5f * b[2], y0 = b[1] - 0.5f * b[3];
    const float x1 = b[0] + 0.5f * b[2], y1 = b[1] + 0.5f * b[3];
    const float area2 = (x1 - x0) * (y1 - y0);
    const float iw = std::max(std::min(tb[2], x1) - std::max(tb[0], x0), 0.0f);
    const float ih = std::max(std::min(tb[3], y1) - std::max(tb[1], y0), 0.0f);
    const float inter = iw * ih;
    const float uni = area1 + area2 - inter;
    iou[i] = inter / uni;
    if (iou[i] != 0.0f) all_zero = false;
    const float ew = std::max(std::max(tb[2], x1) - std::min(tb[0], x0), 0.0f);
    const float eh = std::max(std::max(tb[3], y1) - std::min(tb[1], y0), 0.0f);
    const float enclose = ew * eh;
    giou[i] = iou[i] - (enclose - uni) / enclose;
  }
  const std::vector<float>& s = all_zero ? giou : iou;
  const float threshold = *std::max_element(s.begin(), s.end()) * 0.8f;
  std::vector<double> mean(t, 0.0);
  for (long i = 0; i < n; ++i)
    for (int c = 0; c < t; ++c) mean[c] += qi.class_raw[i * t + c];
  for (double& m : mean) m /= n;
  int best = -1;
  double best_sim = 0;
  for (int i = 0; i < n; ++i) {
    if (!(s[i] >= threshold)) continue;
    double sim = 0;
    for (int c = 0; c < t; ++c)
      sim += static_cast<float>(mean[c]) * double(qi.class_raw[i * t + c]);
    if (best < 0 || sim < best_sim) best = i, best_sim = sim;
  }
  CS_ASSERT(best >= 0, "no box within 80% of the best IoU");
  return best;
}

}  // namespace clipserve::owlvit

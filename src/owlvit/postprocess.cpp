// OWL-ViT post-processing (see postprocess.h), in transformers' float32 op order.
#include "owlvit/postprocess.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"

namespace clipserve::owlvit {

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

std::array<float, 4> corners(const float* b) {
  return {b[0] - 0.5f * b[2], b[1] - 0.5f * b[3], b[0] + 0.5f * b[2], b[1] + 0.5f * b[3]};
}

void scale(std::array<float, 4>& b, int w, int h) {
  if (w <= 0 || h <= 0) return;
  const float fw = static_cast<float>(w), fh = static_cast<float>(h);
  b[0] *= fw, b[1] *= fh, b[2] *= fw, b[3] *= fh;
}

// Greedy per-label NMS in descending score order (stable for ties).
std::vector<Detection> nms(std::vector<Detection> d, float iou) {
  std::stable_sort(d.begin(), d.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  std::vector<Detection> kept;
  for (const Detection& c : d) {
    bool drop = false;
    for (const Detection& k : kept) {
      if (k.label == c.label && box_iou(k.box, c.box) > iou) {
        drop = true;
        break;
      }
    }
    if (!drop) kept.push_back(c);
  }
  // Back to patch order; the caller sorts if asked.
  std::sort(kept.begin(), kept.end(),
            [](const Detection& a, const Detection& b) { return a.patch < b.patch; });
  return kept;
}

}  // namespace

float box_iou(const std::array<float, 4>& a, const std::array<float, 4>& b) {
  const float area1 = (a[2] - a[0]) * (a[3] - a[1]);
  const float area2 = (b[2] - b[0]) * (b[3] - b[1]);
  const float w = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.0f);
  const float h = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.0f);
  const float inter = w * h;
  return inter / (area1 + area2 - inter);
}

std::vector<Detection> postprocess(const float* logits, const float* boxes, int n, int q,
                                   const PostprocessOptions& opt) {
  CS_CHECK_ARG(q >= 1, "postprocess: no queries");
  CS_CHECK_ARG(opt.nms_iou >= 0 && opt.nms_iou <= 1, "nms IoU threshold must be in [0, 1], got ",
               opt.nms_iou);
  CS_CHECK_ARG(opt.top_k >= 0, "top_k must be >= 0, got ", opt.top_k);
  std::vector<Detection> out;
  for (int i = 0; i < n; ++i) {
    const float* l = logits + static_cast<long>(i) * q;
    const int best = static_cast<int>(std::max_element(l, l + q) - l);  // first of ties
    const float s = sigmoid(l[best]);
    if (!(s > opt.threshold)) continue;
    Detection d;
    d.patch = i;
    d.label = best;
    d.score = s;
    d.box = corners(boxes + static_cast<long>(i) * 4);
    scale(d.box, opt.image_width, opt.image_height);
    if (opt.clip_boxes) {
      const float w = opt.image_width > 0 ? static_cast<float>(opt.image_width) : 1.0f;
      const float h = opt.image_height > 0 ? static_cast<float>(opt.image_height) : 1.0f;
      d.box = {std::clamp(d.box[0], 0.0f, w), std::clamp(d.box[1], 0.0f, h),
               std::clamp(d.box[2], 0.0f, w), std::clamp(d.box[3], 0.0f, h)};
    }
    out.push_back(d);
  }
  if (opt.nms_iou > 0) out = nms(std::move(out), opt.nms_iou);
  if (opt.sort_by_score || opt.top_k > 0) {
    std::stable_sort(out.begin(), out.end(),
                     [](const Detection& a, const Detection& b) { return a.score > b.score; });
  }
  if (opt.top_k > 0 && static_cast<int>(out.size()) > opt.top_k) out.resize(opt.top_k);
  return out;
}

std::vector<Detection> postprocess_image_guided(const float* logits, const float* boxes, int n,
                                                int q, float threshold, float nms_threshold,
                                                int image_width, int image_height) {
  CS_CHECK_ARG(q >= 1, "postprocess: no queries");
  std::vector<float> scores(n);
  std::vector<std::array<float, 4>> xyxy(n);
  for (int i = 0; i < n; ++i) {
    const float* l = logits + static_cast<long>(i) * q;
    scores[i] = sigmoid(*std::max_element(l, l + q));
    xyxy[i] = corners(boxes + static_cast<long>(i) * 4);
  }
  if (nms_threshold < 1.0f) {
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return scores[a] > scores[b]; });
    for (int i : order) {
      if (scores[i] == 0.0f) continue;
      for (int j = 0; j < n; ++j) {
        if (j != i && box_iou(xyxy[i], xyxy[j]) > nms_threshold) scores[j] = 0.0f;
      }
    }
  }
  std::vector<Detection> out;
  if (std::none_of(scores.begin(), scores.end(), [](float s) { return s != 0.0f; })) return out;
  const float max_score = *std::max_element(scores.begin(), scores.end()) + 1e-6f;
  for (int i = 0; i < n; ++i) {
    float alpha = (scores[i] - max_score * 0.1f) / (max_score * 0.9f);
    if (alpha < threshold) alpha = 0.0f;
    alpha = std::clamp(alpha, 0.0f, 1.0f);
    if (!(alpha > 0)) continue;
    Detection d;
    d.patch = i;
    d.label = 0;
    d.score = alpha;
    d.box = xyxy[i];
    scale(d.box, image_width, image_height);
    out.push_back(d);
  }
  return out;
}

}  // namespace clipserve::owlvit

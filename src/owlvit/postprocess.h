// Detections from OWL-ViT's logits and boxes: transformers 4.30's
// post_process_object_detection (sigmoid of the best query's logit, score > threshold,
// cxcywh -> xyxy scaled to the original image, unclipped, no NMS, patch order) as the
// default, plus the options users ask for (clip, per-class NMS, score sort, top-k), and
// post_process_image_guided_detection (NMS at 0.3, alpha rescaling, threshold on alpha).
#pragma once

#include <array>
#include <vector>

namespace clipserve::owlvit {

struct Detection {
  int patch = 0;  ///< index of the box (row-major patch order)
  int label = 0;  ///< query index
  float score = 0;
  std::array<float, 4> box{};  ///< x0, y0, x1, y1 (pixels, or [0, 1] units when unscaled)
};

struct PostprocessOptions {
  float threshold = 0.1f;  ///< keep score > threshold (transformers' default 0.1)
  /// Pixel size of the original image; 0 keeps normalized [0, 1] coordinates.
  int image_width = 0, image_height = 0;
  // ---- beyond transformers (all off by default) ----
  bool clip_boxes = false;  ///< clamp boxes to the image
  float nms_iou = 0;        ///< > 0: per-label greedy NMS, drop IoU > nms_iou (by score)
  bool sort_by_score = false;
  int top_k = 0;  ///< > 0: keep the top_k scores (implies sorting)
};

/// logits [N, Q], boxes [N, 4] (cx, cy, w, h). Q >= 1.
std::vector<Detection> postprocess(const float* logits, const float* boxes, int n, int q,
                                   const PostprocessOptions& opt);

/// transformers 4.30's post_process_image_guided_detection for one image: returns boxes with
/// score = alpha (label 0). logits [N, Q].
std::vector<Detection> postprocess_image_guided(const float* logits, const float* boxes, int n,
                                                int q, float threshold, float nms_threshold,
                                                int image_width, int image_height);

/// IoU of two xyxy boxes in float32, as transformers' box_iou.
float box_iou(const std::array<float, 4>& a, const std::array<float, 4>& b);

}  // namespace clipserve::owlvit

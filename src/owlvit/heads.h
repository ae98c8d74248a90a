// OWL-ViT's detection heads on the vision tower's tokens: feature map (post-LN, class token
// multiplied in, layer_norm), box head (exact GELU, corner-coordinate box bias, sigmoid),
// class head (normalized class embeddings, logit shift and scale, query mask) and the
// image-guided query selection, as transformers 4.30's OwlViTForObjectDetection computes them.
// kReference uses plain double-accumulation loops; kFast oneDNN's sgemm (tested against it).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve::owlvit {

/// Pointers into the WeightMaps ([out, in] row-major, torch Linear).
struct HeadWeights {
  int width = 0;                                   ///< vision width D
  int text_width = 0;                              ///< T (= projection_dim)
  int grid = 0;                                    ///< patches per side g; N = g * g boxes
  const float *post_ln_w, *post_ln_b;              // vision_model.post_layernorm [D]
  const float *ln_w, *ln_b;                        // layer_norm [D]
  const float *class_w, *class_b;                  // class_head.dense0 [T, D], [T]
  const float *shift_w, *shift_b;                  // class_head.logit_shift [1, D], [1]
  const float *scale_w, *scale_b;                  // class_head.logit_scale [1, D], [1]
  const float *box0_w, *box0_b, *box1_w, *box1_b;  // box_head.dense0/1 [D, D], [D]
  const float *box2_w, *box2_b;                    // box_head.dense2 [4, D], [4]
  int boxes() const { return grid * grid; }
};

/// Throws Error(kInvalidArgument) naming a missing or misshaped tensor.
HeadWeights bind_head_weights(const ModelConfig& cfg, const WeightMap& towers,
                              const WeightMap& heads);

/// transformers' compute_box_bias: [N, 4], corner coordinates (i + 1) / g, then
/// log(c + 1e-4) - log1p(-c + 1e-4); w and h the same with c = 1 / g.
std::vector<float> box_bias(int grid);

enum class HeadImpl { kReference, kFast };

/// Everything about one image that does not depend on the queries.
struct ImageHeads {
  int grid = 0, width = 0, text_width = 0;
  std::vector<float> feature_map;   ///< [N, D]: transformers' image_embeds (row-major y, x)
  std::vector<float> pred_boxes;    ///< [N, 4] cx, cy, w, h in [0, 1]
  std::vector<float> class_raw;     ///< [N, T] class_head.dense0 output (image-guided queries)
  std::vector<float> class_embeds;  ///< [N, T] class_raw / (|class_raw| + 1e-6)
  std::vector<float> logit_shift;   ///< [N]
  std::vector<float> logit_scale;   ///< [N] elu(logit_scale(x)) + 1
  int boxes() const { return grid * grid; }
};

/// hidden: (N + 1) x D, the vision tower's last hidden state (nn::Backend::encode_image_tokens).
ImageHeads run_image_heads(const HeadWeights& w, const float* hidden, HeadImpl impl);

/// Query embeddings as the class head uses them: raw text-tower outputs (Q x T) divided by
/// their norm (OwlViTModel) and again by (norm + 1e-6) (class head, in place in 4.30).
std::vector<float> normalize_text_queries(const float* raw, int q, int t);
/// An image-guided query (class_raw row): divided by (norm + 1e-6) only.
std::vector<float> normalize_image_query(const float* raw, int t);

/// logits [N, Q] = (class_embeds . query + shift) * scale; where mask (optional, Q bytes) is 0
/// the logit is -1e6 (transformers: input_ids[:, 0] == 0). kReference accumulates each dot
/// product in double; kFast is one sgemm (float accumulation; tested against kReference), the
/// whole per-query cost on a cached image besides the text tower.
std::vector<float> class_logits(const ImageHeads& img, const float* queries, int q,
                                const uint8_t* mask = nullptr,
                                HeadImpl impl = HeadImpl::kReference);

/// The image-guided query of a query image (transformers' embed_image_query): the boxes of
/// largest IoU with `target` (x0, y0, x1, y1 in [0, 1]; transformers uses the whole image),
/// generalized IoU if all are 0; among those within 80% of the best IoU, the one whose
/// class_raw has the lowest dot product with the mean of all boxes' class_raw.
int best_query_box(const ImageHeads& query_image,
                   const std::array<float, 4>& target = {0.0f, 0.0f, 1.0f, 1.0f});

}  // namespace clipserve::owlvit

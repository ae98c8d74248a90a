// Typed, shape-checked views of a CLIP state dict (open_clip names) per tower, shared by
// every backend so each one validates the WeightMap the same way.
#pragma once

#include <string>
#include <vector>

#include "clipserve/model_config.h"
#include "model/weights.h"

namespace clipserve::nn {

/// One pre-LN residual block; all pointers are into the WeightMap ([out, in] row-major).
struct BlockWeights {
  const float *ln1_w, *ln1_b;
  const float *in_proj_w, *in_proj_b;    // [3w, w], [3w]
  const float *out_proj_w, *out_proj_b;  // [w, w], [w]
  const float *ln2_w, *ln2_b;
  const float *fc_w, *fc_b;      // [hidden, w], [hidden]
  const float *proj_w, *proj_b;  // [w, hidden], [w]
};

struct TowerShape {
  int width = 0;
  int heads = 0;
  int layers = 0;
  int hidden = 0;  ///< MLP width: int(width * mlp_ratio), as open_clip
  int head_dim() const { return width / heads; }
};

struct VisionWeights {
  TowerShape shape;
  int patch = 0, grid = 0, image_size = 0;
  const float* conv1_w;    // [w, 3, p, p]
  const float* class_emb;  // [w]
  const float* pos_emb;    // [g*g+1, w]
  const float *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b;
  const float* proj;  // [w, e]
  std::vector<BlockWeights> blocks;
  int tokens() const { return grid * grid + 1; }
};

struct TextWeights {
  TowerShape shape;
  int context = 0, vocab = 0;
  const float* token_emb;  // [v, t]
  const float* pos_emb;    // [c, t]
  const float *ln_final_w, *ln_final_b;
  const float* proj;  // [t, e]
  std::vector<BlockWeights> blocks;
};

struct ClipWeights {
  VisionWeights vision;
  TextWeights text;
  int embed_dim = 0;
  bool quick_gelu = false;
  float logit_scale = 0;  ///< the stored (log) value
};

/// Throws Error(kInvalidArgument) naming the tensor when one is missing or misshaped, or when
/// the config is inconsistent (width not divisible by heads, image size by patch...).
ClipWeights bind_clip_weights(const ModelConfig& cfg, const WeightMap& w);

}  // namespace clipserve::nn

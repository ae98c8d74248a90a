// Binds open_clip tensor names to typed per-tower views, checking every shape.
#include "nn/clip_weights.h"

#include "core/check.h"

namespace clipserve::nn {

namespace {

std::vector<BlockWeights> bind_blocks(const WeightMap& w, const std::string& prefix,
                                      const TowerShape& s) {
  const int64_t d = s.width, h = s.hidden;
  std::vector<BlockWeights> blocks(s.layers);
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = prefix + std::to_string(i) + ".";
    BlockWeights& b = blocks[i];
    b.ln1_w = w.get(p + "ln_1.weight", {d});
    b.ln1_b = w.get(p + "ln_1.bias", {d});
    b.in_proj_w = w.get(p + "attn.in_proj_weight", {3 * d, d});
    b.in_proj_b = w.get(p + "attn.in_proj_bias", {3 * d});
    b.out_proj_w = w.get(p + "attn.out_proj.weight", {d, d});
    b.out_proj_b = w.get(p + "attn.out_proj.bias", {d});
    b.ln2_w = w.get(p + "ln_2.weight", {d});
    b.ln2_b = w.get(p + "ln_2.bias", {d});
    b.fc_w = w.get(p + "mlp.c_fc.weight", {h, d});
    b.fc_b = w.get(p + "mlp.c_fc.bias", {h});
    b.proj_w = w.get(p + "mlp.c_proj.weight", {d, h});
    b.proj_b = w.get(p + "mlp.c_proj.bias", {d});
  }
  return blocks;
}

TowerShape tower_shape(const std::string& src, const char* tower, int width, int heads, int layers,
                       float mlp_ratio) {
  CS_CHECK_ARG(width > 0 && heads > 0 && layers >= 0 && mlp_ratio > 0, src, ": ", tower,
               " tower: width, heads, layers and mlp_ratio must be positive");
  CS_CHECK_ARG(width % heads == 0, src, ": ", tower, " width ", width,
               " is not divisible by the number of heads ", heads);
  TowerShape s;
  s.width = width;
  s.heads = heads;
  s.layers = layers;
  s.hidden = static_cast<int>(static_cast<float>(width) * mlp_ratio);
  CS_CHECK_ARG(s.hidden > 0, src, ": ", tower, " MLP width is zero");
  return s;
}

}  // namespace

ClipWeights bind_clip_weights(const ModelConfig& cfg, const WeightMap& w) {
  const std::string& src = w.source();
  ClipWeights r;
  r.embed_dim = cfg.embed_dim;
  r.quick_gelu = cfg.quick_gelu;
  CS_CHECK_ARG(cfg.embed_dim > 0, src, ": embed_dim must be positive");
  const int64_t e = cfg.embed_dim;

  const VisionConfig& vc = cfg.vision;
  CS_CHECK_ARG(vc.head_width > 0, src, ": vision head_width must be positive");
  CS_CHECK_ARG(
      vc.patch_size > 0 && vc.image_size >= vc.patch_size && vc.image_size % vc.patch_size == 0,
      src, ": vision image_size ", vc.image_size, " is not a multiple of patch_size ",
      vc.patch_size);
  VisionWeights& v = r.vision;
  v.shape = tower_shape(src, "vision", vc.width, vc.width / vc.head_width, vc.layers, vc.mlp_ratio);
  v.patch = vc.patch_size;
  v.grid = vc.grid();
  v.image_size = vc.image_size;
  const int64_t vw = vc.width, p = vc.patch_size;
  v.conv1_w = w.get("visual.conv1.weight", {vw, 3, p, p});
  v.class_emb = w.get("visual.class_embedding", {vw});
  v.pos_emb = w.get("visual.positional_embedding", {int64_t{v.tokens()}, vw});
  v.ln_pre_w = w.get("visual.ln_pre.weight", {vw});
  v.ln_pre_b = w.get("visual.ln_pre.bias", {vw});
  v.ln_post_w = w.get("visual.ln_post.weight", {vw});
  v.ln_post_b = w.get("visual.ln_post.bias", {vw});
  v.proj = w.get("visual.proj", {vw, e});
  v.blocks = bind_blocks(w, "visual.transformer.resblocks.", v.shape);

  const TextConfig& tc = cfg.text;
  TextWeights& t = r.text;
  t.shape = tower_shape(src, "text", tc.width, tc.heads, tc.layers, tc.mlp_ratio);
  CS_CHECK_ARG(tc.context_length > 0 && tc.vocab_size > 0, src,
               ": text context_length and vocab_size must be positive");
  t.context = tc.context_length;
  t.vocab = tc.vocab_size;
  const int64_t tw = tc.width;
  t.token_emb = w.get("token_embedding.weight", {int64_t{tc.vocab_size}, tw});
  t.pos_emb = w.get("positional_embedding", {int64_t{tc.context_length}, tw});
  t.ln_final_w = w.get("ln_final.weight", {tw});
  t.ln_final_b = w.get("ln_final.bias", {tw});
  t.proj = w.get("text_projection", {tw, e});
  t.blocks = bind_blocks(w, "transformer.resblocks.", t.shape);

  const WeightTensor& ls = w.at("logit_scale");
  CS_CHECK_ARG(ls.numel() == 1, src, ": tensor 'logit_scale' must hold one value");
  r.logit_scale = ls.data[0];
  return r;
}

}  // namespace clipserve::nn

// open_clip CLIP state-dict names and shapes, and the strict check of loaded weights.
#include "model/layout.h"

#include <set>

#include "core/check.h"
#include "model/weights.h"

namespace clipserve {

namespace {

void add_blocks(std::vector<TensorSpec>& out, const std::string& prefix, int layers, int64_t w,
                int64_t mlp) {
  for (int i = 0; i < layers; ++i) {
    std::string b = prefix + "transformer.resblocks." + std::to_string(i) + ".";
    out.push_back({b + "ln_1.weight", {w}});
    out.push_back({b + "ln_1.bias", {w}});
    out.push_back({b + "attn.in_proj_weight", {3 * w, w}});
    out.push_back({b + "attn.in_proj_bias", {3 * w}});
    out.push_back({b + "attn.out_proj.weight", {w, w}});
    out.push_back({b + "attn.out_proj.bias", {w}});
    out.push_back({b + "ln_2.weight", {w}});
    out.push_back({b + "ln_2.bias", {w}});
    out.push_back({b + "mlp.c_fc.weight", {mlp, w}});
    out.push_back({b + "mlp.c_fc.bias", {mlp}});
    out.push_back({b + "mlp.c_proj.weight", {w, mlp}});
    out.push_back({b + "mlp.c_proj.bias", {w}});
  }
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg) {
  const VisionConfig& v = cfg.vision;
  const TextConfig& t = cfg.text;
  const int64_t w = v.width, tw = t.width, e = cfg.embed_dim;
  std::vector<TensorSpec> out;
  // Parameters registered directly on CLIP come first, then the visual module, then the
  // text modules in registration order (transformer, token_embedding, ln_final).
  out.push_back({"positional_embedding", {t.context_length, tw}});
  out.push_back({"text_projection", {tw, e}});
  out.push_back({"logit_scale", {}});
  out.push_back({"visual.class_embedding", {w}});
  out.push_back({"visual.positional_embedding", {int64_t(v.grid()) * v.grid() + 1, w}});
  out.push_back({"visual.proj", {w, e}});
  out.push_back({"visual.conv1.weight", {w, 3, v.patch_size, v.patch_size}});
  out.push_back({"visual.ln_pre.weight", {w}});
  out.push_back({"visual.ln_pre.bias", {w}});
  add_blocks(out, "visual.", v.layers, w, v.mlp_width());
  out.push_back({"visual.ln_post.weight", {w}});
  out.push_back({"visual.ln_post.bias", {w}});
  add_blocks(out, "", t.layers, tw, t.mlp_width());
  out.push_back({"token_embedding.weight", {t.vocab_size, tw}});
  out.push_back({"ln_final.weight", {tw}});
  out.push_back({"ln_final.bias", {tw}});
  return out;
}

void check_weights(const WeightMap& weights, const ModelConfig& cfg) {
  std::set<std::string> expected;
  for (const auto& spec : expected_tensors(cfg)) {
    expected.insert(spec.name);
    CS_CHECK_ARG(weights.contains(spec.name), weights.source(), ": tensor '", spec.name,
                 "' is missing (expected shape ", shape_str(spec.shape), ")");
    const WeightTensor& t = weights.at(spec.name);
    CS_CHECK_ARG(t.shape == spec.shape, weights.source(), ": tensor '", spec.name, "' has shape ",
                 shape_str(t.shape), ", expected ", shape_str(spec.shape),
                 " for this model config");
  }
  for (const auto& name : weights.names()) {
    CS_CHECK_ARG(expected.count(name), weights.source(), ": unexpected tensor '", name,
                 "' (not part of this model config's open_clip layout)");
  }
}

}  // namespace clipserve

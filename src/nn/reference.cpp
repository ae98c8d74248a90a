// Reference backend: open_clip's CLIP forward pass, one sequence at a time, with the plain
// kernels of ref_kernels.h. Slow and obviously correct.
#include <omp.h>

#include <algorithm>
#include <map>
#include <vector>

#include "core/check.h"
#include "nn/backend.h"
#include "nn/clip_weights.h"
#include "nn/ref_int8.h"
#include "nn/ref_kernels.h"

namespace clipserve::nn {

namespace {

class ReferenceBackend final : public Backend {
 public:
  ReferenceBackend(const ModelConfig& cfg, std::shared_ptr<const WeightMap> weights,
                   const BackendOptions& opt)
      : cfg_(cfg),
        weights_(std::move(weights)),
        w_(bind_clip_weights(cfg_, *weights_)),
        threads_(opt.threads),
        int8_(opt.precision == "int8"),
        per_token_(opt.int8_per_token),
        kmax_(opt.int8_outliers ? ref::kMaxOutliers : 0) {
    if (int8_) quantize_blocks();
  }

  void encode_images(const float* pixels, int n, float* out) override {
    CS_CHECK_ARG(n >= 0, "encode_images: negative batch size ", n);
    const VisionWeights& v = w_.vision;
    const int wd = v.shape.width;
    std::vector<float> x(static_cast<size_t>(v.tokens()) * wd);
    std::vector<float> pooled(wd);
    for (int b = 0; b < n; ++b) {
      encode_one_image(pixels + static_cast<long>(b) * 3 * v.image_size * v.image_size, x.data());
      ref::layer_norm(x.data(), 1, wd, v.ln_post_w, v.ln_post_b, pooled.data());
      project(pooled.data(), wd, v.proj, out + static_cast<long>(b) * w_.embed_dim);
    }
  }

  void encode_image_tokens(const float* pixels, int n, float* out) override {
    CS_CHECK_ARG(n >= 0, "encode_image_tokens: negative batch size ", n);
    const VisionWeights& v = w_.vision;
    const long per = static_cast<long>(v.tokens()) * v.shape.width;
    for (int b = 0; b < n; ++b) {
      encode_one_image(pixels + static_cast<long>(b) * 3 * v.image_size * v.image_size,
                       out + b * per);
    }
  }

  // The vision tower up to (not including) ln_post for one image: x is tokens x width.
  void encode_one_image(const float* img, float* x_out) {
    if (threads_ > 0) omp_set_num_threads(threads_);  // per-thread setting: the caller's
    const VisionWeights& v = w_.vision;
    const int s = v.image_size, p = v.patch, g = v.grid, wd = v.shape.width;
    const int tokens = v.tokens();
    std::vector<float> patches(static_cast<size_t>(g) * g * 3 * p * p);
    float* x = x_out;
    {
      // Patch vectors in the conv weight's (channel, ky, kx) order: conv1 = one linear map.
      for (int gy = 0; gy < g; ++gy) {
        for (int gx = 0; gx < g; ++gx) {
          float* dst = patches.data() + (static_cast<long>(gy) * g + gx) * 3 * p * p;
          for (int c = 0; c < 3; ++c) {
            for (int ky = 0; ky < p; ++ky) {
              for (int kx = 0; kx < p; ++kx) {
                *dst++ = img[(static_cast<long>(c) * s + gy * p + ky) * s + gx * p + kx];
              }
            }
          }
        }
      }
      ref::linear(patches.data(), g * g, 3 * p * p, v.conv1_w, nullptr, wd, x + wd);
      std::copy(v.class_emb, v.class_emb + wd, x);
      for (long i = 0; i < static_cast<long>(tokens) * wd; ++i) x[i] += v.pos_emb[i];
      ref::layer_norm(x, tokens, wd, v.ln_pre_w, v.ln_pre_b, x);
      run_blocks(v.blocks, v.shape, x, tokens, /*causal=*/false);
    }
  }

  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) override {
    const std::vector<int> eot = check_text_batch(cfg_, ids);
    if (threads_ > 0) omp_set_num_threads(threads_);
    const TextWeights& t = w_.text;
    const int wd = t.shape.width;
    for (size_t r = 0; r < ids.size(); ++r) {
      // Under the causal mask nothing after the EOT position reaches it: stop there.
      const int tokens = eot[r] + 1;
      std::vector<float> x(static_cast<size_t>(tokens) * wd);
      for (int i = 0; i < tokens; ++i) {
        const float* te = t.token_emb + static_cast<long>(ids[r][i]) * wd;
        const float* pe = t.pos_emb + static_cast<long>(i) * wd;
        for (int c = 0; c < wd; ++c) x[static_cast<long>(i) * wd + c] = te[c] + pe[c];
      }
      run_blocks(t.blocks, t.shape, x.data(), tokens, /*causal=*/true);
      std::vector<float> pooled(wd);
      ref::layer_norm(x.data() + static_cast<long>(eot[r]) * wd, 1, wd, t.ln_final_w, t.ln_final_b,
                      pooled.data());
      project(pooled.data(), wd, t.proj, out + static_cast<long>(r) * w_.embed_dim);
    }
  }

  const ModelConfig& config() const override { return cfg_; }
  std::string name() const override { return "reference"; }
  std::string precision() const override { return int8_ ? "int8" : "fp32"; }

 private:
  void run_blocks(const std::vector<BlockWeights>& blocks, const TowerShape& s, float* x,
                  int tokens, bool causal) {
    const long n = static_cast<long>(tokens) * s.width;
    std::vector<float> h(n), qkv(3 * n), att(n), mlp(static_cast<long>(tokens) * s.hidden);
    for (const BlockWeights& b : blocks) {
      ref::layer_norm(x, tokens, s.width, b.ln1_w, b.ln1_b, h.data());
      linear(h.data(), tokens, s.width, b.in_proj_w, b.in_proj_b, 3 * s.width, qkv.data());
      if (int8_) {  // the int8 scheme's attention core: bf16 q, k, v and probabilities
        ref::attention_bf16(qkv.data(), tokens, s.width, s.heads, causal, att.data());
      } else {
        ref::attention(qkv.data(), tokens, s.width, s.heads, causal, att.data());
      }
      linear(att.data(), tokens, s.width, b.out_proj_w, b.out_proj_b, s.width, h.data());
      for (long i = 0; i < n; ++i) x[i] += h[i];
      ref::layer_norm(x, tokens, s.width, b.ln2_w, b.ln2_b, h.data());
      linear(h.data(), tokens, s.width, b.fc_w, b.fc_b, s.hidden, mlp.data());
      ref::gelu(mlp.data(), static_cast<long>(tokens) * s.hidden, w_.quick_gelu);
      linear(mlp.data(), tokens, s.hidden, b.proj_w, b.proj_b, s.width, h.data());
      for (long i = 0; i < n; ++i) x[i] += h[i];
    }
  }

  // The blocks' linear layers: fp32, or int8 with the weights quantized at load (ref_int8.h).
  void linear(const float* x, int rows, int in, const float* w, const float* b, int out, float* y) {
    if (!int8_) return ref::linear(x, rows, in, w, b, out, y);
    ref::linear_int8(x, rows, qweights_.at(w), b, per_token_, y, kmax_);
  }
  void quantize_blocks() {
    for (const auto* tower : {&w_.vision.blocks, &w_.text.blocks}) {
      const TowerShape& s = tower == &w_.vision.blocks ? w_.vision.shape : w_.text.shape;
      for (const BlockWeights& b : *tower) {
        qweights_[b.in_proj_w] = ref::quantize_weights(b.in_proj_w, 3 * s.width, s.width);
        qweights_[b.out_proj_w] = ref::quantize_weights(b.out_proj_w, s.width, s.width);
        qweights_[b.fc_w] = ref::quantize_weights(b.fc_w, s.hidden, s.width);
        qweights_[b.proj_w] = ref::quantize_weights(b.proj_w, s.width, s.hidden);
      }
    }
  }

  // out[e] = sum_i pooled[i] * proj[i][e]: proj is [width, embed] (x @ proj in open_clip).
  void project(const float* pooled, int wd, const float* proj, float* out) const {
    const int e = w_.embed_dim;
    std::vector<double> acc(e, 0.0);
    for (int i = 0; i < wd; ++i) {
      for (int k = 0; k < e; ++k) acc[k] += double(pooled[i]) * proj[static_cast<long>(i) * e + k];
    }
    for (int k = 0; k < e; ++k) out[k] = static_cast<float>(acc[k]);
  }

  ModelConfig cfg_;
  std::shared_ptr<const WeightMap> weights_;  // keeps the views in w_ alive
  ClipWeights w_;
  int threads_ = 0;
  bool int8_ = false, per_token_ = true;
  int kmax_ = 0;  // outlier columns split per row (0: none)
  std::map<const float*, ref::QuantWeights> qweights_;
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend(const ModelConfig& cfg,
                                                std::shared_ptr<const WeightMap> weights,
                                                const BackendOptions& opt) {
  CS_CHECK_ARG(opt.precision == "fp32" || opt.precision == "int8",
               "the reference backend computes in fp32 or int8, not '", opt.precision, "'");
  CS_CHECK_ARG(weights != nullptr, "make_reference_backend: no weights");
  CS_CHECK_ARG(opt.threads >= 0, "reference backend: negative thread count ", opt.threads);
  return std::make_unique<ReferenceBackend>(cfg, std::move(weights), opt);
}

}  // namespace clipserve::nn

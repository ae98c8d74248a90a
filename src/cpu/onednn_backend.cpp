// CPU backend on oneDNN: every linear layer is a oneDNN matmul with its weights reordered once
// (at load) into the layout the primitive prefers, bias / GELU / QuickGELU / residual add
// fused as post-ops; the attention core runs batched oneDNN matmuls around our softmax
// (attention.h); LayerNorm is our own kernel (kernels.h).
// Sequences are packed row-wise (no padding): images n x tokens, texts up to their EOT only.
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <tuple>

#include "core/check.h"
#include "cpu/attention.h"
#include "cpu/int8.h"
#include "cpu/kernels.h"
#include "nn/backend.h"
#include "nn/clip_weights.h"

namespace clipserve::cpu {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

enum class PostOp { kNone, kResidual, kGelu, kQuickGelu };

// Pre-faults a (memory-mapped) tensor in one call instead of a page fault per 4 KiB; a no-op
// where the kernel lacks MADV_POPULATE_READ (Linux < 5.14).
void populate(const void* p, size_t bytes) {
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22;
#endif
  const uintptr_t page = 4096, a = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  madvise(reinterpret_cast<void*>(a), end - a, MADV_POPULATE_READ);
}

bool debug_enabled() {
  static const bool on = std::getenv("CLIPSERVE_DEBUG_ONEDNN") != nullptr;
  return on;
}

class CpuBackend final : public nn::Backend {
 public:
  CpuBackend(const ModelConfig& cfg, std::shared_ptr<const WeightMap> weights,
             const nn::BackendOptions& opt)
      : cfg_(cfg), eng_(dnnl::engine::kind::cpu, 0), strm_(eng_), attention_(eng_, strm_) {
    CS_CHECK_ARG(opt.precision == "fp32" || opt.precision == "bf16" || opt.precision == "int8",
                 "cpu backend: unknown precision '", opt.precision,
                 "' (expected fp32, bf16 or int8)");
    int8_ = opt.precision == "int8";  // blocks in int8 (cpu/int8.h), the rest fp32
    CS_CHECK_ARG(opt.threads >= 0, "cpu backend: negative thread count ", opt.threads);
    threads_ = opt.threads;
    apply_threads();
    if (opt.precision == "bf16") {
      if (__builtin_cpu_supports("avx512bf16")) {
        bf16_ = true;
      } else {
        CS_CHECK_ARG(opt.allow_precision_fallback,
                     "cpu backend: bf16 needs AVX512-BF16, which this CPU lacks");
        std::fprintf(stderr, "clipserve: this CPU has no AVX512-BF16; computing in fp32\n");
      }
    }
    act_dt_ = bf16_ ? dt::bf16 : dt::f32;
    // int8 runs the patch embedding in bf16 where the CPU has it (cosine 0.99999 to fp32).
    patch_dt_ = bf16_ || (int8_ && __builtin_cpu_supports("avx512bf16")) ? dt::bf16 : dt::f32;
    act_size_ = bf16_ ? 2 : 4;
    const nn::ClipWeights w = nn::bind_clip_weights(cfg_, *weights);
    quick_gelu_ = w.quick_gelu;
    embed_dim_ = w.embed_dim;

    const nn::VisionWeights& v = w.vision;
    vis_ = v;  // keeps pointers for the small fp32 tensors, replaced below
    const int vw = v.shape.width, pp = 3 * v.patch * v.patch;
    patch_ = make_linear(v.conv1_w, nullptr, pp, vw, PostOp::kNone, v.tokens(), patch_dt_);
    if (int8_) {
      vis_int8_ = std::make_unique<Int8Blocks>(eng_, strm_, v.blocks, v.shape, quick_gelu_,
                                               v.tokens(), opt.int8_outliers);
    } else {
      vis_blocks_ = make_blocks(v.blocks, v.shape, v.tokens());
    }
    vis_small_ = copy_small({{v.class_emb, vw},
                             {v.pos_emb, static_cast<long>(v.tokens()) * vw},
                             {v.ln_pre_w, vw},
                             {v.ln_pre_b, vw},
                             {v.ln_post_w, vw},
                             {v.ln_post_b, vw},
                             {v.proj, static_cast<long>(vw) * embed_dim_}});

    const nn::TextWeights& t = w.text;
    txt_ = t;
    const int tw = t.shape.width;
    if (int8_) {
      txt_int8_ = std::make_unique<Int8Blocks>(eng_, strm_, t.blocks, t.shape, quick_gelu_,
                                               t.context, opt.int8_outliers);
    } else {
      txt_blocks_ = make_blocks(t.blocks, t.shape, t.context);
    }
    txt_small_ = copy_small({{t.token_emb, static_cast<long>(t.vocab) * tw},
                             {t.pos_emb, static_cast<long>(t.context) * tw},
                             {t.ln_final_w, tw},
                             {t.ln_final_b, tw},
                             {t.proj, static_cast<long>(tw) * embed_dim_}});
    load_weights();
    // From here on nothing points into `weights`: the caller may release the file.
    rebind_small();
  }

  void encode_images(const float* pixels, int n, float* out) override {
    CS_CHECK_ARG(n >= 0, "encode_images: negative batch size ", n);
    if (n == 0) return;
    apply_threads();
    forward_images(pixels, n, out, /*gemm_only=*/false);
  }

  void encode_image_tokens(const float* pixels, int n, float* out) override {
    CS_CHECK_ARG(n >= 0, "encode_image_tokens: negative batch size ", n);
    if (n == 0) return;
    apply_threads();
    forward_images(pixels, n, out, /*gemm_only=*/false, /*all_tokens=*/true);
  }

  void encode_texts(const std::vector<std::vector<int32_t>>& ids, float* out) override {
    const std::vector<int> eot = nn::check_text_batch(cfg_, ids);
    if (ids.empty()) return;
    apply_threads();
    forward_texts(&ids, eot, out, /*gemm_only=*/false);
  }

  bool run_gemms_only(bool image_tower, int batch, int text_tokens) override {
    CS_CHECK_ARG(batch > 0, "run_gemms_only: batch must be positive");
    apply_threads();
    if (image_tower) {
      forward_images(nullptr, batch, nullptr, true);
    } else {
      CS_CHECK_ARG(text_tokens > 0 && text_tokens <= txt_.context,
                   "run_gemms_only: text_tokens outside [1, context]");
      forward_texts(nullptr, std::vector<int>(batch, text_tokens - 1), nullptr, true);
    }
    return true;
  }

  const ModelConfig& config() const override { return cfg_; }
  std::string name() const override { return "cpu"; }
  std::string precision() const override { return int8_ ? "int8" : bf16_ ? "bf16" : "fp32"; }

 private:
  // The OpenMP thread count is a per-thread setting: apply it on the calling thread (the
  // Engine may call from a worker thread other than the one that loaded the model).
  void apply_threads() const {
    if (threads_ > 0) omp_set_num_threads(threads_);
  }

  struct Linear {
    int in = 0, out = 0;
    PostOp post = PostOp::kNone;
    dt src_dt = dt::f32;         // of the activations
    dnnl::memory w;              // reordered weights [in, out] in the preferred layout
    dnnl::memory bias;           // f32 [1, out]; empty when none
    const float* src = nullptr;  // the WeightMap's tensor until load_weights()
    size_t offset = 0;           // of `w` in the arena
  };
  struct Block {
    std::vector<float> ln;  // ln_1 w, b, ln_2 w, b (each `width`)
    Linear qkv, out, fc, proj;
  };

  dt dst_dt(PostOp post) const {
    return post == PostOp::kGelu || post == PostOp::kQuickGelu ? act_dt_ : dt::f32;
  }

  dnnl::primitive_attr make_attr(PostOp post) const {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::post_ops ops;
    if (post == PostOp::kResidual) ops.append_sum(1.0f);
    if (post == PostOp::kGelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0, 0);
    // QuickGELU x * sigmoid(1.702 x) is oneDNN's swish with alpha 1.702.
    if (post == PostOp::kQuickGelu)
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.702f, 0);
    attr.set_post_ops(ops);
    return attr;
  }

  dnnl::matmul::primitive_desc make_pd(int m, int in, int out, bool bias, PostOp post,
                                       const dnnl::memory::desc& wmd, dt src_dt) const {
    const dnnl::memory::desc src({m, in}, src_dt, tag::ab);
    const dnnl::memory::desc dst({m, out}, dst_dt(post), tag::ab);
    const dnnl::memory::desc bmd =
        bias ? dnnl::memory::desc({1, out}, dt::f32, tag::ab) : dnnl::memory::desc();
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wmd, bmd, dst), make_attr(post),
                                        eng_);
  }

  // torch Linear weights are [out, in] row-major, i.e. the [in, out] matrix in tag `ba`. This
  // only plans the layout and the weight's place in the arena; load_weights() fills it.
  Linear make_linear(const float* w, const float* b, int in, int out, PostOp post, int typical_m,
                     dt src_dt = dt::undef) {
    Linear l;
    l.in = in;
    l.out = out;
    l.post = post;
    l.src_dt = src_dt == dt::undef ? act_dt_ : src_dt;
    auto key = std::make_tuple(in, out, b != nullptr, static_cast<int>(post));
    auto it = wlayout_.find(key);
    if (it == wlayout_.end()) {
      const dnnl::memory::desc any({in, out}, l.src_dt, tag::any);
      it = wlayout_
               .emplace(
                   key,
                   make_pd(typical_m, in, out, b != nullptr, post, any, l.src_dt).weights_desc())
               .first;
    }
    l.src = w;
    l.offset = arena_size_;
    arena_size_ += (it->second.get_size() + 4095) / 4096 * 4096;
    if (b != nullptr) {
      l.bias = dnnl::memory({{1, out}, dt::f32, tag::ab}, eng_);
      std::memcpy(l.bias.get_data_handle(), b, sizeof(float) * out);
    }
    return l;
  }

  // Reorders every planned weight into one arena: transparent huge pages there spare the
  // kernel ~150k page faults for ViT-B/32, most of the load time.
  void load_weights() {
    constexpr size_t kHuge = 2u << 20;
    const size_t bytes = std::max<size_t>((arena_size_ + kHuge - 1) / kHuge * kHuge, kHuge);
    arena_.reset(static_cast<uint8_t*>(std::aligned_alloc(kHuge, bytes)));
    CS_CHECK_ARG(arena_ != nullptr, "cpu backend: cannot allocate ", bytes, " bytes for weights");
    madvise(arena_.get(), bytes, MADV_HUGEPAGE);
    auto fill = [&](Linear& l) {
      const dnnl::memory::desc& wmd = wlayout_.at(
          std::make_tuple(l.in, l.out, static_cast<bool>(l.bias), static_cast<int>(l.post)));
      populate(l.src, sizeof(float) * l.in * l.out);
      dnnl::memory user({{l.in, l.out}, dt::f32, tag::ba}, eng_, const_cast<float*>(l.src));
      l.w = dnnl::memory(wmd, eng_, arena_.get() + l.offset);
      dnnl::reorder(user, l.w).execute(strm_, user, l.w);
      l.src = nullptr;
    };
    fill(patch_);
    for (auto* blocks : {&vis_blocks_, &txt_blocks_}) {
      for (Block& b : *blocks) {
        for (Linear* l : {&b.qkv, &b.out, &b.fc, &b.proj}) fill(*l);
      }
    }
    strm_.wait();
  }

  std::vector<Block> make_blocks(const std::vector<nn::BlockWeights>& src, const nn::TowerShape& s,
                                 int typical_m) {
    std::vector<Block> blocks;
    const PostOp act = quick_gelu_ ? PostOp::kQuickGelu : PostOp::kGelu;
    for (const nn::BlockWeights& b : src) {
      Block k;
      for (const float* p : {b.ln1_w, b.ln1_b, b.ln2_w, b.ln2_b})
        k.ln.insert(k.ln.end(), p, p + s.width);
      k.qkv = make_linear(b.in_proj_w, b.in_proj_b, s.width, 3 * s.width, PostOp::kNone, typical_m);
      k.out =
          make_linear(b.out_proj_w, b.out_proj_b, s.width, s.width, PostOp::kResidual, typical_m);
      k.fc = make_linear(b.fc_w, b.fc_b, s.width, s.hidden, act, typical_m);
      k.proj = make_linear(b.proj_w, b.proj_b, s.hidden, s.width, PostOp::kResidual, typical_m);
      blocks.push_back(std::move(k));
    }
    return blocks;
  }

  struct Small {
    std::vector<float> data;
    std::vector<long> offsets;
  };
  static Small copy_small(std::initializer_list<std::pair<const float*, long>> parts) {
    Small s;
    for (const auto& [p, n] : parts) {
      s.offsets.push_back(static_cast<long>(s.data.size()));
      s.data.insert(s.data.end(), p, p + n);
    }
    return s;
  }
  void rebind_small() {
    const float* v = vis_small_.data.data();
    const auto& vo = vis_small_.offsets;
    vis_.class_emb = v + vo[0];
    vis_.pos_emb = v + vo[1];
    vis_.ln_pre_w = v + vo[2];
    vis_.ln_pre_b = v + vo[3];
    vis_.ln_post_w = v + vo[4];
    vis_.ln_post_b = v + vo[5];
    vis_.proj = v + vo[6];
    vis_.conv1_w = nullptr;
    vis_.blocks.clear();
    const float* t = txt_small_.data.data();
    const auto& to = txt_small_.offsets;
    txt_.token_emb = t + to[0];
    txt_.pos_emb = t + to[1];
    txt_.ln_final_w = t + to[2];
    txt_.ln_final_b = t + to[3];
    txt_.proj = t + to[4];
    txt_.blocks.clear();
  }

  // Runs `l` on m rows: dst = post(src @ W + b) (+ dst for the residual post-op).
  void matmul(const Linear& l, int m, const void* src, void* dst) {
    auto key = std::make_tuple(m, l.in, l.out, static_cast<int>(l.post));
    auto it = prims_.find(key);
    if (it == prims_.end()) {
      auto pd =
          make_pd(m, l.in, l.out, static_cast<bool>(l.bias), l.post, l.w.get_desc(), l.src_dt);
      if (debug_enabled()) {
        std::fprintf(stderr, "clipserve: matmul m=%d k=%d n=%d post=%d: %s\n", m, l.in, l.out,
                     static_cast<int>(l.post), pd.impl_info_str());
      }
      scratch_.resize(std::max(scratch_.size(), pd.scratchpad_desc().get_size()));
      it = prims_
               .emplace(key,
                        Prim{dnnl::matmul(pd), pd.src_desc(), pd.dst_desc(), pd.scratchpad_desc()})
               .first;
    }
    Prim& p = it->second;
    dnnl::memory src_m(p.src, eng_, const_cast<void*>(src));
    dnnl::memory dst_m(p.dst, eng_, dst);
    dnnl::memory scratch_m(p.scratch, eng_, scratch_.data());
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src_m},
                                               {DNNL_ARG_WEIGHTS, l.w},
                                               {DNNL_ARG_DST, dst_m},
                                               {DNNL_ARG_SCRATCHPAD, scratch_m}};
    if (l.bias) args.emplace(DNNL_ARG_BIAS, l.bias);
    p.prim.execute(strm_, args);
  }

  void run_blocks(const std::vector<Block>& blocks, const nn::TowerShape& s, int m,
                  const std::vector<SeqSpan>& seqs, bool causal, bool gemm_only) {
    if (int8_) {  // the text tower is the causal one
      (causal ? txt_int8_ : vis_int8_)->run(x_.data(), m, seqs, causal, gemm_only);
      return;
    }
    const Kernels& k = kernels();
    float* x = x_.data();
    void* h = h_.data();
    void* att = att_.data();
    void* mlp = mlp_.data();
    float* qkv = qkv_.data();
    const int w = s.width;
    for (const Block& b : blocks) {
      if (!gemm_only) k.layer_norm(x, m, w, b.ln.data(), b.ln.data() + w, h, bf16_);
      matmul(b.qkv, m, h, qkv);
      if (!gemm_only) {
        attention_.run(qkv, seqs.data(), static_cast<int>(seqs.size()), w, s.heads, causal, att,
                       bf16_);
      }
      matmul(b.out, m, att, x);
      if (!gemm_only) k.layer_norm(x, m, w, b.ln.data() + 2 * w, b.ln.data() + 3 * w, h, bf16_);
      matmul(b.fc, m, h, mlp);
      matmul(b.proj, m, mlp, x);
    }
  }

  void reserve(long rows, const nn::TowerShape& s, long extra_qkv) {
    grow(x_, rows * s.width);
    grow(qkv_, std::max(rows * 3 * s.width, extra_qkv));
    grow(h_, rows * s.width * act_size_ / 4 + 1);
    grow(att_, rows * s.width * act_size_ / 4 + 1);
    grow(mlp_, rows * s.hidden * act_size_ / 4 + 1);
  }
  static void grow(std::vector<float>& v, long n) {
    if (static_cast<long>(v.size()) < n) v.resize(n);
  }

  // out[r] = pooled[r] @ proj ([width, embed]).
  void project(const float* pooled, int rows, int width, const float* proj, float* out) const {
    const int e = embed_dim_;
    for (int r = 0; r < rows; ++r) {
      float* o = out + static_cast<long>(r) * e;
      std::fill(o, o + e, 0.0f);
      for (int i = 0; i < width; ++i) {
        const float a = pooled[static_cast<long>(r) * width + i];
        const float* pr = proj + static_cast<long>(i) * e;
        for (int c = 0; c < e; ++c) o[c] += a * pr[c];
      }
    }
  }

  // all_tokens: out receives the n x tokens x width hidden state before ln_post instead of
  // the pooled, projected features.
  void forward_images(const float* pixels, int n, float* out, bool gemm_only,
                      bool all_tokens = false) {
    const nn::TowerShape& s = vis_.shape;
    const int S = vis_.image_size, p = vis_.patch, g = vis_.grid, w = s.width;
    const int tokens = vis_.tokens(), pp = 3 * p * p;
    const long m = static_cast<long>(n) * tokens, mp = static_cast<long>(n) * g * g;
    reserve(m, s, mp * w);
    grow(patches_, mp * pp * (patch_dt_ == dt::bf16 ? 2 : 4) / 4 + 1);
    if (!gemm_only) {
      // im2col in the conv weight's (channel, ky, kx) order.
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < n; ++b) {
        for (int gy = 0; gy < g; ++gy) {
          std::vector<float> row(pp);
          for (int gx = 0; gx < g; ++gx) {
            const float* img = pixels + static_cast<long>(b) * 3 * S * S;
            float* dst = row.data();
            for (int c = 0; c < 3; ++c) {
              for (int ky = 0; ky < p; ++ky) {
                const float* src = img + (static_cast<long>(c) * S + gy * p + ky) * S + gx * p;
                std::memcpy(dst, src, sizeof(float) * p);
                dst += p;
              }
            }
            const long r = (static_cast<long>(b) * g + gy) * g + gx;
            if (patch_dt_ == dt::bf16) {
              kernels().to_bf16(row.data(), pp,
                                reinterpret_cast<uint16_t*>(patches_.data()) + r * pp);
            } else {
              std::memcpy(patches_.data() + r * pp, row.data(), sizeof(float) * pp);
            }
          }
        }
      }
    }
    float* pe = qkv_.data();  // [mp, w] scratch before the blocks need qkv
    matmul(patch_, static_cast<int>(mp), patches_.data(), pe);
    if (!gemm_only) {
      float* x = x_.data();
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < n; ++b) {
        for (int t = 0; t < tokens; ++t) {
          float* xr = x + (static_cast<long>(b) * tokens + t) * w;
          const float* src =
              t == 0 ? vis_.class_emb : pe + (static_cast<long>(b) * g * g + t - 1) * w;
          const float* pos = vis_.pos_emb + static_cast<long>(t) * w;
          for (int c = 0; c < w; ++c) xr[c] = src[c] + pos[c];
        }
      }
      kernels().layer_norm(x, m, w, vis_.ln_pre_w, vis_.ln_pre_b, x, false);
    }
    std::vector<SeqSpan> seqs(n);
    for (int b = 0; b < n; ++b) seqs[b] = {b * tokens, tokens};
    run_blocks(vis_blocks_, s, static_cast<int>(m), seqs, false, gemm_only);
    strm_.wait();
    if (gemm_only) return;
    if (all_tokens) {
      std::memcpy(out, x_.data(), sizeof(float) * m * w);
      return;
    }
    std::vector<float> pooled(static_cast<size_t>(n) * w);
    for (int b = 0; b < n; ++b) {
      kernels().layer_norm(x_.data() + static_cast<long>(b) * tokens * w, 1, w, vis_.ln_post_w,
                           vis_.ln_post_b, pooled.data() + static_cast<long>(b) * w, false);
    }
    project(pooled.data(), n, w, vis_.proj, out);
  }

  // ids == nullptr: GEMM-only pass with eot[r] + 1 tokens per row.
  void forward_texts(const std::vector<std::vector<int32_t>>* ids, const std::vector<int>& eot,
                     float* out, bool gemm_only) {
    const nn::TowerShape& s = txt_.shape;
    const int w = s.width, n = static_cast<int>(eot.size());
    std::vector<SeqSpan> seqs(n);
    long m = 0;
    for (int r = 0; r < n; ++r) {
      // Under the causal mask nothing after the EOT position reaches it: stop there.
      seqs[r] = {static_cast<int>(m), eot[r] + 1};
      m += eot[r] + 1;
    }
    // Rows rounded up to a multiple of 8 bound the number of distinct matmul primitives; the
    // padding rows are zeros, independent of the real ones (every op but attention is per row).
    const long mpad = (m + 7) / 8 * 8;
    reserve(mpad, s, 0);
    if (!gemm_only) {
      float* x = x_.data();
      for (int r = 0; r < n; ++r) {
        for (int t = 0; t < seqs[r].length; ++t) {
          float* xr = x + (static_cast<long>(seqs[r].offset) + t) * w;
          const float* te = txt_.token_emb + static_cast<long>((*ids)[r][t]) * w;
          const float* pe = txt_.pos_emb + static_cast<long>(t) * w;
          for (int c = 0; c < w; ++c) xr[c] = te[c] + pe[c];
        }
      }
      std::fill(x + m * w, x + mpad * w, 0.0f);
    }
    run_blocks(txt_blocks_, s, static_cast<int>(mpad), seqs, true, gemm_only);
    strm_.wait();
    if (gemm_only) return;
    std::vector<float> pooled(static_cast<size_t>(n) * w);
    for (int r = 0; r < n; ++r) {
      const long row = seqs[r].offset + eot[r];
      kernels().layer_norm(x_.data() + row * w, 1, w, txt_.ln_final_w, txt_.ln_final_b,
                           pooled.data() + static_cast<long>(r) * w, false);
    }
    project(pooled.data(), n, w, txt_.proj, out);
  }

  struct Prim {
    dnnl::matmul prim;
    dnnl::memory::desc src, dst, scratch;
  };

  ModelConfig cfg_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  Attention attention_;
  bool bf16_ = false;
  bool int8_ = false;
  std::unique_ptr<Int8Blocks> vis_int8_, txt_int8_;
  int threads_ = 0;
  dt act_dt_ = dt::f32;
  dt patch_dt_ = dt::f32;
  long act_size_ = 4;
  bool quick_gelu_ = false;
  int embed_dim_ = 0;

  nn::VisionWeights vis_;
  nn::TextWeights txt_;
  Small vis_small_, txt_small_;
  Linear patch_;
  std::vector<Block> vis_blocks_, txt_blocks_;

  std::map<std::tuple<int, int, bool, int>, dnnl::memory::desc> wlayout_;
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> arena_;  // all reordered weights
  size_t arena_size_ = 0;
  std::map<std::tuple<int, int, int, int>, Prim> prims_;
  // Activations, reused across calls (grow only). Float vectors also hold bf16 data.
  std::vector<float> x_, qkv_, h_, att_, mlp_, patches_;
  std::vector<uint8_t> scratch_;
};

}  // namespace

}  // namespace clipserve::cpu

namespace clipserve::nn {

std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& cfg,
                                          std::shared_ptr<const WeightMap> weights,
                                          const BackendOptions& opt) {
  CS_CHECK_ARG(weights != nullptr, "make_cpu_backend: no weights");
  try {
    return std::make_unique<cpu::CpuBackend>(cfg, std::move(weights), opt);
  } catch (const dnnl::error& e) {
    CS_THROW(kInternal, "oneDNN failed while loading the model: ", e.what());
  }
}

}  // namespace clipserve::nn

// int8 residual blocks on oneDNN: int8 linear layers and the block loop (row kernels in
// int8_kernels.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/check.h"
#include "cpu/int8.h"
#include "cpu/kernels.h"

namespace clipserve::cpu {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

bool debug_enabled() {
  static const bool on = std::getenv("CLIPSERVE_DEBUG_ONEDNN") != nullptr;
  return on;
}

// CLIPSERVE_INT8_PROFILE=1: wall time per step of Int8Blocks::run summed over the process,
// printed to stderr at exit (where the time goes; see docs/backends.md).
struct StepTimes {
  static constexpr int kSteps = 7;
  double ms[kSteps] = {};
  ~StepTimes() {
    static const char* names[kSteps] = {"ln1+quant",        "qkv (mm+epi)",     "attention",
                                        "att quant",        "out (mm+epi+ln2)", "fc (mm+epi+gelu)",
                                        "proj (mm+epi+ln1)"};
    double total = 0;
    for (double v : ms) total += v;
    if (total == 0) return;
    std::fprintf(stderr, "clipserve int8 profile (ms):");
    for (int i = 0; i < kSteps; ++i) std::fprintf(stderr, " %s %.1f", names[i], ms[i]);
    std::fprintf(stderr, "\n");
  }
};
StepTimes* step_times() {
  static const bool on = std::getenv("CLIPSERVE_INT8_PROFILE") != nullptr;
  static StepTimes times;
  return on ? &times : nullptr;
}
class StepClock {
 public:
  explicit StepClock(StepTimes* t) : t_(t) { last_ = now(); }
  void lap(double& slot) {
    if (t_ == nullptr) return;
    const double n = now();
    slot += n - last_;
    last_ = n;
  }

 private:
  static double now() {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  StepTimes* t_;
  double last_ = 0;
};

}  // namespace

Int8Linear::Int8Linear(const dnnl::engine& eng, const float* w, const float* b, int in, int out,
                       int typical_m)
    : eng_(eng), in_(in), out_(out) {
  const nn::ref::QuantWeights qw = nn::ref::quantize_weights(w, out, in);
  wscale_ = qw.scale;
  wt_.resize(static_cast<size_t>(in) * out);
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i)
      wt_[static_cast<size_t>(i) * out + o] = qw.q[static_cast<size_t>(o) * in + i];
  }
  const dnnl::memory::desc any({in, out}, dt::s8, tag::any);
  const dnnl::memory::desc wmd = make_pd(std::max(typical_m, 1), any).weights_desc();
  // [out, in] row-major is the [in, out] matrix in tag ba.
  dnnl::memory user({{in, out}, dt::s8, tag::ba}, eng_, const_cast<int8_t*>(qw.q.data()));
  w_ = dnnl::memory(wmd, eng_);
  dnnl::stream s(eng_);
  dnnl::reorder(user, w_).execute(s, user, w_);
  s.wait();
  bias_.assign(out, 0.0f);
  if (b != nullptr) std::copy(b, b + out, bias_.begin());
}

// oneDNN 2.6's brgemm int8 matmul (AMX / VNNI) applies a per-column output scale at full speed
// (measured: as fast as no scale, faster than a binary-mul post-op), but falls back to its
// reference kernel for per-row operands and to gemm:jit (4-5x slower) for runtime scales; so
// the matmul gives float(acc) * s_w and our epilogue the per-token s_x and everything after.
dnnl::matmul::primitive_desc Int8Linear::make_pd(int m, const dnnl::memory::desc& wmd) const {
  const dnnl::memory::desc src({m, in_}, dt::s8, tag::ab);
  const dnnl::memory::desc dst({m, out_}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_output_scales(2, wscale_);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wmd, dst), attr, eng_);
}

void Int8Linear::matmul(dnnl::stream& strm, int m, const int8_t* xq, float* t) {
  auto it = prims_.find(m);
  if (it == prims_.end()) {
    auto pd = make_pd(m, w_.get_desc());
    if (debug_enabled()) {
      std::fprintf(stderr, "clipserve: int8 matmul m=%d k=%d n=%d: %s\n", m, in_, out_,
                   pd.impl_info_str());
    }
    it = prims_.emplace(m, Prim{dnnl::matmul(pd), pd.src_desc(), pd.dst_desc()}).first;
  }
  Prim& p = it->second;
  dnnl::memory src_m(p.src, eng_, const_cast<int8_t*>(xq));
  dnnl::memory dst_m(p.dst, eng_, t);
  p.prim.execute(strm, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, dst_m}});
  strm.wait();
}

Int8Epilogue Int8Linear::epilogue(const float* t, const Int8Rows* x, Post post) const {
  Int8Epilogue e;
  e.t = t;
  e.out = out_;
  e.bias = bias_.data();
  e.in = x;
  e.wt = wt_.data();
  e.wscale = wscale_.data();
  e.act = post == Post::kGelu ? 1 : post == Post::kQuickGelu ? 2 : 0;
  e.residual = post == Post::kResidual;
  return e;
}

void Int8Linear::run(dnnl::stream& strm, int m, const Int8Rows& x, Post post, float* y) {
  const long n = static_cast<long>(m) * out_;
  if (static_cast<long>(tmp_.size()) < n) tmp_.resize(n);
  matmul(strm, m, x.q, tmp_.data());
  Int8Epilogue e = epilogue(tmp_.data(), &x, post);
  e.y = y;
  int8_kernels().epilogue(e, m);
}

Int8Blocks::Int8Blocks(const dnnl::engine& eng, const dnnl::stream& strm,
                       const std::vector<nn::BlockWeights>& blocks, const nn::TowerShape& s,
                       bool quick_gelu, int typical_m, bool outliers)
    : strm_(strm),
      attention_(eng, strm),
      head_attn_(eng, strm),
      shape_(s),
      act_(quick_gelu ? Int8Linear::Post::kQuickGelu : Int8Linear::Post::kGelu),
      kmax_(outliers ? nn::ref::kMaxOutliers : 0) {
  for (const nn::BlockWeights& b : blocks) {
    Block k;
    for (const float* p : {b.ln1_w, b.ln1_b, b.ln2_w, b.ln2_b})
      k.ln.insert(k.ln.end(), p, p + s.width);
    k.qkv = std::make_unique<Int8Linear>(eng, b.in_proj_w, b.in_proj_b, s.width, 3 * s.width,
                                         typical_m);
    k.out =
        std::make_unique<Int8Linear>(eng, b.out_proj_w, b.out_proj_b, s.width, s.width, typical_m);
    k.fc = std::make_unique<Int8Linear>(eng, b.fc_w, b.fc_b, s.width, s.hidden, typical_m);
    k.proj = std::make_unique<Int8Linear>(eng, b.proj_w, b.proj_b, s.hidden, s.width, typical_m);
    blocks_.push_back(std::move(k));
  }
}

Int8Rows Int8Blocks::QBuf::rows(int kmax) {
  Int8Rows r;
  r.q = q.data();
  r.scale = scale.data();
  r.kmax = kmax;
  if (kmax > 0) {
    r.count = count.data();
    r.col = col.data();
    r.val = val.data();
  }
  return r;
}

void Int8Blocks::reserve(long chunk, long rows) {
  auto grow = [](auto& v, long n) {
    if (static_cast<long>(v.size()) < n) v.resize(n);
  };
  grow(t_, chunk * std::max(3 * shape_.width, shape_.hidden));
  grow(qkv_, rows * 3 * shape_.width);
  grow(att_, rows * shape_.width);
  for (QBuf* b : {&a_, &b_}) {
    grow(b->q, rows * std::max(shape_.width, shape_.hidden));
    grow(b->scale, rows);
    grow(b->count, rows);
    grow(b->col, rows * std::max(kmax_, 1));
    grow(b->val, rows * std::max(kmax_, 1));
  }
}

namespace {

// The rows [r0, ...) of a quantized activation of `width` columns.
Int8Rows offset_rows(const Int8Rows& r, long r0, int width) {
  Int8Rows o = r;
  o.q += r0 * width;
  o.scale += r0;
  if (o.count != nullptr) {
    o.count += r0;
    o.col += r0 * o.kmax;
    o.val += r0 * o.kmax;
  }
  return o;
}

// Rows per matmul + epilogue call (CLIPSERVE_INT8_CHUNK; default: the whole batch). Chunks
// of 128 rows keep each chunk's float output in L2 for the epilogue and the matmul runs as
// fast on them, but on the loaded dev machine the whole-batch and 128-row runs measured the
// same (image b16, 1 thread, 3 interleaved pairs): left off by default.
int chunk_rows() {
  static const int rows = [] {
    const char* v = std::getenv("CLIPSERVE_INT8_CHUNK");
    const int n = v ? std::atoi(v) : 0;
    return n > 0 ? n : 1 << 30;
  }();
  return rows;
}

}  // namespace

void Int8Blocks::layer(Int8Linear& l, int m, const Int8Rows& in, const Int8Epilogue* proto) {
  const int chunk = chunk_rows();
  float* t = t_.data();
  for (int r0 = 0; r0 < m; r0 += chunk) {
    const int mc = std::min(chunk, m - r0);
    l.matmul(strm_, mc, in.q + static_cast<long>(r0) * l.in(), t);
    if (proto == nullptr) continue;  // gemm only
    Int8Epilogue e = *proto;
    const Int8Rows in_c = offset_rows(in, r0, l.in());
    Int8Rows next_c;
    e.t = t;
    e.in = &in_c;
    if (e.y != nullptr) e.y += static_cast<long>(r0) * l.out();
    if (e.next != nullptr) {
      next_c = offset_rows(*e.next, r0, l.out());
      e.next = &next_c;
    }
    if (e.head_pos != nullptr) {
      e.head_pos += r0;
      e.head_stride += r0;
    }
    int8_kernels().epilogue(e, mc);
  }
}

// Per block: [LN1 + quantize] -> qkv -> attention -> quantize -> out_proj + residual + LN2 +
// quantize -> c_fc + GELU + quantize -> c_proj + residual + (the next block's LN1 + quantize).
// The bracketed first step is fused into the previous block's last epilogue.
void Int8Blocks::run(float* x, int m, const std::vector<SeqSpan>& seqs, bool causal,
                     bool gemm_only) {
  reserve(std::min(m, chunk_rows()), m);
  const Int8Kernels& k = int8_kernels();
  const int w = shape_.width;
  const Int8Rows a = a_.rows(kmax_), b = b_.rows(kmax_);
  using P = Int8Linear::Post;
  // Attention on bf16 head planes (Int8HeadAttention); CLIPSERVE_INT8_ROW_ATTENTION=1 runs
  // the fp32 row-major attention of attention.h instead (for comparisons).
  static const bool row_attention = std::getenv("CLIPSERVE_INT8_ROW_ATTENTION") != nullptr;
  const int nseq = static_cast<int>(seqs.size()), d = w / shape_.heads;
  StepTimes* st = gemm_only ? nullptr : step_times();
  StepTimes dummy;
  double* ms = st ? st->ms : dummy.ms;
  StepClock clk(st);
  if (!gemm_only && !row_attention) head_attn_.prepare(seqs, m, causal, shape_.heads, d);
  if (!gemm_only && !blocks_.empty())
    k.quantize(x, m, w, blocks_[0].ln.data(), blocks_[0].ln.data() + w, a);
  clk.lap(ms[0]);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& bl = blocks_[i];
    {
      Int8Epilogue e = bl.qkv->epilogue(nullptr, nullptr, P::kNone);
      if (!row_attention) {
        head_attn_.bind(e);
      } else {
        e.y = qkv_.data();
      }
      layer(*bl.qkv, m, a, gemm_only ? nullptr : &e);
    }
    clk.lap(ms[1]);
    if (!gemm_only) {
      if (!row_attention) {
        const float* o = head_attn_.run();
        clk.lap(ms[2]);
        k.quantize_heads(o, m, head_attn_.head_pos(), head_attn_.head_stride(), shape_.heads, d, b);
      } else {
        attention_.run(qkv_.data(), seqs.data(), nseq, w, shape_.heads, causal, att_.data(), false);
        clk.lap(ms[2]);
        k.quantize(att_.data(), m, w, nullptr, nullptr, b);
      }
      clk.lap(ms[3]);
    }
    {
      Int8Epilogue e = bl.out->epilogue(nullptr, nullptr, P::kResidual);
      e.y = x;
      e.ln_g = bl.ln.data() + 2 * w;
      e.ln_b = bl.ln.data() + 3 * w;
      e.next = &a;
      layer(*bl.out, m, b, gemm_only ? nullptr : &e);
    }
    clk.lap(ms[4]);
    {
      Int8Epilogue e = bl.fc->epilogue(nullptr, nullptr, act_);
      e.next = &b;
      layer(*bl.fc, m, a, gemm_only ? nullptr : &e);
    }
    clk.lap(ms[5]);
    {
      Int8Epilogue e = bl.proj->epilogue(nullptr, nullptr, P::kResidual);
      e.y = x;
      if (i + 1 < blocks_.size()) {
        e.ln_g = blocks_[i + 1].ln.data();
        e.ln_b = blocks_[i + 1].ln.data() + w;
        e.next = &a;
      }
      layer(*bl.proj, m, b, gemm_only ? nullptr : &e);
    }
    clk.lap(ms[6]);
  }
  strm_.wait();
}

}  // namespace clipserve::cpu

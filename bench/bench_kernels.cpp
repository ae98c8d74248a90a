// Micro-benchmarks of the CPU kernels beside the oneDNN matmuls (LayerNorm, attention core),
// each build (generic, AVX-512) and its reference twin.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <vector>

#include "cpu/attention.h"
#include "cpu/kernels.h"
#include "nn/ref_kernels.h"

namespace {

using clipserve::cpu::Kernels;
using clipserve::cpu::SeqSpan;

std::vector<float> random_vec(size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

const Kernels& build(int which) {
  return which == 0 ? clipserve::cpu::generic_kernels() : clipserve::cpu::kernels();
}

// args: rows, width, build (0 generic, 1 best)
void BM_LayerNorm(benchmark::State& st) {
  const int rows = st.range(0), width = st.range(1);
  const Kernels& k = build(st.range(2));
  auto x = random_vec(static_cast<size_t>(rows) * width), g = random_vec(width),
       b = random_vec(width);
  std::vector<float> y(x.size());
  for (auto _ : st) {
    k.layer_norm(x.data(), rows, width, g.data(), b.data(), y.data(), false);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetLabel(k.isa);
}
BENCHMARK(BM_LayerNorm)->Args({50, 768, 0})->Args({50, 768, 1})->Args({800, 768, 1});

// args: tokens, width, heads, causal, implementation (1 default: fused for non-causal on
// AVX-512, 2 reference, 3 oneDNN batched matmuls + softmax, 4 default with bf16 output: the
// backend's bf16 mode, fused in bf16)
void BM_Attention(benchmark::State& st) {
  const int t = st.range(0), width = st.range(1), heads = st.range(2);
  const bool causal = st.range(3);
  auto qkv = random_vec(static_cast<size_t>(t) * 3 * width);
  std::vector<float> out(static_cast<size_t>(t) * width);
  std::vector<uint16_t> out16(out.size());
  const SeqSpan seq{0, t};
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  clipserve::cpu::Attention att(eng, dnnl::stream(eng));
  if (st.range(4) == 3) att.set_mode(clipserve::cpu::Attention::Mode::kMatmuls);
  for (auto _ : st) {
    if (st.range(4) == 2) {
      clipserve::nn::ref::attention(qkv.data(), t, width, heads, causal, out.data());
    } else if (st.range(4) == 4) {
      att.run(qkv.data(), &seq, 1, width, heads, causal, out16.data(), true);
    } else {
      att.run(qkv.data(), &seq, 1, width, heads, causal, out.data(), false);
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 4.0 * t * t * width * (causal ? 0.5 : 1.0);
  st.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention)
    ->Args({50, 768, 12, 0, 1})    // ViT-B/32
    ->Args({197, 768, 12, 0, 1})   // ViT-B/16
    ->Args({197, 768, 12, 0, 2})   // ViT-B/16, reference
    ->Args({257, 1024, 16, 0, 1})  // ViT-L/14
    ->Args({77, 512, 8, 1, 1})     // text, causal
    ->Args({577, 768, 12, 0, 1})   // OWL-ViT B/32 at 768 px, fused
    ->Args({577, 768, 12, 0, 3})   //   oneDNN matmuls
    ->Args({577, 768, 12, 0, 4})   //   fused, bf16
    ->Args({2305, 768, 12, 0, 1})  // OWL-ViT B/16 at 768 px, fused
    ->Args({2305, 768, 12, 0, 3})  //   oneDNN matmuls
    ->Args({2305, 768, 12, 0, 4})  //   fused, bf16
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

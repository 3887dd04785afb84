// Attention and element-wise kernels vs the scalar oracle (lumen::ref), which is also what
// lumen's cpu ops were before they were vectorised. Not a test.
// Usage: kernels_bench [--min-ms 100] [--filter substring] [--threads N]
// Times are the best of repeated runs (wall) and of process CPU time divided by the pool's
// thread count: on a loaded machine the CPU figure is closer to the uncontended time.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/membw.h"
#include "core/threads.h"
#include "kernels/ops.h"

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Timing {
  double wall = 1e30, cpu = 1e30;
};

Timing time_best(const std::function<void()>& fn, double min_ms) {
  fn();
  Timing best;
  double total = 0;
  int reps = 0;
  while (total < min_ms * 1e-3 || reps < 2) {
    const double c0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best.wall = std::min(best.wall, dt);
    best.cpu = std::min(best.cpu, (cpu_seconds() - c0) / lumen::num_threads());
    total += dt;
    ++reps;
  }
  return best;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void row(const char* name, double work, const char* unit, const Timing& fast, const Timing& slow) {
  std::printf("%-28s %10.2f %10.2f %10.2f %10.2f %8.1fx  (%s)\n", name, work / fast.wall, work / fast.cpu,
              work / slow.wall, work / slow.cpu, slow.cpu / fast.cpu, unit);
  std::fflush(stdout);
}

// FMA peak of one core, measured: 12 independent 8-wide FMA chains (CPU time).
double fma_peak_gflops() {
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  // Distinct starting values, or the compiler merges the identical chains into one.
#define LUMEN_INIT(i) __m256 a##i = _mm256_set1_ps(1.f + 1e-3f * i);
  LUMEN_INIT(0) LUMEN_INIT(1) LUMEN_INIT(2) LUMEN_INIT(3) LUMEN_INIT(4) LUMEN_INIT(5)
  LUMEN_INIT(6) LUMEN_INIT(7) LUMEN_INIT(8) LUMEN_INIT(9) LUMEN_INIT(10) LUMEN_INIT(11)
#undef LUMEN_INIT
  double best = 1e30;
  const long iters = 2000000;
  for (int rep = 0; rep < 10; ++rep) {
    const double c0 = cpu_seconds();
    for (long it = 0; it < iters; ++it) {
#define LUMEN_FMA(x) x = _mm256_fmadd_ps(x, b, c);
      LUMEN_FMA(a0) LUMEN_FMA(a1) LUMEN_FMA(a2) LUMEN_FMA(a3) LUMEN_FMA(a4) LUMEN_FMA(a5)
      LUMEN_FMA(a6) LUMEN_FMA(a7) LUMEN_FMA(a8) LUMEN_FMA(a9) LUMEN_FMA(a10) LUMEN_FMA(a11)
#undef LUMEN_FMA
    }
    best = std::min(best, cpu_seconds() - c0);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  volatile float sink = _mm256_cvtss_f32(s);
  (void)sink;
  return iters * 12.0 * 16.0 / best * 1e-9;
}

// One pre-LN transformer encoder layer (CLIP ViT style) on packed weights: the shape of the
// work the model code will run. x [B*L, D].
struct LayerShape {
  const char* name;
  int64_t B, L, D, heads, mlp;
};

void bench_layer(const LayerShape& s, double min_ms, double peak_all_threads) {
  using namespace lumen;
  const int64_t M = s.B * s.L, D = s.D, hd = D / s.heads;
  auto x0 = random_vec(M * D, 1);
  auto wqkv = random_vec(3 * D * D, 2, -0.05f, 0.05f), wo = random_vec(D * D, 3, -0.05f, 0.05f);
  auto w1 = random_vec(s.mlp * D, 4, -0.05f, 0.05f), w2 = random_vec(D * s.mlp, 5, -0.05f, 0.05f);
  auto bias = random_vec(std::max(3 * D, s.mlp), 6), g = random_vec(D, 7, 0.5f, 1.5f);
  PackedWeight pqkv = ops::pack_linear(wqkv.data(), 3 * D, D), po = ops::pack_linear(wo.data(), D, D);
  PackedWeight p1 = ops::pack_linear(w1.data(), s.mlp, D), p2 = ops::pack_linear(w2.data(), D, s.mlp);
  std::vector<float> x(M * D), h(M * D), qkv(M * 3 * D), att(M * D), mlp(M * s.mlp);
  auto layer = [&] {
    std::memcpy(x.data(), x0.data(), x.size() * sizeof(float));
    ops::layer_norm(x.data(), M, D, g.data(), bias.data(), 1e-5f, h.data());
    ops::linear_packed(h.data(), M, pqkv, bias.data(), qkv.data());  // [M, 3D]
    for (int64_t b = 0; b < s.B; ++b) {
      const float* q = qkv.data() + b * s.L * 3 * D;
      ops::attention(q, 3 * D, q + D, 3 * D, q + 2 * D, 3 * D, s.L, s.L, s.heads, hd,
                     1.f / std::sqrt(static_cast<float>(hd)), AttentionMask{}, att.data() + b * s.L * D, D);
    }
    ops::linear_packed(att.data(), M, po, bias.data(), h.data());
    ops::add_inplace(x.data(), h.data(), M * D);
    ops::layer_norm(x.data(), M, D, g.data(), bias.data(), 1e-5f, h.data());
    ops::linear_packed(h.data(), M, p1, bias.data(), mlp.data());
    ops::quick_gelu(mlp.data(), M * s.mlp);
    ops::linear_packed(mlp.data(), M, p2, bias.data(), h.data());
    ops::add_inplace(x.data(), h.data(), M * D);
  };
  const double gflop =
      (2.0 * M * D * (4.0 * D + 2.0 * s.mlp) + 4.0 * s.B * s.heads * s.L * s.L * hd) * 1e-9;
  Timing t = time_best(layer, min_ms);
  std::printf("%-28s %10.2f %10.2f  GFLOP/s; %.0f%% (wall) / %.0f%% (cpu) of the measured FMA peak\n", s.name,
              gflop / t.wall, gflop / t.cpu, 100 * gflop / t.wall / peak_all_threads,
              100 * gflop / t.cpu / peak_all_threads);
  std::fflush(stdout);
}

// Decode GEMV y[1, N] = x W^T on stored weight formats, against the memory read bandwidth
// measured here with the same threads. The weights cycle through copies totalling >= 1 GiB,
// so each call reads them from DRAM, not from the (large) last-level cache.
void bench_gemv(double min_ms) {
  using namespace lumen;
  bench::Buffer probe(size_t{1} << 30);
  const bench::Bandwidth bw = bench::best_read_bandwidth(probe, num_threads());
  std::printf("decode GEMV (M=1), weights from DRAM; read bandwidth %.1f GB/s wall, %.1f cpu (%d threads)\n",
              bw.wall, bw.cpu, num_threads());
  std::printf("%-30s %10s %10s %10s %8s %8s\n", "shape / format", "GB/s wall", "GB/s cpu", "us/call", "of bw", "(cpu)");
  const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}};
  for (const auto& sh : shapes) {
    const int64_t N = sh[0], K = sh[1];
    auto w = random_vec(N * K, 21, -0.05f, 0.05f), x = random_vec(K, 22);
    std::vector<float> y(N);
    Tensor W = Tensor::borrow(DType::F32, {N, K}, w.data(), nullptr);
    for (WeightFormat f : {WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16, WeightFormat::Q8_0}) {
      const LinearWeight base = ops::make_linear_weight(W, f);
      // Copies of the stored bytes (F32: of the packed panels) up to >= 1 GiB.
      const size_t bytes = base.bytes();
      const size_t copies = std::max<size_t>(2, ((size_t{1} << 30) + bytes - 1) / bytes);
      std::vector<LinearWeight> ws(copies, base);
      for (auto& c : ws) {
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        std::memcpy(p, f == WeightFormat::F32 ? static_cast<const void*>(base.packed.data.get()) : base.data.get(),
                    bytes);
        if (f == WeightFormat::F32)
          c.packed.data = std::shared_ptr<float>(static_cast<float*>(p), [](float* q) { std::free(q); });
        else
          c.data = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
      }
      size_t next = 0;
      Timing t = time_best([&] { ops::linear(x.data(), 1, ws[next++ % copies], nullptr, y.data()); }, min_ms);
      char name[64];
      std::snprintf(name, sizeof name, "gemv %lldx%lld %s", static_cast<long long>(N), static_cast<long long>(K),
                    weight_format_name(f));
      const double gbs = static_cast<double>(bytes) / t.wall * 1e-9, gbs_cpu = static_cast<double>(bytes) / t.cpu * 1e-9;
      std::printf("%-30s %10.1f %10.1f %10.1f %7.0f%% %7.0f%%\n", name, gbs, gbs_cpu, t.wall * 1e6, 100 * gbs / bw.wall,
                  100 * gbs_cpu / bw.cpu);
      std::fflush(stdout);
    }
  }
}

// Prefill y[M, N] = x W^T + b (M = 640: 576 image + 64 text tokens) on each weight format.
void bench_prefill(double min_ms, double peak_all_threads) {
  using namespace lumen;
  const int64_t M = 640;
  const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  std::printf("prefill M=%lld %-14s %10s %10s   (GFLOP/s; %% of the FMA peak of %d threads)\n",
              static_cast<long long>(M), "", "wall", "cpu", num_threads());
  for (const auto& sh : shapes) {
    const int64_t N = sh[0], K = sh[1];
    auto w = random_vec(N * K, 31, -0.05f, 0.05f), x = random_vec(M * K, 32), b = random_vec(N, 33);
    std::vector<float> y(M * N);
    Tensor W = Tensor::borrow(DType::F32, {N, K}, w.data(), nullptr);
    for (WeightFormat f : {WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16, WeightFormat::Q8_0}) {
      const LinearWeight lw = ops::make_linear_weight(W, f);
      Timing t = time_best([&] { ops::linear(x.data(), M, lw, b.data(), y.data()); }, min_ms);
      const double gflop = 2.0 * M * N * K * 1e-9;
      char name[64];
      std::snprintf(name, sizeof name, "prefill %lldx%lld %s", static_cast<long long>(N), static_cast<long long>(K),
                    weight_format_name(f));
      std::printf("%-30s %10.1f %10.1f   %.0f%% / %.0f%%\n", name, gflop / t.wall, gflop / t.cpu,
                  100 * gflop / t.wall / peak_all_threads, 100 * gflop / t.cpu / peak_all_threads);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lumen;
  double min_ms = 100;
  std::string filter;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--min-ms")) min_ms = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--filter")) filter = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) set_num_threads(std::atoi(argv[i + 1]));
  }
  auto wanted = [&](const char* name) { return filter.empty() || std::string(name).find(filter) != std::string::npos; };
  const double peak = fma_peak_gflops();
  std::printf("FMA peak: %.1f GFLOP/s per core x %d threads\n", peak, num_threads());
  const LayerShape layers[] = {{"layer vitb32 b1", 1, 50, 768, 12, 3072},
                               {"layer vitb32 b8", 8, 50, 768, 12, 3072},
                               {"layer vitl14-336 b1", 1, 577, 1024, 16, 4096},
                               {"layer text512 b1", 1, 77, 512, 8, 2048}};
  if (wanted("gemv")) bench_gemv(min_ms);
  if (wanted("prefill")) bench_prefill(min_ms, peak * num_threads());
  std::printf("%-28s %10s %10s\n", "encoder layer (packed)", "wall", "cpu");
  for (const auto& l : layers)
    if (wanted(l.name)) bench_layer(l, min_ms, peak * num_threads());
  std::printf("threads: %d\n%-28s %10s %10s %10s %10s %9s\n", num_threads(), "kernel", "ops wall", "ops cpu",
              "ref wall", "ref cpu", "cpu speedup");

  struct AttnShape {
    const char* name;
    int64_t Lq, Lk, heads, hd;
    bool causal;
  };
  const AttnShape attn[] = {{"attn vitb32 L50 h12", 50, 50, 12, 64, false},
                            {"attn vitl14-336 L577 h16", 577, 577, 16, 64, false},
                            {"attn text L77 h8 causal", 77, 77, 8, 64, true},
                            {"attn decode Lk4096 h32", 1, 4096, 32, 128, true}};
  for (const auto& s : attn) {
    if (!wanted(s.name)) continue;
    const int64_t D = s.heads * s.hd;
    auto q = random_vec(s.Lq * D, 1), k = random_vec(s.Lk * D, 2), v = random_vec(s.Lk * D, 3);
    std::vector<float> out(s.Lq * D);
    AttentionMask mask;
    mask.causal = s.causal;
    mask.causal_offset = s.Lk - s.Lq;
    const float scale = 1.f / std::sqrt(static_cast<float>(s.hd));
    auto run = [&](bool fast) {
      return [&, fast] {
        (fast ? ops::attention : ref::attention)(q.data(), D, k.data(), D, v.data(), D, s.Lq, s.Lk, s.heads, s.hd,
                                                 scale, mask, out.data(), D);
      };
    };
    const double gflop = 4.0 * s.heads * s.Lq * s.Lk * s.hd * 1e-9;
    row(s.name, gflop, "GFLOP/s", time_best(run(true), min_ms), time_best(run(false), min_ms / 4));
  }

  const int64_t n = 577 * 4096;  // one ViT-L/14-336 MLP activation
  struct Act {
    const char* name;
    void (*fast)(float*, int64_t);
    void (*slow)(float*, int64_t);
  };
  const Act acts[] = {{"gelu_erf 577x4096", ops::gelu_erf, ref::gelu_erf},
                      {"gelu_tanh 577x4096", ops::gelu_tanh, ref::gelu_tanh},
                      {"quick_gelu 577x4096", ops::quick_gelu, ref::quick_gelu},
                      {"silu 577x4096", ops::silu, ref::silu}};
  const auto base = random_vec(n, 4, -5.f, 5.f);
  std::vector<float> buf(n);
  for (const auto& a : acts) {
    if (!wanted(a.name)) continue;
    // Refill each run so the inputs stay in range; the copy is part of both timings.
    auto run = [&](void (*f)(float*, int64_t)) {
      return [&, f] {
        std::memcpy(buf.data(), base.data(), n * sizeof(float));
        f(buf.data(), n);
      };
    };
    row(a.name, n * 1e-9, "Gelem/s", time_best(run(a.fast), min_ms), time_best(run(a.slow), min_ms));
  }
  if (wanted("layer_norm")) {
    const int64_t rows = 577, dim = 1024;
    auto x = random_vec(rows * dim, 5), g = random_vec(dim, 6), b = random_vec(dim, 7);
    std::vector<float> y(rows * dim);
    row("layer_norm 577x1024", rows * dim * 1e-9, "Gelem/s",
        time_best([&] { ops::layer_norm(x.data(), rows, dim, g.data(), b.data(), 1e-5f, y.data()); }, min_ms),
        time_best([&] { ref::layer_norm(x.data(), rows, dim, g.data(), b.data(), 1e-5f, y.data()); }, min_ms));
  }
  if (wanted("softmax")) {
    const int64_t rows = 16 * 577, cols = 577;
    const auto s0 = random_vec(rows * cols, 8, -5.f, 5.f);
    std::vector<float> s(rows * cols);
    auto run = [&](void (*f)(float*, int64_t, int64_t)) {
      return [&, f] {
        std::memcpy(s.data(), s0.data(), s.size() * sizeof(float));
        f(s.data(), rows, cols);
      };
    };
    row("softmax_rows 9232x577", rows * cols * 1e-9, "Gelem/s", time_best(run(ops::softmax_rows), min_ms),
        time_best(run(ref::softmax_rows), min_ms));
  }
  if (wanted("convert")) {
    std::vector<uint16_t> h(n);
    for (int64_t i = 0; i < n; ++i) h[i] = static_cast<uint16_t>(0x3c00 + (i % 1000));
    std::vector<float> f(n);
    Timing fast = time_best([&] { ops::convert_f16_to_f32(h.data(), f.data(), n); }, min_ms);
    Timing slow = time_best([&] {
      Tensor t = Tensor::borrow(DType::F16, {n}, h.data(), nullptr);
      Tensor c = t.to_f32();
    }, min_ms);
    row("f16->f32 2.4M (vs to_f32)", n * 1e-9, "Gelem/s", fast, slow);
  }
  return 0;
}

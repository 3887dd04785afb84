// GEMM throughput of lumen's packed GEMM (AVX2 or AVX-512 micro-kernels, see LUMEN_CPU) vs
// OpenBLAS on the model shapes, as GFLOP/s.
// Not a test. Usage: gemm_bench [--threads 1,2] [--min-ms 150] [--filter substring]
// Columns (all y[M,N] = x[M,K] W^T + b, W [N,K] nn.Linear layout):
//   lumen     ops::linear forced to lumen's GEMM (packs W every call)
//   packed    ops::linear_packed (W packed once, outside the timing)
//   blas      ops::linear forced to OpenBLAS (single-threaded OpenBLAS per lumen thread)
//   blas-own  cblas_sgemm with OpenBLAS's own pthread pool at the same thread count
//   auto      ops::linear with the dispatch rule
// Each cell is the best of repeated runs over >= --min-ms, to damp noise from other load.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/threads.h"
#include "kernels/ops.h"

namespace {

struct GemmShape {
  const char* name;
  int64_t M, N, K;
};

const GemmShape kShapes[] = {
    {"vitb32 b1 qkv", 50, 2304, 768},     {"vitb32 b1 out", 50, 768, 768},
    {"vitb32 b1 fc1", 50, 3072, 768},     {"vitb32 b1 fc2", 50, 768, 3072},
    {"vitb32 b8 qkv", 400, 2304, 768},    {"vitb32 b8 out", 400, 768, 768},
    {"vitb32 b8 fc1", 400, 3072, 768},    {"vitb32 b8 fc2", 400, 768, 3072},
    {"vitl14-336 qkv", 577, 3072, 1024},  {"vitl14-336 out", 577, 1024, 1024},
    {"vitl14-336 fc1", 577, 4096, 1024},  {"vitl14-336 fc2", 577, 1024, 4096},
    {"text512 qkv", 77, 1536, 512},       {"text512 fc1", 77, 2048, 512},
    {"text512 fc2", 77, 512, 2048},       {"text768 fc1", 77, 3072, 768},
    {"decode 4096", 1, 4096, 4096},       {"decode mlp", 1, 11008, 4096},
    {"decode b4 4096", 4, 4096, 4096},    {"small 8x768", 8, 768, 768},
    {"small 16x3072", 16, 3072, 768},     {"small 6x2304", 6, 2304, 768},
};

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Best wall time, and best process CPU time divided by the thread count. On a loaded machine
// the CPU-time figure approximates the uncontended wall time (it excludes time spent
// descheduled); it flatters OpenBLAS's own pool a little less than it should, since its idle
// threads spin (counted) where lumen's sleep (not counted).
struct Timing {
  double wall = 1e30, cpu = 1e30;
};

Timing time_best(const std::function<void()>& fn, double min_ms, int threads) {
  fn();  // warm up: caches, pool, packing buffers
  Timing best;
  double total = 0;
  int reps = 0;
  while (total < min_ms * 1e-3 || reps < 3) {
    const double c0 = cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best.wall = std::min(best.wall, dt);
    best.cpu = std::min(best.cpu, (cpu_seconds() - c0) / threads);
    total += dt;
    ++reps;
  }
  return best;
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p) ++p;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lumen;
  std::vector<int> thread_counts = {1, 2};
  double min_ms = 150;
  std::string filter;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) thread_counts = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--min-ms")) min_ms = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--filter")) filter = argv[i + 1];
  }
  std::printf("OpenBLAS core: %s (%s)\n", openblas_get_corename(), openblas_get_config());
  std::printf("lumen micro-kernels: %s (LUMEN_CPU=avx2 forces the AVX2 ones)\n",
              ops::cpu_path_name(ops::cpu_path()));
  std::printf("%-16s %5s %5s %5s %2s %4s %8s %8s %8s %8s %8s  %s\n", "shape", "M", "N", "K", "T", "time", "lumen", "packed",
              "blas", "blas-own", "auto", "packed/best-blas");
  // Thread counts run high to low, each over all shapes: the pool must only shrink once it
  // has run work (growing it then is unsafe in core/threads.cpp for now).
  std::sort(thread_counts.begin(), thread_counts.end(), std::greater<int>());
  for (int t : thread_counts) {
    set_num_threads(t);
    for (const GemmShape& s : kShapes) {
      if (!filter.empty() && std::string(s.name).find(filter) == std::string::npos) continue;
      std::mt19937 rng(1);
      std::uniform_real_distribution<float> dist(-1.f, 1.f);
      std::vector<float> x(s.M * s.K), w(s.N * s.K), b(s.N), y(s.M * s.N);
      for (auto& v : x) v = dist(rng);
      for (auto& v : w) v = dist(rng);
      for (auto& v : b) v = dist(rng);
      PackedWeight pw = ops::pack_linear(w.data(), s.N, s.K);
      const double gflop = 2.0 * s.M * s.N * s.K * 1e-9;
      auto lin = [&] { ops::linear(x.data(), s.M, s.K, w.data(), s.N, b.data(), y.data()); };
      ops::set_gemm_backend(ops::GemmBackend::Lumen);
      Timing t_lumen = time_best(lin, min_ms, t);
      Timing t_packed = time_best([&] { ops::linear_packed(x.data(), s.M, pw, b.data(), y.data()); }, min_ms, t);
      ops::set_gemm_backend(ops::GemmBackend::OpenBlas);
      Timing t_blas = time_best(lin, min_ms, t);
      openblas_set_num_threads(t);
      Timing t_own = time_best([&] {
        for (int64_t i = 0; i < s.M; ++i) std::memcpy(&y[i * s.N], b.data(), s.N * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.M, s.N, s.K, 1.f, x.data(), s.K, w.data(), s.K, 1.f,
                    y.data(), s.N);
      }, min_ms, t);
      openblas_set_num_threads(1);
      ops::set_gemm_backend(ops::GemmBackend::Auto);
      Timing t_auto = time_best(lin, min_ms, t);
      for (int cpu = 0; cpu < 2; ++cpu) {
        auto g = [&](const Timing& tm) { return gflop / (cpu ? tm.cpu : tm.wall); };
        auto sec = [&](const Timing& tm) { return cpu ? tm.cpu : tm.wall; };
        std::printf("%-16s %5ld %5ld %5ld %2d %4s %8.1f %8.1f %8.1f %8.1f %8.1f  %.2f\n", s.name, long(s.M),
                    long(s.N), long(s.K), t, cpu ? "cpu" : "wall", g(t_lumen), g(t_packed), g(t_blas), g(t_own),
                    g(t_auto), std::min(sec(t_blas), sec(t_own)) / sec(t_packed));
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

// Packed GEMM (see gemm_kernel.h for the layout) with AVX2/FMA micro-kernels, or AVX-512F
// ones (gemm_avx512.cpp) where the CPU has them; the public gemm / linear / linear_packed
// ops, and the dispatch between this GEMM and OpenBLAS.
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "core/half.h"
#include "core/threads.h"
#include "kernels/cpu/gemm_kernel.h"
#include "kernels/cpu/gemm_micro.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace lumen::cpu {
namespace {

// ---- micro-kernels -------------------------------------------------------------------------

// AVX2 vectors for the shared micro-kernel body (gemm_micro.h).
struct Avx2 {
  using T = __m256;
  static constexpr int kLanes = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_load_ps(p); }
  static T loadu(const float* p) { return _mm256_loadu_ps(p); }
  static T loadu_n(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  static void storeu(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void storeu_n(float* p, T v, int64_t n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static T broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
};

// Tile 6 x 16 (one B panel): 12 ymm accumulators + 2 B vectors + 1 broadcast of the 16
// registers; per k 2 loads of B and 6 broadcasts feed 12 FMAs (see gemm_kernel.h).
constexpr MicroKernels kAvx2Kernels = make_micro_kernels<Avx2, kMR, 1>("avx2");

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");  // also checks the OS saves zmm state
  return has;
}

const MicroKernels& kernels_for(ops::CpuPath path) {
  return path == ops::CpuPath::Avx512 ? avx512_micro_kernels() : kAvx2Kernels;
}

// AVX-512 where the CPU has it, else AVX2. LUMEN_CPU=avx2 forces the baseline (to compare
// the two in one binary, or to test it on an AVX-512 machine); LUMEN_CPU=avx512 insists.
const MicroKernels& default_kernels() {
  const char* env = std::getenv("LUMEN_CPU");
  if (!env || !*env) return kernels_for(cpu_has_avx512() ? ops::CpuPath::Avx512 : ops::CpuPath::Avx2);
  const std::string want = env;
  if (want == "avx2") return kAvx2Kernels;
  if (want == "avx512") {
    LUMEN_CHECK(cpu_has_avx512(), "LUMEN_CPU=avx512, but this CPU has no AVX-512F (use avx2 or unset it)");
    return avx512_micro_kernels();
  }
  fail("LUMEN_CPU=", want, ": unknown instruction set (expected avx2 or avx512)");
}

// The kernels macro_block runs (ops::set_cpu_path), chosen on first use.
std::atomic<const MicroKernels*> g_kernels{nullptr};

const MicroKernels& active_kernels() {
  const MicroKernels* k = g_kernels.load(std::memory_order_acquire);
  if (!k) {
    k = &default_kernels();
    g_kernels.store(k, std::memory_order_release);
  }
  return *k;
}

// ---- packing ------------------------------------------------------------------------------

// One B panel: dst[k * kNR + j] = op(B)[k][j0 + j] for k < kc, j < kNR (zero past N).
void pack_b_panel(bool trans_b, const float* B, int64_t ldb, int64_t kc, int64_t j0, int64_t nv, float* dst) {
  if (!trans_b) {  // op(B)[k][j] = B[k * ldb + j]: rows of 16 are contiguous
    const float* src = B + j0;
    if (nv == kNR) {
      for (int64_t k = 0; k < kc; ++k) {
        _mm256_store_ps(dst + k * kNR, _mm256_loadu_ps(src + k * ldb));
        _mm256_store_ps(dst + k * kNR + 8, _mm256_loadu_ps(src + k * ldb + 8));
      }
    } else {
      const __m256i m0 = tail_mask(nv), m1 = tail_mask(nv - 8);
      for (int64_t k = 0; k < kc; ++k) {
        _mm256_store_ps(dst + k * kNR, _mm256_maskload_ps(src + k * ldb, m0));
        _mm256_store_ps(dst + k * kNR + 8, _mm256_maskload_ps(src + k * ldb + 8, m1));
      }
    }
    return;
  }
  // op(B)[k][j] = B[j * ldb + k]: transpose 8x8 blocks of rows j0.. of B.
  const float* src = B + j0 * ldb;
  int64_t k = 0;
  if (nv == kNR) {
    for (; k + 8 <= kc; k += 8) {
      for (int half = 0; half < 2; ++half) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (half * 8 + i) * ldb + k);
        transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_store_ps(dst + (k + i) * kNR + half * 8, r[i]);
      }
    }
  }
  for (; k < kc; ++k)
    for (int64_t j = 0; j < kNR; ++j) dst[k * kNR + j] = j < nv ? src[j * ldb + k] : 0.f;
}

// A block rows [0, mc) x cols [0, kc) of op(A) (already offset) into micro-panels of kMR rows:
// dst[p * kc * kMR + k * kMR + r] = op(A)[p * kMR + r][k], rows past mc zero.
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  for (int64_t p = 0; p * kMR < mc; ++p) {
    const int64_t rows = std::min(kMR, mc - p * kMR);
    float* d = dst + p * kc * kMR;
    if (trans_a) {  // op(A)[i][k] = A[k * lda + i]: each k gives kMR contiguous floats
      const float* s = A + p * kMR;
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < kMR; ++r) d[k * kMR + r] = r < rows ? s[k * lda + r] : 0.f;
    } else if (rows == kMR) {
      // 8 k at a time: load 8 floats of each of the 6 rows (+2 dummy rows), transpose, and
      // store column k (6 useful floats) at d + 6k with an 8-float store; each store's last
      // two floats are overwritten by the next one (the buffer has 2 floats of slack).
      const float* s = A + p * kMR * lda;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(s + i * lda + k);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(d + (k + i) * kMR, r[i]);
      }
      for (; k < kc; ++k)
        for (int64_t r = 0; r < kMR; ++r) d[k * kMR + r] = s[r * lda + k];
    } else {
      const float* s = A + p * kMR * lda;
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < kMR; ++r) d[k * kMR + r] = r < rows ? s[r * lda + k] : 0.f;
    }
  }
}

// ---- macro kernel -------------------------------------------------------------------------

// C[M, jc : jc + nc] for one K block [pc, pc + kc): Bblk points at the block's first panel
// (columns from jc), consecutive panels panel_stride floats apart.
void macro_block(bool trans_a, const float* A, int64_t lda, int64_t M, int64_t pc, int64_t kc, const float* Bblk,
                 int64_t panel_stride, int64_t jc, int64_t nc, const Epilogue& ep, float* C, int64_t ldc) {
  const bool first = pc == 0;
  const MicroKernels& kernels = active_kernels();
  float* abuf = scratch(0, static_cast<size_t>(kMC * kKC + 8));  // + slack for pack_a's stores
  // Equal row blocks of at most kMC (577 rows -> 5 x ~116, not 4 x 144 + 1): a thin last
  // block would stream the whole B block for a sliver of work. Rounded to the tile's rows
  // (kMC is a multiple of every tile's), so only the matrix's last tile can be short.
  const int64_t m_blocks = (M + kMC - 1) / kMC;
  const int64_t mc_step = round_up((M + m_blocks - 1) / m_blocks, kernels.mr);
  for (int64_t ic = 0; ic < M; ic += mc_step) {
    const int64_t mc = std::min(mc_step, M - ic);
    const float* a_src = trans_a ? A + pc * lda + ic : A + ic * lda + pc;
    pack_a(trans_a, a_src, lda, mc, kc, abuf);
    for (int64_t jr = 0; jr < nc; jr += kernels.nr) {
      const int64_t nv = std::min(kernels.nr, nc - jr);
      const int64_t panels = (nv + kNR - 1) / kNR;
      const float* bpanel = Bblk + (jr / kNR) * panel_stride;
      const float* bias = first && ep.bias ? ep.bias + jc + jr : nullptr;
      for (int64_t ir = 0; ir < mc; ir += kernels.mr) {
        const int64_t mr = std::min(kernels.mr, mc - ir);
        kernels.fn[mr][panels](kc, abuf + ir * kc, kc * kMR, bpanel, panel_stride, C + (ic + ir) * ldc + jc + jr, ldc,
                               nv, first, ep, bias);
      }
    }
  }
}

void scale_c(int64_t M, int64_t N, const Epilogue& ep, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float v = ep.beta == 0.f ? 0.f : ep.beta * C[i * ldc + j];
      C[i * ldc + j] = ep.bias ? v + ep.bias[j] : v;
    }
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

float* aligned_floats(size_t n) {
  size_t bytes = std::max<size_t>(64, (n * sizeof(float) + 63) / 64 * 64);
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) fail("out of memory allocating ", bytes, " bytes of kernel workspace");
  return p;
}

}  // namespace

float* scratch(int slot, size_t floats) {
  constexpr int kSlots = 8;
  thread_local std::unique_ptr<float, AlignedFree> bufs[kSlots];
  thread_local size_t sizes[kSlots] = {};
  if (sizes[slot] < floats) {
    bufs[slot].reset(aligned_floats(floats));
    sizes[slot] = floats;
  }
  return bufs[slot].get();
}

void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t N, float* dst) {
  const int64_t npad = round_up(N, kNR);
  for (int64_t pc = 0; pc < K; pc += kKC) {
    const int64_t kc = std::min(kKC, K - pc);
    const float* src = trans_b ? B + pc : B + pc * ldb;
    for (int64_t j0 = 0; j0 < N; j0 += kNR)
      pack_b_panel(trans_b, src, ldb, kc, j0, std::min(kNR, N - j0), dst + pc * npad + j0 * kc);
  }
}

void gemm_packed_st(bool trans_a, const float* A, int64_t lda, int64_t M, int64_t K, const float* Bp,
                    int64_t K_layout, int64_t N_layout, int64_t n0, int64_t n1, const Epilogue& ep, float* C,
                    int64_t ldc) {
  if (M <= 0 || n1 <= n0) return;
  if (K == 0) {
    scale_c(M, n1 - n0, Epilogue{ep.alpha, ep.beta, ep.bias ? ep.bias + n0 : nullptr}, C + n0, ldc);
    return;
  }
  const int64_t npad = round_up(N_layout, kNR);
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc_layout = std::min(kKC, K_layout - pc);
      const int64_t kc = std::min(kKC, K - pc);
      macro_block(trans_a, A, lda, M, pc, kc, Bp + pc * npad + jc * kc_layout, kc_layout * kNR, jc, nc, ep, C,
                  ldc);
    }
  }
}

void gemm_st(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
             const float* B, int64_t ldb, const Epilogue& ep, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    scale_c(M, N, ep, C, ldc);
    return;
  }
  float* bbuf = scratch(1, static_cast<size_t>(kKC * kNC));
  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const float* b_src = trans_b ? B + jc * ldb + pc : B + pc * ldb + jc;
      for (int64_t j0 = 0; j0 < nc; j0 += kNR)
        pack_b_panel(trans_b, b_src, ldb, kc, j0, std::min(kNR, nc - j0), bbuf + j0 * kc);
      macro_block(trans_a, A, lda, M, pc, kc, bbuf, kc * kNR, jc, nc, ep, C, ldc);
    }
  }
}

void gemm_custom_b_st(const float* A, int64_t lda, int64_t M, int64_t K, PanelPacker pack, const void* ctx,
                      int64_t n0, int64_t n1, const Epilogue& ep, float* C, int64_t ldc) {
  if (M <= 0 || n1 <= n0) return;
  if (K == 0) {
    scale_c(M, n1 - n0, Epilogue{ep.alpha, ep.beta, ep.bias ? ep.bias + n0 : nullptr}, C + n0, ldc);
    return;
  }
  float* bbuf = scratch(1, static_cast<size_t>(kKC * kNC));
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      for (int64_t j0 = 0; j0 < nc; j0 += kNR) pack(ctx, pc, kc, jc + j0, std::min(kNR, nc - j0), bbuf + j0 * kc);
      macro_block(false, A, lda, M, pc, kc, bbuf, kc * kNR, jc, nc, ep, C, ldc);
    }
  }
}

}  // namespace lumen::cpu

namespace lumen::ops {
namespace {

using cpu::Epilogue;
using cpu::kMR;
using cpu::kNR;

// Splits C [M, N] between the pool's threads: by column panels when there are enough of them
// (every thread then packs only its own part of B), else by row panels. Small products run
// on the calling thread: waking the pool costs ~10 us.
template <typename F>
void split_work(int64_t M, int64_t N, int64_t K, F&& fn) {
  const int threads = num_threads();
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (threads <= 1 || flops < 4e5) {
    fn(0, M, 0, N);
    return;
  }
  const int64_t n_panels = (N + kNR - 1) / kNR;
  const int64_t m_panels = (M + kMR - 1) / kMR;
  if (n_panels >= 4 * threads || n_panels >= m_panels) {
    parallel_for(n_panels, [&](int64_t p0, int64_t p1) { fn(0, M, p0 * kNR, std::min(N, p1 * kNR)); });
  } else {
    parallel_for(m_panels, [&](int64_t p0, int64_t p1) { fn(p0 * kMR, std::min(M, p1 * kMR), 0, N); });
  }
}

void lumen_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                const float* B, int64_t ldb, const Epilogue& ep, float* C, int64_t ldc) {
  split_work(M, N, K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* a = trans_a ? A + m0 : A + m0 * lda;
    const float* b = trans_b ? B + n0 * ldb : B + n0;
    Epilogue e{ep.alpha, ep.beta, ep.bias ? ep.bias + n0 : nullptr};
    cpu::gemm_st(trans_a, trans_b, m1 - m0, n1 - n0, K, a, lda, b, ldb, e, C + m0 * ldc + n0, ldc);
  });
}

// OpenBLAS, single-threaded per call, split between lumen's threads like lumen_gemm. Its own
// pthread pool would oversubscribe the cores when called next to (or inside) lumen's pool.
void blas_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
               const float* B, int64_t ldb, const Epilogue& ep, float* C, int64_t ldc) {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
  split_work(M, N, K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    float beta = ep.beta;
    float* c = C + m0 * ldc + n0;
    if (ep.bias) {  // C = bias (+ beta C), then accumulate
      for (int64_t i = m0; i < m1; ++i)
        for (int64_t j = n0; j < n1; ++j)
          C[i * ldc + j] = ep.bias[j] + (ep.beta == 0.f ? 0.f : ep.beta * C[i * ldc + j]);
      beta = 1.f;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m1 - m0), static_cast<int>(n1 - n0), static_cast<int>(K), ep.alpha,
                trans_a ? A + m0 : A + m0 * lda, static_cast<int>(lda), trans_b ? B + n0 * ldb : B + n0,
                static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  });
}

// Which GEMM runs gemm() / linear() (linear_packed is always lumen's).
//
// Measured with bench/gemm_bench.cpp: y = x W^T + b, GFLOP/s per core from CPU time (the
// 2-core machine was shared with other builds, load 7-18, so +-15% noise; AVX2 FMA peak
// 82-86 GFLOP/s per core). OpenBLAS 0.3.21 forced to its Haswell kernels, the ones it runs
// on Zen 3; both split between threads by split_work.
//                                   1 thread                 2 threads (per core)
//   shape (M x N x K)         lumen  packed  OpenBLAS    lumen  packed  OpenBLAS
//   50 x 3072 x 768  B/32 b1   53.5   68.2    50.6       37.5   47.8    34.0
//   77 x 2048 x 512  text      61.5   74.3    60.1       49.1   50.7    37.7
//   400 x 3072 x 768 B/32 b8   56.5   61.7    66.6       44.3   44.7    41.2
//   400 x 768 x 3072 B/32 b8   70.8   67.6    67.4       45.2   52.1    53.2
//   577 x 3072 x 1024 L/14     61.6   60.3    53-68      52.8   59.8    69.8
//   577 x 4096 x 1024 L/14     65.5   64.3    67.4       57.6   60.9    63.8
//   1 x 4096 x 4096  decode     5.8    5.6     2.7        6.5    6.4     2.6  (memory bound)
// Lumen wins below M ~ 100 and ties at M = 400; from M ~ 577 OpenBLAS is 0-15% ahead, so
// it takes M >= kBlasMinM -- but only when it runs AVX2-class kernels. On a CPU it does not
// know it falls back to SSE ones ("Prescott", as on the Sapphire Rapids VM measured here),
// which run at 35-40% of lumen's speed (2 threads: 14-26 vs 42-65 GFLOP/s per core).
// With the AVX-512 micro-kernels (Sapphire Rapids VM, 1 thread, idle machine) lumen's packed
// GEMM runs mostly 120-153 GFLOP/s on the M >= 50 shapes above (AVX2: 61-84), level with OpenBLAS
// forced to its AVX-512 SkylakeX kernels (0.92-1.02x at M = 400-577), so the rule stands.
constexpr int64_t kBlasMinM = 512;

bool blas_has_avx2_kernels() {
  static const bool avx2 = [] {
    const std::string core = openblas_get_corename();
    for (const char* name : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"})
      if (core == name) return true;
    return false;
  }();
  return avx2;
}

std::atomic<GemmBackend> g_backend{GemmBackend::Auto};

bool use_blas(int64_t M, int64_t N, int64_t K) {
  switch (g_backend.load(std::memory_order_relaxed)) {
    case GemmBackend::Lumen: return false;
    case GemmBackend::OpenBlas: return true;
    case GemmBackend::Auto: break;
  }
  return M >= kBlasMinM && blas_has_avx2_kernels();
}

// y[M, n0:n1] for few rows of x: dot products straight from W [N, K] (no packing, which would
// cost as much as the product itself when M is tiny). 2 rows of x x 4 rows of W per pass.
void linear_small_m(const float* x, int64_t M, int64_t K, const float* W, int64_t n0, int64_t n1, const float* bias,
                    float* y, int64_t N) {
  const __m256i tail = cpu::tail_mask(K % 8);
  const int64_t k8 = K - K % 8;
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t nj = std::min<int64_t>(4, n1 - j);
    const float* w[4];
    for (int64_t r = 0; r < 4; ++r) w[r] = W + (j + std::min(r, nj - 1)) * K;
    for (int64_t i = 0; i < M; i += 2) {
      const int64_t ni = std::min<int64_t>(2, M - i);
      const float* x0 = x + i * K;
      const float* x1 = x + (i + ni - 1) * K;
      __m256 acc[2][4];
      for (auto& row : acc)
        for (auto& a : row) a = _mm256_setzero_ps();
      for (int64_t k = 0; k < k8; k += 8) {
        const __m256 a0 = _mm256_loadu_ps(x0 + k), a1 = _mm256_loadu_ps(x1 + k);
        for (int r = 0; r < 4; ++r) {
          const __m256 wv = _mm256_loadu_ps(w[r] + k);
          acc[0][r] = _mm256_fmadd_ps(a0, wv, acc[0][r]);
          acc[1][r] = _mm256_fmadd_ps(a1, wv, acc[1][r]);
        }
      }
      if (k8 < K) {
        const __m256 a0 = _mm256_maskload_ps(x0 + k8, tail), a1 = _mm256_maskload_ps(x1 + k8, tail);
        for (int r = 0; r < 4; ++r) {
          const __m256 wv = _mm256_maskload_ps(w[r] + k8, tail);
          acc[0][r] = _mm256_fmadd_ps(a0, wv, acc[0][r]);
          acc[1][r] = _mm256_fmadd_ps(a1, wv, acc[1][r]);
        }
      }
      for (int64_t ii = 0; ii < ni; ++ii)
        for (int64_t r = 0; r < nj; ++r)
          y[(i + ii) * N + j + r] = cpu::hsum(acc[ii][r]) + (bias ? bias[j + r] : 0.f);
    }
  }
}

// linear() with at most this many rows uses linear_small_m: packing W per call costs as much
// as the product there. Measured (GFLOP/s per core, 1 thread, +-15% noise): M=6 N=2304 K=768
// 29-35 dot vs 22-24 packing GEMM; M=8 N=768 K=768 45 vs 31-36; M=16 N=3072 K=768 a tie.
constexpr int64_t kSmallM = 12;

}  // namespace

void set_gemm_backend(GemmBackend backend) { g_backend.store(backend); }
GemmBackend gemm_backend() { return g_backend.load(); }

bool cpu_path_supported(CpuPath path) { return path == CpuPath::Avx2 || cpu::cpu_has_avx512(); }

void set_cpu_path(CpuPath path) {
  LUMEN_CHECK(cpu_path_supported(path), "set_cpu_path: this CPU has no ", cpu_path_name(path), " (AVX-512F)");
  cpu::g_kernels.store(&cpu::kernels_for(path), std::memory_order_release);
}

CpuPath cpu_path() {
  return &cpu::active_kernels() == &cpu::kernels_for(CpuPath::Avx512) ? CpuPath::Avx512 : CpuPath::Avx2;
}

const char* cpu_path_name(CpuPath path) { return path == CpuPath::Avx512 ? "avx512" : "avx2"; }

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  LUMEN_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  const Epilogue ep{alpha, beta, nullptr};
  if (K == 0) {
    split_work(M, N, 1, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
      cpu::gemm_st(false, false, m1 - m0, n1 - n0, 0, nullptr, 0, nullptr, 0, ep, C + m0 * ldc + n0, ldc);
    });
    return;
  }
  if (use_blas(M, N, K))
    blas_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, ep, C, ldc);
  else
    lumen_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, ep, C, ldc);
}

void linear(const float* x, int64_t M, int64_t K, const float* W, int64_t N, const float* bias, float* y) {
  LUMEN_CHECK(M >= 0 && N >= 0 && K >= 0, "linear: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  if (M <= kSmallM && K > 0 && g_backend.load(std::memory_order_relaxed) != GemmBackend::OpenBlas) {
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    if (num_threads() > 1 && flops >= 4e5)
      parallel_for((N + 3) / 4, [&](int64_t b0, int64_t b1) {
        linear_small_m(x, M, K, W, b0 * 4, std::min(N, b1 * 4), bias, y, N);
      });
    else
      linear_small_m(x, M, K, W, 0, N, bias, y, N);
    return;
  }
  const Epilogue ep{1.f, 0.f, bias};
  if (use_blas(M, N, K))
    blas_gemm(false, true, M, N, K, x, K, W, K, ep, y, N);
  else
    lumen_gemm(false, true, M, N, K, x, K, W, K, ep, y, N);
}

PackedWeight pack_linear(const float* W, int64_t N, int64_t K) {
  LUMEN_CHECK(N > 0 && K > 0, "pack_linear: weight must be non-empty, got [", N, ", ", K, "]");
  PackedWeight pw;
  pw.N = N;
  pw.K = K;
  pw.data = std::shared_ptr<float>(cpu::aligned_floats(static_cast<size_t>(cpu::packed_b_floats(K, N))),
                                   cpu::AlignedFree{});
  // op(B) = W^T [K, N]; pack K blocks in parallel (each thread writes its own blocks).
  const int64_t npad = cpu::round_up(N, kNR);
  parallel_for((K + cpu::kKC - 1) / cpu::kKC, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t pc = b * cpu::kKC, kc = std::min(cpu::kKC, K - pc);
      cpu::pack_b(true, W + pc, K, kc, N, pw.data.get() + pc * npad);
    }
  });
  return pw;
}

PackedWeight pack_linear(const Tensor& W) {
  LUMEN_CHECK(W.ndim() == 2, "pack_linear: weight must be 2-D [out, in], got ", W.describe());
  if (W.dtype() == DType::F32) return pack_linear(W.data<float>(), W.dim(0), W.dim(1));
  Tensor f32 = Tensor::zeros({W.dim(0), W.dim(1)});
  convert_to_f32(W, f32.data<float>());
  return pack_linear(f32.data<float>(), W.dim(0), W.dim(1));
}

void linear_packed(const float* x, int64_t M, const PackedWeight& w, const float* bias, float* y) {
  LUMEN_CHECK(!w.empty(), "linear_packed: weight was not packed");
  LUMEN_CHECK(M >= 0, "linear_packed: negative row count ", M);
  if (M == 0) return;
  const Epilogue ep{1.f, 0.f, bias};
  if (const int64_t grain = cpu::row_piece_grain(M, num_threads()); grain > 0) {
    parallel_for_dynamic(M, grain, [&](int64_t m0, int64_t m1) {
      cpu::gemm_packed_st(false, x + m0 * w.K, w.K, m1 - m0, w.K, w.data.get(), w.K, w.N, 0, w.N, ep, y + m0 * w.N,
                          w.N);
    });
    return;
  }
  split_work(M, w.N, w.K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    cpu::gemm_packed_st(false, x + m0 * w.K, w.K, m1 - m0, w.K, w.data.get(), w.K, w.N, n0, n1, ep, y + m0 * w.N,
                        w.N);
  });
}

}  // namespace lumen::ops

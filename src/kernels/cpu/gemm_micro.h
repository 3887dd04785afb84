// The GEMM micro-kernel, written once over a SIMD vector kind, so the AVX2 build (gemm.cpp)
// and the AVX-512 build (gemm_avx512.cpp, the one file compiled with -mavx512f) share its
// body. Internal to src/kernels/cpu.
//
// Each includer instantiates it with a vector kind declared in its own anonymous namespace,
// so every instance has internal linkage: the linker cannot merge an AVX-512 instance into
// the AVX2 path (which must run on CPUs without AVX-512, e.g. Zen 3). For the same reason
// this header calls no library functions (<utility> only for std::integer_sequence, a type).
//
// A vector kind V provides: type T, kLanes, zero(), load(p) (aligned), loadu(p), broadcast(p),
// fmadd(a, b, c) = a * b + c, add, mul, set1(x), loadu_n(p, n) (first n lanes, rest 0) and
// storeu(p, v), storeu_n(p, v, n) (first n lanes), for 0 < n < kLanes.
#pragma once
#include <utility>

#include "kernels/cpu/gemm_kernel.h"

namespace lumen::cpu {

// Writes kLanes (or the first n) columns of one row of a C tile, applying the epilogue.
template <class V>
inline void store_c(float* c, typename V::T acc, const float* bias, int64_t n, bool first, const Epilogue& ep) {
  if (n <= 0) return;
  const bool full = n >= V::kLanes;
  auto load = [full, n](const float* p) { return full ? V::loadu(p) : V::loadu_n(p, n); };
  typename V::T v;
  if (first) {
    v = V::mul(acc, V::set1(ep.alpha));
    if (ep.beta != 0.f) v = V::fmadd(V::set1(ep.beta), load(c), v);
    if (bias) v = V::add(v, load(bias));
  } else {
    v = V::fmadd(acc, V::set1(ep.alpha), load(c));
  }
  if (full)
    V::storeu(c, v);
  else
    V::storeu_n(c, v, n);
}

// One k step of a tile: acc[r][v] += op(A)[r][k] * op(B)[k][v * kLanes ...]. a[p] points at
// row k of A micro-panel p (kMR rows, k-major) and b[p] at row k of B panel p (kNR columns,
// k-major): tile row r lives in A panel r / kMR, vector v in B panel v * kLanes / kNR. One
// pointer per panel (not base + stride) keeps every load a pointer plus a constant offset, so
// the k loop needs few general registers (with base + stride GCC spilled its loop counter).
template <class V, int MR_, int NV_, int AP_, int BP_>
[[gnu::always_inline]] inline void fma_step(typename V::T (&acc)[MR_][NV_], const float* const (&a)[AP_],
                                            const float* const (&b)[BP_], int64_t k) {
  typename V::T bv[NV_];
#pragma GCC unroll 8
  for (int v = 0; v < NV_; ++v) bv[v] = V::load(b[v * V::kLanes / kNR] + k * kNR + (v * V::kLanes) % kNR);
#pragma GCC unroll 16
  for (int r = 0; r < MR_; ++r) {
    const typename V::T ar = V::broadcast(a[r / kMR] + k * kMR + r % kMR);
#pragma GCC unroll 8
    for (int v = 0; v < NV_; ++v) acc[r][v] = V::fmadd(ar, bv[v], acc[r][v]);
  }
}

// C[MR_, :nv] (op)= A [MR_ rows, kc] x B [kc, NV_ * kLanes columns] with the epilogue (see
// MicroKernel in gemm_kernel.h for the arguments). The accumulators must stay in registers:
// the loops over r and v are fully unrolled, so GCC replaces the array by scalars (checked in
// the assembly: no stack traffic in the k loop).
template <class V, int MR_, int NV_>
void micro_kernel(int64_t kc, const float* a, int64_t a_panel_stride, const float* b, int64_t b_panel_stride, float* c,
                  int64_t ldc, int64_t nv, bool first, const Epilogue& ep, const float* bias) {
  using T = typename V::T;
  constexpr int kRowFloats = NV_ * V::kLanes;
  for (int r = 0; r < MR_; ++r) {
    __builtin_prefetch(c + r * ldc);
    if constexpr (kRowFloats > 16) __builtin_prefetch(c + r * ldc + kRowFloats - 1);
  }
  T acc[MR_][NV_];
#pragma GCC unroll 16
  for (int r = 0; r < MR_; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV_; ++v) acc[r][v] = V::zero();
  constexpr int kAPanels = (MR_ + kMR - 1) / kMR, kBPanels = (NV_ * V::kLanes + kNR - 1) / kNR;
  const float* ap[kAPanels];
  const float* bp[kBPanels];
  for (int p = 0; p < kAPanels; ++p) ap[p] = a + p * a_panel_stride;
  for (int p = 0; p < kBPanels; ++p) bp[p] = b + p * b_panel_stride;
  auto advance = [&](int64_t steps) {
    for (auto& p : ap) p += steps * kMR;
    for (auto& p : bp) p += steps * kNR;
  };
  int64_t k = 0;
  if constexpr (MR_ * NV_ <= 4) {
    // Few accumulators (1-2 rows: the decode / GEMV path of linear_packed) are too few
    // independent FMA chains to hide the FMA latency, so odd k accumulate into a second set.
    T odd[MR_][NV_];
#pragma GCC unroll 16
    for (int r = 0; r < MR_; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV_; ++v) odd[r][v] = V::zero();
    for (; k + 2 <= kc; k += 2) {
      fma_step<V>(acc, ap, bp, 0);
      fma_step<V>(odd, ap, bp, 1);
      advance(2);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR_; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV_; ++v) acc[r][v] = V::add(acc[r][v], odd[r][v]);
  }
#pragma GCC unroll 4
  for (; k < kc; ++k) {
    fma_step<V>(acc, ap, bp, 0);
    advance(1);
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR_; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV_; ++v)
      store_c<V>(c + r * ldc + v * V::kLanes, acc[r][v], bias ? bias + v * V::kLanes : nullptr, nv - v * V::kLanes,
                 first, ep);
}

// Entries [M][1..kPanels] of a kernel table: M rows x p panels of kNR columns.
template <class V, int M, int... P>
constexpr void fill_tile_row(MicroKernels& t, std::integer_sequence<int, P...>) {
  ((t.fn[M][P + 1] = &micro_kernel<V, M, (P + 1) * kNR / V::kLanes>), ...);
}

template <class V, int kPanels, int... R>
constexpr void fill_tiles(MicroKernels& t, std::integer_sequence<int, R...>) {
  (fill_tile_row<V, R + 1>(t, std::make_integer_sequence<int, kPanels>{}), ...);
}

// The kernel table for vector kind V and a full tile of kMaxRows x kPanels B panels: entry
// [m][p] computes m rows x p panels (edge tiles use the smaller ones).
template <class V, int kMaxRows, int kPanels>
constexpr MicroKernels make_micro_kernels(const char* name) {
  static_assert(kMaxRows <= kMaxTileRows && kPanels <= kMaxTilePanels && kNR % V::kLanes == 0);
  MicroKernels t{name, kMaxRows, kPanels * kNR, {}};
  fill_tiles<V, kPanels>(t, std::make_integer_sequence<int, kMaxRows>{});
  return t;
}

}  // namespace lumen::cpu

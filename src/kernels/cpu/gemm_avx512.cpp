// The AVX-512F GEMM micro-kernels: the shared body (gemm_micro.h) on 16-float zmm vectors.
// This file alone is compiled with -mavx512f (CMakeLists.txt), so the rest of lumen keeps the
// AVX2 baseline; gemm.cpp calls these only when the CPU has AVX-512F (ops::set_cpu_path).
//
// Tile 12 x 32: two 16-wide B panels, so the pre-packed weight layout (kNR = 16) stays as it
// is, and two of the 6-row A micro-panels the AVX2 path packs, so A packing is shared too.
// 24 zmm accumulators + 2 B vectors + 1 broadcast use 27 of the 32 registers. Per k it loads
// 2 B vectors and broadcasts 12 A values (folded into the FMAs as memory operands) for 24
// FMAs: 14 loads per 24 FMAs leaves the two 512-bit FMA ports the limit, where a 14 x 16
// tile (one panel) needs 15 loads per 14 FMAs, more than the 2 loads a cycle. The two B
// panels (2 x kKC x 16 floats = 32 KiB) stay in the 48 KiB L1d of Ice Lake / Sapphire
// Rapids cores while the 12 x kKC A sliver (12 KiB) streams from L2.
// The cache blocking (kKC, kMC, kNC in gemm_kernel.h) is shared with AVX2, since kKC fixes
// the pre-packed weight layout; the A block (kMC x kKC = 144 KiB) fits those cores' 1-2 MiB
// L2 as it fits Zen 3's 512 KiB.
#include <immintrin.h>

#include "kernels/cpu/gemm_micro.h"

namespace lumen::cpu {
namespace {

struct Avx512 {
  using T = __m512;
  static constexpr int kLanes = 16;
  static __mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_load_ps(p); }
  static T loadu(const float* p) { return _mm512_loadu_ps(p); }
  static T loadu_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
  static void storeu(float* p, T v) { _mm512_storeu_ps(p, v); }
  static void storeu_n(float* p, T v, int64_t n) { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
  static T broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
};

constexpr MicroKernels kAvx512Kernels = make_micro_kernels<Avx512, 12, 2>("avx512");

}  // namespace

const MicroKernels& avx512_micro_kernels() { return kAvx512Kernels; }

}  // namespace lumen::cpu

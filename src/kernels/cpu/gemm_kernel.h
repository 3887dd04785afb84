// The packed GEMM engine shared by ops::gemm, ops::linear(_packed) and ops::attention.
// Internal to src/kernels/cpu.
//
// Layout (BLIS-style). op(B) [K, N] is stored as "K blocks" of kKC rows; block b starts at
// b * kKC * Npad (Npad = N rounded up to kNR) and holds Npad / kNR panels of kc x kNR floats,
// k-major (panel p at p * kc * kNR, kc = rows in that block), columns past N zero. op(A) is
// packed per call into micro-panels of kMR rows, k-major. The 6x16 micro-kernel keeps a
// 6 x 16 block of C in 12 ymm registers and per k does 2 loads of B, 6 broadcasts of A and
// 12 FMAs. Blocking for Zen 3 (32 KiB L1d, 512 KiB L2, 32 MiB L3), as BLIS does there: a B
// micro-panel (kKC x 16 = 16 KiB) stays in L1 while the A block (<= kMC x kKC = 144 KiB)
// streams from L2, and the B block (kKC x kNC = 4 MiB) from L3. The micro-kernel reaches
// ~86% of the AVX2 FMA peak with everything in cache.
// On CPUs with AVX-512F a 12 x 32 zmm micro-kernel (gemm_avx512.cpp) runs on the same packed
// A and B (two A micro-panels, two B panels per tile), chosen at run time (ops::cpu_path).
#pragma once
#include <cstddef>
#include <cstdint>

namespace lumen::cpu {

constexpr int64_t kMR = 6;
constexpr int64_t kNR = 16;
constexpr int64_t kKC = 256;
constexpr int64_t kMC = 144;
constexpr int64_t kNC = 4096;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Floats needed to hold op(B) [K, N] packed.
inline int64_t packed_b_floats(int64_t K, int64_t N) { return K * round_up(N, kNR); }

// Packs op(B) [K, N] (B row-major with leading dimension ldb; op = transpose when trans_b)
// into the layout above. dst must hold packed_b_floats(K, N) floats, 32-byte aligned.
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t K, int64_t N, float* dst);

// What happens to C after the product: on the first K block C = alpha * acc + beta * C
// (+ bias[j]); later K blocks add alpha * acc. beta == 0 never reads C (may be garbage).
struct Epilogue {
  float alpha = 1.f;
  float beta = 0.f;
  const float* bias = nullptr;  // [N], indexed by the absolute column
};

// Single-threaded: C[M, n0:n1] = op(A)[M, K] @ Bp[:K, n0:n1] with the epilogue, where Bp was
// packed for K_layout >= K rows (attention uses a shorter K than it packed, for causal rows).
// n0 must be a multiple of kNR.
void gemm_packed_st(bool trans_a, const float* A, int64_t lda, int64_t M, int64_t K, const float* Bp,
                    int64_t K_layout, int64_t N_layout, int64_t n0, int64_t n1, const Epilogue& ep, float* C,
                    int64_t ldc);

// Single-threaded, B unpacked: packs B block by block into a thread-local buffer.
void gemm_st(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
             const float* B, int64_t ldb, const Epilogue& ep, float* C, int64_t ldc);

// Fills one B panel for gemm_custom_b_st: dst[k * kNR + j] = op(B)[pc + k][j0 + j] for
// k < kc, j < nv, and 0 for nv <= j < kNR. `ctx` is the caller's description of B.
using PanelPacker = void (*)(const void* ctx, int64_t pc, int64_t kc, int64_t j0, int64_t nv, float* dst);

// Single-threaded: C[M, n0:n1] = op(A)[M, K] @ op(B)[K, n0:n1] with the epilogue, where the
// B panels come from `pack` (e.g. converting f16 or q8_0 weights on the fly), one K x kNC
// block at a time into a thread-local buffer, as gemm_st does. n0 must be a multiple of kNR.
void gemm_custom_b_st(const float* A, int64_t lda, int64_t M, int64_t K, PanelPacker pack, const void* ctx,
                      int64_t n0, int64_t n1, const Epilogue& ep, float* C, int64_t ldc);

// Many rows times a weight packed once (linear_packed, or converted panels): rows can be
// split in pieces claimed on demand (parallel_for_dynamic) at no cost the column split
// avoids -- every piece packs only its own rows of x and streams W once per block of rows, as
// one thread does per kMC rows. Pieces of >= kMinRowPiece rows keep that stream at <=
// 2 / kMinRowPiece bytes per flop (~2 GB/s at 60 GFLOP/s). About 4 pieces per thread: on the
// shared 2-core machine a worker descheduled by other jobs held up its whole static half of
// every ViT-L/14-336 product, which made 2 threads slower than 1 (bench/README.md).
// Returns the rows per piece, or 0 when there are too few rows (split columns instead).
constexpr int64_t kMinRowPiece = 64;
inline int64_t row_piece_grain(int64_t M, int64_t threads) {
  if (threads <= 1 || M < 2 * kMinRowPiece * threads) return 0;
  const int64_t per_piece = (M + 4 * threads - 1) / (4 * threads);
  // A multiple of both kernels' tile rows (AVX2 6, AVX-512 12): no short tile inside a piece.
  return round_up(per_piece > kMinRowPiece ? per_piece : kMinRowPiece, 2 * kMR);
}

// A micro-kernel: C[mr rows, :nv] (op)= A [mr, kc] x B [kc, columns] with the epilogue, where
// `first` says this is the first K block (see Epilogue) and bias is offset to the tile's first
// column. a points at packed A micro-panels of kMR rows (row r in panel r / kMR, panels
// a_panel_stride floats apart), b at packed B panels of kNR columns (panel_stride apart).
using MicroKernel = void (*)(int64_t kc, const float* a, int64_t a_panel_stride, const float* b, int64_t b_panel_stride,
                             float* c, int64_t ldc, int64_t nv, bool first, const Epilogue& ep, const float* bias);

// One instruction set's micro-kernels: the full tile is mr x nr (nr a multiple of kNR), and
// fn[m][p] computes an m-row, p-panel tile (1 <= m <= mr, 1 <= p <= nr / kNR).
constexpr int kMaxTileRows = 12;
constexpr int kMaxTilePanels = 2;
struct MicroKernels {
  const char* name;
  int64_t mr, nr;
  MicroKernel fn[kMaxTileRows + 1][kMaxTilePanels + 1];
};

// The AVX-512F kernels (gemm_avx512.cpp, the only code compiled for AVX-512). Call them
// only when the CPU has AVX-512F.
const MicroKernels& avx512_micro_kernels();

// A reusable 64-byte-aligned float buffer (per thread, grows only).
float* scratch(int slot, size_t floats);

}  // namespace lumen::cpu

// Model-agnostic f32 ops. Every op works on raw row-major buffers with explicit sizes, so the
// same op serves any family. ref/ holds the scalar oracle with identical signatures (namespace
// lumen::ref) that tests compare against; cpu/ holds the fast versions (namespace lumen::ops).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace lumen {

// Which positions a query may attend to. All fields optional; combined with AND.
struct AttentionMask {
  bool causal = false;                 // key j visible to query i only if j <= i + causal_offset
  int64_t causal_offset = 0;           // = Lk - Lq when queries are the last Lq positions
  const int64_t* key_keep = nullptr;   // [Lk] 1 = attend, 0 = padding (HF attention_mask row)
  const float* additive = nullptr;     // [Lq, Lk] added to the scores before softmax
  // Sliding window (Mistral): with window W > 0, query i sees key j only if
  // i + causal_offset - j < W. 0 = no window.
  int64_t window = 0;
};

#define LUMEN_OPS_DECLARATIONS                                                                     \
  /* C[M,N] = alpha * op(A) @ op(B) + beta * C; row-major; op = transpose when trans_*. */          \
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, \
            int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);           \
  /* y[M,N] = x[M,K] @ W[N,K]^T + bias[N] (nn.Linear layout); bias may be null. */                  \
  void linear(const float* x, int64_t M, int64_t K, const float* W, int64_t N, const float* bias,   \
              float* y);                                                                            \
  /* y = (x - mean) / sqrt(var + eps) * gamma + beta per row of `dim`; gamma/beta may be null. */   \
  void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, \
                  float eps, float* y);                                                             \
  void gelu_erf(float* x, int64_t n);                                                               \
  void gelu_tanh(float* x, int64_t n);                                                              \
  void quick_gelu(float* x, int64_t n); /* x * sigmoid(1.702 x) */                                 \
  void silu(float* x, int64_t n);       /* x * sigmoid(x) */                                        \
  void softmax_rows(float* x, int64_t rows, int64_t cols);                                          \
  /* y[i] += x[i] */                                                                                \
  void add_inplace(float* y, const float* x, int64_t n);                                            \
  void l2_normalize_rows(float* x, int64_t rows, int64_t dim);                                      \
  /* Scaled dot-product attention for one sequence, all heads. q: [Lq, heads*head_dim] rows of    \
     stride q_stride (floats); k, v: [Lk, ...] likewise; out: [Lq, heads*head_dim]. */              \
  void attention(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v, \
                 int64_t v_stride, int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim,         \
                 float scale, const AttentionMask& mask, float* out, int64_t out_stride);

// A linear weight W [N, K] (nn.Linear layout) packed once, at load time, into the GEMM's panel
// layout (src/kernels/cpu/gemm_kernel.h), so linear_packed skips the per-call packing of W.
// Copies share the packed buffer (read-only after pack_linear).
struct PackedWeight {
  int64_t N = 0, K = 0;
  std::shared_ptr<float> data;  // K * round_up(N, 16) floats, 64-byte aligned
  bool empty() const { return data == nullptr; }
};

// ---- linear weights in a storage format -------------------------------------------------
//
// How a linear layer's W [N, K] (nn.Linear layout) is stored:
//   F32   packed into the GEMM panel layout (PackedWeight above), 4 bytes per weight.
//   F16   IEEE half, row-major [N, K], 2 bytes per weight; borrowed from the checkpoint
//         (mmapped, no copy) when it stores F16.
//   BF16  bfloat16, row-major [N, K], as F16 (kept rather than narrowed to F16: bf16 -> f16
//         can overflow above 65504 and flushes small values, bf16 -> f32 is exact).
//   Q8_0  ggml's block_q8_0: per 32 consecutive weights of a row, an f16 scale
//         d = max|w| / 127 and 32 int8 q = round(w / d); w ~ d * q. 34 bytes per 32 weights.
//         K must be a multiple of 32 (as in ggml).
// The kernels (ops::linear below) convert on the fly: few rows of x (decode) run a
// memory-bound GEMV straight from the stored bytes, many rows (prefill) convert weight tiles
// into the f32 GEMM panels and reuse the f32 micro-kernel.
enum class WeightFormat { F32, F16, BF16, Q8_0 };
const char* weight_format_name(WeightFormat f);  // "f32", "f16", "bf16", "q8_0"
// Parses those names (case-insensitive); false when unknown.
bool weight_format_from_name(const std::string& name, WeightFormat* out);

constexpr int64_t kQ8BlockSize = 32;
// ggml's block_q8_0, byte for byte (so GGUF Q8_0 tensors can be used in place).
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQ8BlockSize];
};
static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 is 34 bytes");

struct LinearWeight {
  WeightFormat format = WeightFormat::F32;
  int64_t N = 0, K = 0;
  PackedWeight packed;               // F32
  std::shared_ptr<const void> data;  // F16/BF16: uint16_t [N, K]; Q8_0: BlockQ8_0 [N, K / 32]
  bool empty() const { return N == 0; }
  size_t bytes() const;  // storage the weight occupies (what one pass over it reads)
  const uint16_t* half() const { return static_cast<const uint16_t*>(data.get()); }
  const BlockQ8_0* q8_0() const { return static_cast<const BlockQ8_0*>(data.get()); }
};

// Rows of x up to which ops::linear(LinearWeight) runs the GEMV path (tests cover both sides).
constexpr int64_t kLinearGemvMaxM = 4;

namespace ops {
LUMEN_OPS_DECLARATIONS
// W: a 2-D [N, K] F32/F16/BF16 tensor. F16 from an F16 tensor (and BF16 from BF16) shares
// its storage (no copy: an mmapped checkpoint stays mapped); other combinations convert
// (F32 -> F16 rounds to nearest even; Q8_0 quantizes, in parallel). Q8_0 with K % 32 != 0
// is an error.
LinearWeight make_linear_weight(const Tensor& W, WeightFormat format);
// y[M, N] = x[M, K] @ W^T + bias[N]; bias may be null. F32 is linear_packed. For M <=
// kLinearGemvMaxM, Q8_0 also quantizes each row of x to int8 blocks (f32 scale per 32) and
// uses integer dot products, as ggml's q8_0 x q8_0 dot; larger M use f32 x.
void linear(const float* x, int64_t M, const LinearWeight& w, const float* bias, float* y);
// ggml's quantize_row_q8_0: x [k] (k % 32 == 0) -> k / 32 blocks. Rounds half to even.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t k);
// Packs W [N, K] (f32, or a 2-D F32/F16/BF16 tensor) for linear_packed.
PackedWeight pack_linear(const float* W, int64_t N, int64_t K);
PackedWeight pack_linear(const Tensor& W);
// y[M, N] = x[M, K] @ W^T + bias[N] with W packed by pack_linear; bias may be null. Same
// result as linear() up to float rounding. Faster than linear() for M ~ 6..100 (no packing
// of W per call: 1.2-1.9x), the same for larger M and for decode (memory bound).
void linear_packed(const float* x, int64_t M, const PackedWeight& w, const float* bias, float* y);
// out[0, numel) = t converted to f32 (t: F32, F16 or BF16; F16 via F16C). Parallel when large.
void convert_to_f32(const Tensor& t, float* out);
void convert_f16_to_f32(const uint16_t* src, float* dst, int64_t n);
void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n);
// Which GEMM gemm()/linear() use. Auto = the measured per-shape dispatch in cpu/gemm.cpp;
// the others force one side (benchmarks and tests). Process-wide.
enum class GemmBackend { Auto, Lumen, OpenBlas };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();
// Which micro-kernels lumen's GEMM runs (gemm, linear, linear_packed, attention, converted
// weights): AVX2 (the baseline every build needs) or AVX-512F (12 x 32 tiles). Default:
// AVX-512 when the CPU has AVX-512F, unless the environment says LUMEN_CPU=avx2 (LUMEN_CPU=
// avx512 makes a CPU without it an error). Process-wide; set_cpu_path of a path the CPU
// lacks is an error.
enum class CpuPath { Avx2, Avx512 };
bool cpu_path_supported(CpuPath path);
void set_cpu_path(CpuPath path);
CpuPath cpu_path();
const char* cpu_path_name(CpuPath path);  // "avx2", "avx512"
// out[i, :] = table[ids[i], :]; table may be F32/F16/BF16; ids checked against the table rows.
void embedding(const Tensor& table, const int64_t* ids, int64_t n, float* out);
}  // namespace ops

namespace ref {
LUMEN_OPS_DECLARATIONS
// The scalar definitions of the weight formats: y = x @ dequant(W)^T + bias (double sums),
// W dequantized exactly as stored (f16/bf16 -> f32; q8_0 -> f32(d) * q).
void linear(const float* x, int64_t M, const LinearWeight& w, const float* bias, float* y);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t k);
// dequant(W) [N, K] as f32.
void dequantize_linear_weight(const LinearWeight& w, float* out);
}  // namespace ref

}  // namespace lumen

// Model-agnostic f32 ops. Every op works on raw row-major buffers with explicit sizes, so the
// same op serves any family. ref/ holds the scalar oracle with identical signatures (namespace
// lumen::ref) that tests compare against; cpu/ holds the fast versions (namespace lumen::ops).
#pragma once
#include <cstdint>
#include <memory>

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

namespace ops {
LUMEN_OPS_DECLARATIONS
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
// out[i, :] = table[ids[i], :]; table may be F32/F16/BF16; ids checked against the table rows.
void embedding(const Tensor& table, const int64_t* ids, int64_t n, float* out);
}  // namespace ops

namespace ref {
LUMEN_OPS_DECLARATIONS
}  // namespace ref

}  // namespace lumen

// Fast f32 ops for x86-64 with AVX2/FMA. GEMM goes to OpenBLAS for now (see gemm.cpp);
// the element-wise ops are simple loops the compiler vectorises, parallel over rows.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/half.h"
#include "core/threads.h"
#include "kernels/ops.h"

namespace lumen::ops {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda), B,
              static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void linear(const float* x, int64_t M, int64_t K, const float* W, int64_t N, const float* bias, float* y) {
  if (bias) {
    for (int64_t i = 0; i < M; ++i) std::memcpy(y + i * N, bias, static_cast<size_t>(N) * sizeof(float));
    gemm(false, true, M, N, K, 1.f, x, K, W, K, 1.f, y, N);
  } else {
    gemm(false, true, M, N, K, 1.f, x, K, W, K, 0.f, y, N);
  }
}

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps,
                float* y) {
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      // Two-pass in float, as torch's CPU kernel does, so rounding stays close to the reference.
      float mean = 0;
      for (int64_t i = 0; i < dim; ++i) mean += xr[i];
      mean /= static_cast<float>(dim);
      float var = 0;
      for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= static_cast<float>(dim);
      float inv = 1.f / std::sqrt(var + eps);
      for (int64_t i = 0; i < dim; ++i) {
        float v = (xr[i] - mean) * inv;
        if (gamma) v *= gamma[i];
        if (beta) v += beta[i];
        yr[i] = v;
      }
    }
  }, 16);
}

void gelu_erf(float* x, int64_t n) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) x[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
  }, 4096);
}

void gelu_tanh(float* x, int64_t n) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    const float c = 0.7978845608028654f;
    for (int64_t i = a; i < b; ++i) {
      float v = x[i];
      x[i] = 0.5f * v * (1.f + std::tanh(c * (v + 0.044715f * v * v * v)));
    }
  }, 4096);
}

void quick_gelu(float* x, int64_t n) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) x[i] = x[i] / (1.f + std::exp(-1.702f * x[i]));
  }, 4096);
}

static void softmax_row(float* xr, int64_t cols) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < cols; ++i) mx = std::max(mx, xr[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    for (int64_t i = 0; i < cols; ++i) xr[i] = 0.f;
    return;
  }
  float sum = 0;
  for (int64_t i = 0; i < cols; ++i) {
    xr[i] = std::exp(xr[i] - mx);
    sum += xr[i];
  }
  float inv = 1.f / sum;
  for (int64_t i = 0; i < cols; ++i) xr[i] *= inv;
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) softmax_row(x + r * cols, cols);
  }, 8);
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void l2_normalize_rows(float* x, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    float s = 0;
    for (int64_t i = 0; i < dim; ++i) s += x[r * dim + i] * x[r * dim + i];
    // torch: x / x.norm(p=2, dim=-1, keepdim=True)
    float norm = std::sqrt(s);
    for (int64_t i = 0; i < dim; ++i) x[r * dim + i] /= norm;
  }
}

void attention(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v,
               int64_t v_stride, int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim, float scale,
               const AttentionMask& mask, float* out, int64_t out_stride) {
  const float ninf = -std::numeric_limits<float>::infinity();
  parallel_for(heads * Lq, [&](int64_t t0, int64_t t1) {
    std::vector<float> s(static_cast<size_t>(Lk));
    for (int64_t t = t0; t < t1; ++t) {
      int64_t h = t / Lq, i = t % Lq;
      const float* qi = q + i * q_stride + h * head_dim;
      for (int64_t j = 0; j < Lk; ++j) {
        bool visible = (!mask.causal || j <= i + mask.causal_offset) && (!mask.key_keep || mask.key_keep[j]);
        if (!visible) {
          s[j] = ninf;
          continue;
        }
        const float* kj = k + j * k_stride + h * head_dim;
        float acc = 0;
        for (int64_t d = 0; d < head_dim; ++d) acc += qi[d] * kj[d];
        s[j] = acc * scale + (mask.additive ? mask.additive[i * Lk + j] : 0.f);
      }
      softmax_row(s.data(), Lk);
      float* oi = out + i * out_stride + h * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) oi[d] = 0.f;
      for (int64_t j = 0; j < Lk; ++j) {
        float p = s[j];
        if (p == 0.f) continue;
        const float* vj = v + j * v_stride + h * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) oi[d] += p * vj[d];
      }
    }
  }, 4);
}

void embedding(const Tensor& table, const int64_t* ids, int64_t n, float* out) {
  LUMEN_CHECK(table.ndim() == 2, "embedding table must be 2-D, got ", table.describe());
  int64_t rows = table.dim(0), dim = table.dim(1);
  for (int64_t i = 0; i < n; ++i) {
    int64_t id = ids[i];
    LUMEN_CHECK(id >= 0 && id < rows, "token id ", id, " out of range for an embedding table of ", rows, " rows");
    float* o = out + i * dim;
    switch (table.dtype()) {
      case DType::F32:
        std::memcpy(o, table.data<float>() + id * dim, static_cast<size_t>(dim) * sizeof(float));
        break;
      case DType::F16: {
        const auto* s = static_cast<const uint16_t*>(table.raw()) + id * dim;
        for (int64_t d = 0; d < dim; ++d) o[d] = f16_to_f32(s[d]);
        break;
      }
      case DType::BF16: {
        const auto* s = static_cast<const uint16_t*>(table.raw()) + id * dim;
        for (int64_t d = 0; d < dim; ++d) o[d] = bf16_to_f32(s[d]);
        break;
      }
      default: fail("embedding table has non-float dtype ", dtype_name(table.dtype()));
    }
  }
}

}  // namespace lumen::ops

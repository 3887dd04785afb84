// Scalar reference ops: the oracle for kernel tests. Clarity over speed; double accumulators.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/gemm_kernel.h"  // the F32 panel layout, to read packed weights back
#include "kernels/ops.h"

namespace lumen::ref {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * b;
      }
      float prev = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(alpha * acc) + prev;
    }
  }
}

void linear(const float* x, int64_t M, int64_t K, const float* W, int64_t N, const float* bias, float* y) {
  gemm(false, true, M, N, K, 1.f, x, K, W, K, 0.f, y, N);
  if (bias)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) y[i * N + j] += bias[j];
}

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps,
                float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; ++i) mean += xr[i];
    mean /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(dim);
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < dim; ++i) {
      double v = (xr[i] - mean) * inv;
      if (gamma) v *= gamma[i];
      if (beta) v += beta[i];
      y[r * dim + i] = static_cast<float>(v);
    }
  }
}

void gelu_erf(float* x, int64_t n) {
  // 1 + erf(z) == erfc(-z): no cancellation for negative x, even in double.
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(0.5 * x[i] * std::erfc(-x[i] / std::sqrt(2.0)));
}

void gelu_tanh(float* x, int64_t n) {
  const double c = std::sqrt(2.0 / M_PI);
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i];
    // 0.5 v (1 + tanh(u)) == v / (1 + e^(-2u)), free of cancellation for negative v.
    x[i] = static_cast<float>(v / (1.0 + std::exp(-2.0 * c * (v + 0.044715 * v * v * v))));
  }
}

void quick_gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] / (1.0 + std::exp(-1.702 * x[i])));
}

void silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))));
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < cols; ++i) mx = std::max(mx, xr[i]);
    if (mx == -std::numeric_limits<float>::infinity()) {  // fully masked row
      for (int64_t i = 0; i < cols; ++i) xr[i] = 0.f;
      continue;
    }
    double sum = 0;
    for (int64_t i = 0; i < cols; ++i) sum += std::exp(static_cast<double>(xr[i]) - mx);
    for (int64_t i = 0; i < cols; ++i) xr[i] = static_cast<float>(std::exp(static_cast<double>(xr[i]) - mx) / sum);
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void l2_normalize_rows(float* x, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t i = 0; i < dim; ++i) s += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    double inv = 1.0 / std::sqrt(s);
    for (int64_t i = 0; i < dim; ++i) x[r * dim + i] = static_cast<float>(x[r * dim + i] * inv);
  }
}

void attention(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v,
               int64_t v_stride, int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim, float scale,
               const AttentionMask& mask, float* out, int64_t out_stride) {
  std::vector<float> s(static_cast<size_t>(Lk));
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < Lq; ++i) {
      for (int64_t j = 0; j < Lk; ++j) {
        bool visible = (!mask.causal || j <= i + mask.causal_offset) && (!mask.key_keep || mask.key_keep[j]) &&
                       (mask.window <= 0 || i + mask.causal_offset - j < mask.window);
        if (!visible) {
          s[j] = ninf;
          continue;
        }
        double acc = 0;
        for (int64_t d = 0; d < head_dim; ++d)
          acc += static_cast<double>(q[i * q_stride + h * head_dim + d]) * k[j * k_stride + h * head_dim + d];
        s[j] = static_cast<float>(acc * scale) + (mask.additive ? mask.additive[i * Lk + j] : 0.f);
      }
      softmax_rows(s.data(), 1, Lk);
      for (int64_t d = 0; d < head_dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < Lk; ++j) acc += static_cast<double>(s[j]) * v[j * v_stride + h * head_dim + d];
        out[i * out_stride + h * head_dim + d] = static_cast<float>(acc);
      }
    }
  }
}

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t k) {
  LUMEN_CHECK(k % kQ8BlockSize == 0, "quantize_row_q8_0: length ", k, " is not a multiple of 32");
  for (int64_t b = 0; b < k / kQ8BlockSize; ++b) {
    const float* xb = x + b * kQ8BlockSize;
    float amax = 0.f;
    for (int64_t i = 0; i < kQ8BlockSize; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    y[b].d = f32_to_f16(d);
    for (int64_t i = 0; i < kQ8BlockSize; ++i) y[b].qs[i] = static_cast<int8_t>(std::nearbyint(xb[i] * id));
  }
}

void dequantize_linear_weight(const LinearWeight& w, float* out) {
  const int64_t N = w.N, K = w.K;
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < K; ++k) {
      float v = 0.f;
      switch (w.format) {
        case WeightFormat::F32: {  // K blocks of kKC rows, panels of kNR columns, k-major
          const int64_t npad = cpu::round_up(N, cpu::kNR), pc = k / cpu::kKC * cpu::kKC;
          const int64_t kc = std::min(cpu::kKC, K - pc);
          v = w.packed.data.get()[pc * npad + (j / cpu::kNR) * kc * cpu::kNR + (k - pc) * cpu::kNR + j % cpu::kNR];
          break;
        }
        case WeightFormat::F16: v = f16_to_f32(w.half()[j * K + k]); break;
        case WeightFormat::BF16: v = bf16_to_f32(w.half()[j * K + k]); break;
        case WeightFormat::Q8_0: {
          const BlockQ8_0& blk = w.q8_0()[j * (K / kQ8BlockSize) + k / kQ8BlockSize];
          v = f16_to_f32(blk.d) * static_cast<float>(blk.qs[k % kQ8BlockSize]);
          break;
        }
      }
      out[j * K + k] = v;
    }
}

void linear(const float* x, int64_t M, const LinearWeight& w, const float* bias, float* y) {
  std::vector<float> W(static_cast<size_t>(w.N * w.K));
  dequantize_linear_weight(w, W.data());
  linear(x, M, w.K, W.data(), w.N, bias, y);
}

}  // namespace lumen::ref

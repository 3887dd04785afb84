// Element-wise, normalisation and conversion ops for x86-64 with AVX2/FMA/F16C.
// GEMM and linear live in gemm.cpp, attention in attention.cpp.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/threads.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace lumen::ops {
namespace {

// Element-wise work below this many floats per thread is not worth waking the pool for.
constexpr int64_t kMinElementsPerThread = 16384;

// Applies f (vector -> vector) to x[0, n) in place, 8 lanes at a time with a masked tail,
// in parallel when n is large.
template <typename F>
void map_inplace(float* x, int64_t n, F f) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    int64_t i = a;
    for (; i + 8 <= b; i += 8) _mm256_storeu_ps(x + i, f(_mm256_loadu_ps(x + i)));
    if (i < b) {
      const __m256i m = cpu::tail_mask(b - i);
      _mm256_maskstore_ps(x + i, m, f(_mm256_maskload_ps(x + i, m)));
    }
  }, kMinElementsPerThread);
}

}  // namespace

namespace {

// sum over i < n of f(x[i]), f applied to 8 lanes at a time (lanes past n are dropped after
// f). Four independent accumulators: pairwise-like rounding (~1e-7 relative for dim <= 4096)
// and no single add-latency chain.
template <typename F>
float row_sum(const float* x, int64_t n, F f) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, f(_mm256_loadu_ps(x + i)));
    s1 = _mm256_add_ps(s1, f(_mm256_loadu_ps(x + i + 8)));
    s2 = _mm256_add_ps(s2, f(_mm256_loadu_ps(x + i + 16)));
    s3 = _mm256_add_ps(s3, f(_mm256_loadu_ps(x + i + 24)));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = cpu::tail_mask(n - i);
    s1 = _mm256_add_ps(s1, _mm256_and_ps(f(_mm256_maskload_ps(x + i, m)), _mm256_castsi256_ps(m)));
  }
  return cpu::hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* gamma, const float* beta, float eps,
                float* y) {
  LUMEN_CHECK(dim > 0, "layer_norm: dim must be positive, got ", dim);
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      // Two passes in float (mean, then the mean of squared deviations), as torch's CPU
      // kernel does; the second pass avoids E[x^2] - E[x]^2 cancellation.
      const float mean = row_sum(xr, dim, [](__m256 v) { return v; }) / static_cast<float>(dim);
      const __m256 mv = _mm256_set1_ps(mean);
      const float var = row_sum(xr, dim, [&](__m256 v) {
        const __m256 d = _mm256_sub_ps(v, mv);
        return _mm256_mul_ps(d, d);
      }) / static_cast<float>(dim);
      const __m256 inv = _mm256_set1_ps(1.f / std::sqrt(var + eps));
      for (int64_t i = 0; i < dim; i += 8) {
        const __m256i m = cpu::tail_mask(dim - i);
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + i, m), mv), inv);
        if (gamma) v = _mm256_mul_ps(v, _mm256_maskload_ps(gamma + i, m));
        if (beta) v = _mm256_add_ps(v, _mm256_maskload_ps(beta + i, m));
        _mm256_maskstore_ps(yr + i, m, v);
      }
    }
  }, std::max<int64_t>(1, kMinElementsPerThread / dim));
}

// 0.5 x (1 + erf(x / sqrt 2)); for x < 0 the 1 + erf term is erfc(|x| / sqrt 2) computed
// directly, so negative inputs keep full relative precision.
void gelu_erf(float* x, int64_t n) {
  map_inplace(x, n, [](__m256 v) {
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), cpu::one_plus_erf_scaled256(v));
  });
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3); the sigmoid form
// has no cancellation for negative x.
void gelu_tanh(float* x, int64_t n) {
  map_inplace(x, n, [](__m256 v) {
    const __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
    const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                   _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), v3, v));
    return _mm256_mul_ps(v, cpu::sigmoid256(_mm256_add_ps(u, u)));
  });
}

void quick_gelu(float* x, int64_t n) {
  map_inplace(x, n, [](__m256 v) { return _mm256_mul_ps(v, cpu::sigmoid256(_mm256_mul_ps(_mm256_set1_ps(1.702f), v))); });
}

void silu(float* x, int64_t n) {
  map_inplace(x, n, [](__m256 v) { return _mm256_mul_ps(v, cpu::sigmoid256(v)); });
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) cpu::softmax_row(x + r * cols, cols);
  }, std::max<int64_t>(1, kMinElementsPerThread / std::max<int64_t>(1, cols)));
}

void add_inplace(float* y, const float* x, int64_t n) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    int64_t i = a;
    for (; i + 8 <= b; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < b; ++i) y[i] += x[i];
  }, 4 * kMinElementsPerThread);
}

void l2_normalize_rows(float* x, int64_t rows, int64_t dim) {
  const int64_t d8 = dim - dim % 8;
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * dim;
    __m256 s = _mm256_setzero_ps();
    for (int64_t i = 0; i < d8; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(xr + i), s);
    float sum = cpu::hsum(s);
    for (int64_t i = d8; i < dim; ++i) sum += xr[i] * xr[i];
    // torch: x / x.norm(p=2, dim=-1, keepdim=True) -- a division, not a reciprocal multiply.
    const float norm = std::sqrt(sum);
    const __m256 nv = _mm256_set1_ps(norm);
    for (int64_t i = 0; i < d8; i += 8) _mm256_storeu_ps(xr + i, _mm256_div_ps(_mm256_loadu_ps(xr + i), nv));
    for (int64_t i = d8; i < dim; ++i) xr[i] /= norm;
  }
}

void convert_f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    int64_t i = a;
    for (; i + 8 <= b; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < b; ++i) dst[i] = f16_to_f32(src[i]);
  }, 4 * kMinElementsPerThread);
}

void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  parallel_for(n, [&](int64_t a, int64_t b) {
    int64_t i = a;
    for (; i + 8 <= b; i += 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; i < b; ++i) dst[i] = bf16_to_f32(src[i]);
  }, 4 * kMinElementsPerThread);
}

void convert_to_f32(const Tensor& t, float* out) {
  switch (t.dtype()) {
    case DType::F32:
      std::memcpy(out, t.data<float>(), static_cast<size_t>(t.numel()) * sizeof(float));
      return;
    case DType::F16: convert_f16_to_f32(static_cast<const uint16_t*>(t.raw()), out, t.numel()); return;
    case DType::BF16: convert_bf16_to_f32(static_cast<const uint16_t*>(t.raw()), out, t.numel()); return;
    default: fail("convert_to_f32: tensor ", t.describe(), " is not F32/F16/BF16");
  }
}

void embedding(const Tensor& table, const int64_t* ids, int64_t n, float* out) {
  LUMEN_CHECK(table.ndim() == 2, "embedding table must be 2-D, got ", table.describe());
  const int64_t rows = table.dim(0), dim = table.dim(1);
  LUMEN_CHECK(table.dtype() == DType::F32 || table.dtype() == DType::F16 || table.dtype() == DType::BF16,
              "embedding table has non-float dtype ", dtype_name(table.dtype()));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids[i];
    LUMEN_CHECK(id >= 0 && id < rows, "token id ", id, " out of range for an embedding table of ", rows, " rows");
    float* o = out + i * dim;
    switch (table.dtype()) {
      case DType::F32:
        std::memcpy(o, table.data<float>() + id * dim, static_cast<size_t>(dim) * sizeof(float));
        break;
      case DType::F16: convert_f16_to_f32(static_cast<const uint16_t*>(table.raw()) + id * dim, o, dim); break;
      default: convert_bf16_to_f32(static_cast<const uint16_t*>(table.raw()) + id * dim, o, dim); break;
    }
  }
}

}  // namespace lumen::ops

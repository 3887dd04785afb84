// Linear layers on weights stored as f16, bf16 or q8_0 (see LinearWeight in kernels/ops.h).
//
// Decode (M <= kLinearGemvMaxM rows of x): memory-bound GEMVs that read each stored weight
// byte once, split over N between the pool's threads. 4 rows of W x 2 rows of x per pass
// (8 accumulators: enough independent FMA chains, no register spills); the 4 W rows are
// re-read from L1 for further pairs of x rows.
//   f16/bf16: 8 weights -> f32 by F16C (bf16: a 16-bit shift), FMA with x.
//   q8_0: as ggml's ggml_vec_dot_q8_0_q8_0 (AVX2): each row of x is quantized once to int8
//         blocks of 32 (f32 scale d_x = max|x|/127), then per block
//         sum(q_w * q_x) = madd(maddubs(|q_w|, sign(q_x, q_w)), 1) in int32 (q_w is never
//         -128, so |q_w| fits u8 and the i16 pair sums, <= 2 * 127 * 127, cannot saturate),
//         scaled by d_w * d_x into f32 accumulators.
// Prefill (more rows): weight tiles converted into the f32 GEMM's panels (gemm_custom_b_st)
// and multiplied by the f32 micro-kernel; the conversion is paid once per panel and shared
// by all M rows, so the speed is the f32 GEMM's.
#include <immintrin.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "core/threads.h"
#include "kernels/cpu/gemm_kernel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace lumen {

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::F16: return "f16";
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::Q8_0: return "q8_0";
  }
  return "?";
}

bool weight_format_from_name(const std::string& name, WeightFormat* out) {
  std::string n = name;
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (WeightFormat f : {WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16, WeightFormat::Q8_0})
    if (n == weight_format_name(f)) {
      *out = f;
      return true;
    }
  return false;
}

size_t LinearWeight::bytes() const {
  switch (format) {
    case WeightFormat::F32: return static_cast<size_t>(cpu::packed_b_floats(K, N)) * sizeof(float);
    case WeightFormat::F16:
    case WeightFormat::BF16: return static_cast<size_t>(N * K) * 2;
    case WeightFormat::Q8_0: return static_cast<size_t>(N * (K / kQ8BlockSize)) * sizeof(BlockQ8_0);
  }
  return 0;
}

namespace ops {
namespace {

// ---- conversions ----------------------------------------------------------------------------

// 8 stored halves at p -> 8 floats.
inline __m256 load8_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8_bf16(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
inline float scalar_f16(uint16_t h) { return _cvtsh_ss(h); }

// x [32] -> q [32] int8 with d = max|x| / 127, q = round_half_even(x * (1 / d)); returns d.
// The arithmetic of ref::quantize_row_q8_0 (same operations, so the same bits).
inline float quantize_block(const float* x, int8_t* q) {
  const __m256 sign_bit = _mm256_set1_ps(-0.f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
  }
  const float d = cpu::hmax(amax) / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  const __m256 vid = _mm256_set1_ps(id);
  __m256i i32[4];
  for (int i = 0; i < 4; ++i)
    i32[i] = _mm256_cvtps_epi32(
        _mm256_round_ps(_mm256_mul_ps(v[i], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  // packs work within 128-bit lanes: restore the order afterwards (as ggml does).
  const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
  const __m256i i8 = _mm256_packs_epi16(i16a, i16b);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(i8, perm));
  return d;
}

// ---- GEMV: f16 / bf16 -----------------------------------------------------------------------

// y[i0 .. i0 + NX, j .. j + 4) from 4 rows of W (w[r], the stored halves) and NX rows of x.
template <bool kBf16, int NX>
inline void gemv_half_tile(const float* const* xr, int64_t K, const uint16_t* const* w, float s[2][4]) {
  auto load = [](const uint16_t* p) { return kBf16 ? load8_bf16(p) : load8_f16(p); };
  const int64_t k8 = K - K % 8;
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  [[maybe_unused]] __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  for (int64_t k = 0; k < k8; k += 8) {
    const __m256 w0 = load(w[0] + k), w1 = load(w[1] + k), w2 = load(w[2] + k), w3 = load(w[3] + k);
    const __m256 v0 = _mm256_loadu_ps(xr[0] + k);
    a00 = _mm256_fmadd_ps(v0, w0, a00);
    a01 = _mm256_fmadd_ps(v0, w1, a01);
    a02 = _mm256_fmadd_ps(v0, w2, a02);
    a03 = _mm256_fmadd_ps(v0, w3, a03);
    if constexpr (NX == 2) {
      const __m256 v1 = _mm256_loadu_ps(xr[1] + k);
      a10 = _mm256_fmadd_ps(v1, w0, a10);
      a11 = _mm256_fmadd_ps(v1, w1, a11);
      a12 = _mm256_fmadd_ps(v1, w2, a12);
      a13 = _mm256_fmadd_ps(v1, w3, a13);
    }
  }
  s[0][0] = cpu::hsum(a00), s[0][1] = cpu::hsum(a01), s[0][2] = cpu::hsum(a02), s[0][3] = cpu::hsum(a03);
  if constexpr (NX == 2)
    s[1][0] = cpu::hsum(a10), s[1][1] = cpu::hsum(a11), s[1][2] = cpu::hsum(a12), s[1][3] = cpu::hsum(a13);
  for (int64_t k = k8; k < K; ++k)
    for (int r = 0; r < 4; ++r) {
      const float wv = kBf16 ? bf16_to_f32(w[r][k]) : scalar_f16(w[r][k]);
      for (int i = 0; i < NX; ++i) s[i][r] += xr[i][k] * wv;
    }
}

// y[i, j] for i < M, j in [n0, n1): W rows straight from the stored halves.
template <bool kBf16>
void gemv_half(const float* x, int64_t M, int64_t K, const uint16_t* W, int64_t n0, int64_t n1, const float* bias,
               float* y, int64_t N) {
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t nj = std::min<int64_t>(4, n1 - j);
    const uint16_t* w[4];
    for (int64_t r = 0; r < 4; ++r) w[r] = W + (j + std::min(r, nj - 1)) * K;
    for (int64_t i = 0; i < M; i += 2) {
      const int64_t ni = std::min<int64_t>(2, M - i);
      const float* xr[2] = {x + i * K, x + (i + ni - 1) * K};
      float s[2][4];
      if (ni == 2)
        gemv_half_tile<kBf16, 2>(xr, K, w, s);
      else
        gemv_half_tile<kBf16, 1>(xr, K, w, s);
      for (int64_t ii = 0; ii < ni; ++ii)
        for (int64_t r = 0; r < nj; ++r) y[(i + ii) * N + j + r] = s[ii][r] + (bias ? bias[j + r] : 0.f);
    }
  }
}

// ---- GEMV: q8_0 -----------------------------------------------------------------------------

// Rows of x quantized to int8 blocks: q [M, K], d [M, K / 32] (f32 scales).
struct QuantizedRows {
  const int8_t* q;
  const float* d;
};

// int32 lanes of sum(q_w * q_x) over 32 pairs (8 lanes of 4 products each).
inline __m256i dot_q8(__m256i abs_w, __m256i w, __m256i xq) {
  const __m256i p16 = _mm256_maddubs_epi16(abs_w, _mm256_sign_epi8(xq, w));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// sum over blocks of d_w d_x sum(q_w q_x) for 4 rows of W (w[r]) and NX rows of x. Named
// accumulators, not an array: GCC keeps __m256 arrays in memory (see gemm.cpp), which made
// this loop compute-bound at ~60% of the memory bandwidth.
template <int NX>
inline void gemv_q8_0_tile(const int8_t* const* q, const float* const* d, int64_t nb, const BlockQ8_0* const* w,
                           float s[2][4]) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  [[maybe_unused]] __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[0] + b * kQ8BlockSize));
    [[maybe_unused]] __m256i x1;
    if constexpr (NX == 2) x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[1] + b * kQ8BlockSize));
#define LUMEN_Q8_ROW(r, acc0, acc1)                                                                        \
  {                                                                                                        \
    const BlockQ8_0& blk = w[r][b];                                                                        \
    const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));                       \
    const __m256i aw = _mm256_sign_epi8(wq, wq);                                                           \
    const float dw = scalar_f16(blk.d);                                                                    \
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_q8(aw, wq, x0)), _mm256_set1_ps(dw * d[0][b]), acc0);    \
    if constexpr (NX == 2)                                                                                 \
      acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_q8(aw, wq, x1)), _mm256_set1_ps(dw * d[1][b]), acc1);  \
  }
    LUMEN_Q8_ROW(0, a00, a10)
    LUMEN_Q8_ROW(1, a01, a11)
    LUMEN_Q8_ROW(2, a02, a12)
    LUMEN_Q8_ROW(3, a03, a13)
#undef LUMEN_Q8_ROW
  }
  s[0][0] = cpu::hsum(a00), s[0][1] = cpu::hsum(a01), s[0][2] = cpu::hsum(a02), s[0][3] = cpu::hsum(a03);
  if constexpr (NX == 2)
    s[1][0] = cpu::hsum(a10), s[1][1] = cpu::hsum(a11), s[1][2] = cpu::hsum(a12), s[1][3] = cpu::hsum(a13);
}

void gemv_q8_0(const QuantizedRows& xq, int64_t M, int64_t K, const BlockQ8_0* W, int64_t n0, int64_t n1,
               const float* bias, float* y, int64_t N) {
  const int64_t nb = K / kQ8BlockSize;
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t nj = std::min<int64_t>(4, n1 - j);
    const BlockQ8_0* w[4];
    for (int64_t r = 0; r < 4; ++r) w[r] = W + (j + std::min(r, nj - 1)) * nb;
    for (int64_t i = 0; i < M; i += 2) {
      const int64_t ni = std::min<int64_t>(2, M - i);
      const int8_t* q[2] = {xq.q + i * K, xq.q + (i + ni - 1) * K};
      const float* d[2] = {xq.d + i * nb, xq.d + (i + ni - 1) * nb};
      float s[2][4];
      if (ni == 2)
        gemv_q8_0_tile<2>(q, d, nb, w, s);
      else
        gemv_q8_0_tile<1>(q, d, nb, w, s);
      for (int64_t ii = 0; ii < ni; ++ii)
        for (int64_t r = 0; r < nj; ++r) y[(i + ii) * N + j + r] = s[ii][r] + (bias ? bias[j + r] : 0.f);
    }
  }
}

// ---- panel packers for the prefill GEMM -------------------------------------------------------

// 8 consecutive weights of row j from column k (k % 8 == 0, k + 8 <= K) as f32.
template <WeightFormat F>
inline __m256 load8_weights(const LinearWeight& w, int64_t j, int64_t k) {
  if constexpr (F == WeightFormat::F16) return load8_f16(w.half() + j * w.K + k);
  if constexpr (F == WeightFormat::BF16) return load8_bf16(w.half() + j * w.K + k);
  if constexpr (F == WeightFormat::Q8_0) {
    const BlockQ8_0& blk = w.q8_0()[j * (w.K / kQ8BlockSize) + k / kQ8BlockSize];
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk.qs + k % kQ8BlockSize));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(scalar_f16(blk.d)));
  }
  return _mm256_setzero_ps();
}

template <WeightFormat F>
inline float weight_at(const LinearWeight& w, int64_t j, int64_t k) {
  if constexpr (F == WeightFormat::F16) return scalar_f16(w.half()[j * w.K + k]);
  if constexpr (F == WeightFormat::BF16) return bf16_to_f32(w.half()[j * w.K + k]);
  if constexpr (F == WeightFormat::Q8_0) {
    const BlockQ8_0& blk = w.q8_0()[j * (w.K / kQ8BlockSize) + k / kQ8BlockSize];
    return scalar_f16(blk.d) * static_cast<float>(blk.qs[k % kQ8BlockSize]);
  }
  return 0.f;
}

// op(B) = W^T: dst[k * 16 + j] = W[j0 + j][pc + k], converted.
template <WeightFormat F>
void pack_panel(const void* ctx, int64_t pc, int64_t kc, int64_t j0, int64_t nv, float* dst) {
  const LinearWeight& w = *static_cast<const LinearWeight*>(ctx);
  int64_t k = 0;
  if (nv == cpu::kNR) {
    for (; k + 8 <= kc; k += 8) {
      for (int half = 0; half < 2; ++half) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = load8_weights<F>(w, j0 + half * 8 + i, pc + k);
        cpu::transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_store_ps(dst + (k + i) * cpu::kNR + half * 8, r[i]);
      }
    }
  }
  for (; k < kc; ++k)
    for (int64_t j = 0; j < cpu::kNR; ++j) dst[k * cpu::kNR + j] = j < nv ? weight_at<F>(w, j0 + j, pc + k) : 0.f;
}

cpu::PanelPacker packer_for(WeightFormat f) {
  switch (f) {
    case WeightFormat::F16: return pack_panel<WeightFormat::F16>;
    case WeightFormat::BF16: return pack_panel<WeightFormat::BF16>;
    case WeightFormat::Q8_0: return pack_panel<WeightFormat::Q8_0>;
    case WeightFormat::F32: break;
  }
  fail("linear: no panel packer for ", weight_format_name(f));
}

// Products below this many flops run on the calling thread (waking the pool costs ~10 us).
constexpr double kMinParallelFlops = 4e5;

void linear_gemv(const float* x, int64_t M, const LinearWeight& w, const float* bias, float* y) {
  const int64_t N = w.N, K = w.K;
  const bool parallel =
      num_threads() > 1 && 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) >=
                               kMinParallelFlops;
  auto over_rows = [&](auto&& fn) {  // fn(n0, n1) over W rows, 4-row groups per thread
    if (parallel)
      parallel_for((N + 3) / 4, [&](int64_t b0, int64_t b1) { fn(b0 * 4, std::min(N, b1 * 4)); });
    else
      fn(0, N);
  };
  switch (w.format) {
    case WeightFormat::F16:
      over_rows([&](int64_t n0, int64_t n1) { gemv_half<false>(x, M, K, w.half(), n0, n1, bias, y, N); });
      return;
    case WeightFormat::BF16:
      over_rows([&](int64_t n0, int64_t n1) { gemv_half<true>(x, M, K, w.half(), n0, n1, bias, y, N); });
      return;
    case WeightFormat::Q8_0: {
      const int64_t nb = K / kQ8BlockSize;
      thread_local std::vector<int8_t> qbuf;
      thread_local std::vector<float> dbuf;
      qbuf.resize(static_cast<size_t>(M * K));
      dbuf.resize(static_cast<size_t>(M * nb));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t b = 0; b < nb; ++b)
          dbuf[static_cast<size_t>(i * nb + b)] =
              quantize_block(x + i * K + b * kQ8BlockSize, qbuf.data() + i * K + b * kQ8BlockSize);
      const QuantizedRows xq{qbuf.data(), dbuf.data()};
      over_rows([&](int64_t n0, int64_t n1) { gemv_q8_0(xq, M, K, w.q8_0(), n0, n1, bias, y, N); });
      return;
    }
    case WeightFormat::F32: break;
  }
  fail("linear_gemv: unexpected format");
}

// Many rows: converted panels + the f32 micro-kernel, split over N panels (each thread converts
// only its own columns) or, when there are few, over rows.
void linear_gemm(const float* x, int64_t M, const LinearWeight& w, const float* bias, float* y) {
  const int64_t N = w.N, K = w.K;
  const cpu::PanelPacker pack = packer_for(w.format);
  const cpu::Epilogue ep{1.f, 0.f, bias};
  const int threads = num_threads();
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int64_t n_panels = (N + cpu::kNR - 1) / cpu::kNR, m_panels = (M + cpu::kMR - 1) / cpu::kMR;
  if (threads <= 1 || flops < kMinParallelFlops) {
    cpu::gemm_custom_b_st(x, K, M, K, pack, &w, 0, N, ep, y, N);
  } else if (n_panels >= 4 * threads || n_panels >= m_panels) {
    // Column pieces claimed on demand (a descheduled thread holds up one piece, not half the
    // product). Every piece packs all rows of x again: pieces of >= 32 panels (512 columns)
    // keep that under ~3% of a prefill product; rows are not split instead because then
    // every piece would convert all of W again.
    const int64_t grain = std::max<int64_t>(32, (n_panels + 4 * threads - 1) / (4 * threads));
    parallel_for_dynamic(n_panels, grain, [&](int64_t p0, int64_t p1) {
      cpu::gemm_custom_b_st(x, K, M, K, pack, &w, p0 * cpu::kNR, std::min(N, p1 * cpu::kNR), ep, y, N);
    });
  } else {
    parallel_for(m_panels, [&](int64_t p0, int64_t p1) {
      const int64_t m0 = p0 * cpu::kMR, m1 = std::min(M, p1 * cpu::kMR);
      cpu::gemm_custom_b_st(x + m0 * K, K, m1 - m0, K, pack, &w, 0, N, ep, y + m0 * N, N);
    });
  }
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

std::shared_ptr<void> alloc_bytes(size_t bytes) {
  void* p = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
  if (!p) fail("out of memory allocating ", bytes, " bytes for a linear weight");
  return std::shared_ptr<void>(p, FreeDeleter{});
}

}  // namespace

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t k) {
  LUMEN_CHECK(k % kQ8BlockSize == 0, "quantize_row_q8_0: length ", k, " is not a multiple of 32");
  for (int64_t b = 0; b < k / kQ8BlockSize; ++b) {
    const float d = quantize_block(x + b * kQ8BlockSize, y[b].qs);
    y[b].d = static_cast<uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
  }
}

LinearWeight make_linear_weight(const Tensor& W, WeightFormat format) {
  LUMEN_CHECK(W.ndim() == 2, "linear weight must be 2-D [out, in], got ", W.describe());
  const DType dt = W.dtype();
  LUMEN_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, "linear weight must be F32, F16 or BF16, got ",
              W.describe());
  const int64_t N = W.dim(0), K = W.dim(1);
  LUMEN_CHECK(N > 0 && K > 0, "linear weight must be non-empty, got ", W.describe());
  LinearWeight lw;
  lw.format = format;
  lw.N = N;
  lw.K = K;
  const size_t n = static_cast<size_t>(N * K);
  switch (format) {
    case WeightFormat::F32: lw.packed = pack_linear(W); return lw;
    case WeightFormat::F16:
    case WeightFormat::BF16: {
      const DType want = format == WeightFormat::F16 ? DType::F16 : DType::BF16;
      if (dt == want) {  // share the storage (an mmapped checkpoint stays mapped, not copied)
        Tensor keep = W;
        const void* p = W.raw();
        lw.data = std::shared_ptr<const void>(p, [keep](const void*) {});
        return lw;
      }
      auto buf = alloc_bytes(n * 2);
      auto* dst = static_cast<uint16_t*>(buf.get());
      const float* src = nullptr;
      Tensor f32;
      if (dt == DType::F32) {
        src = W.data<float>();
      } else {
        f32 = Tensor::zeros({N, K});
        convert_to_f32(W, f32.data<float>());
        src = f32.data<float>();
      }
      parallel_for(N, [&](int64_t r0, int64_t r1) {
        for (size_t i = static_cast<size_t>(r0 * K); i < static_cast<size_t>(r1 * K); ++i)
          dst[i] = format == WeightFormat::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
      });
      lw.data = buf;
      return lw;
    }
    case WeightFormat::Q8_0: {
      LUMEN_CHECK(K % kQ8BlockSize == 0, "q8_0 needs the input size to be a multiple of 32, linear weight ",
                  W.describe(), " has ", K);
      const int64_t nb = K / kQ8BlockSize;
      auto buf = alloc_bytes(static_cast<size_t>(N * nb) * sizeof(BlockQ8_0));
      auto* dst = static_cast<BlockQ8_0*>(buf.get());
      parallel_for(N, [&](int64_t r0, int64_t r1) {
        std::vector<float> row;
        for (int64_t r = r0; r < r1; ++r) {
          const float* src;
          if (dt == DType::F32) {
            src = W.data<float>() + r * K;
          } else {
            row.resize(static_cast<size_t>(K));
            const auto* h = static_cast<const uint16_t*>(W.raw()) + r * K;
            if (dt == DType::F16)
              convert_f16_to_f32(h, row.data(), K);
            else
              convert_bf16_to_f32(h, row.data(), K);
            src = row.data();
          }
          quantize_row_q8_0(src, dst + r * nb, K);
        }
      });
      lw.data = buf;
      return lw;
    }
  }
  fail("make_linear_weight: unknown format");
}

void linear(const float* x, int64_t M, const LinearWeight& w, const float* bias, float* y) {
  LUMEN_CHECK(!w.empty(), "linear: weight was not set up (make_linear_weight)");
  LUMEN_CHECK(M >= 0, "linear: negative row count ", M);
  if (M == 0) return;
  if (w.format == WeightFormat::F32) {
    linear_packed(x, M, w.packed, bias, y);
    return;
  }
  if (M <= kLinearGemvMaxM)
    linear_gemv(x, M, w, bias, y);
  else
    linear_gemm(x, M, w, bias, y);
}

}  // namespace ops
}  // namespace lumen

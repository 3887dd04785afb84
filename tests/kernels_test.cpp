// Fast cpu kernels (lumen::ops) against the scalar oracle (lumen::ref) on random inputs of
// awkward shapes. Tolerances come from float epsilon and the inputs (K, sum |a||b|), not
// from guesses; threads = 1 and 2 must agree bit for bit where the partition cannot change
// the arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/threads.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace lumen {
namespace {

constexpr float kEps = std::numeric_limits<float>::epsilon();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Restores the GEMM backend a test changes. Tests run at the pool's default thread count
// and get single-threaded runs with single_threaded() below rather than set_num_threads():
// growing the pool after it has run work is not safe in core/threads.cpp yet (reported).
class KernelsTest : public ::testing::Test {
 protected:
  void TearDown() override { ops::set_gemm_backend(ops::GemmBackend::Auto); }
};

// The tests of everything built on the packed GEMM (gemm, linear, linear_packed, weight
// formats, attention) run once per micro-kernel set: AVX2 everywhere, AVX-512 where the CPU
// has AVX-512F (skipped elsewhere, so a Zen 3 still tests AVX2).
class KernelsPathTest : public KernelsTest, public ::testing::WithParamInterface<ops::CpuPath> {
 protected:
  void SetUp() override {
    saved_ = ops::cpu_path();  // before any skip: TearDown restores it either way
    if (!ops::cpu_path_supported(GetParam()))
      GTEST_SKIP() << "this CPU cannot run the " << ops::cpu_path_name(GetParam()) << " kernels";
    ops::set_cpu_path(GetParam());
  }
  void TearDown() override {
    ops::set_cpu_path(saved_);
    KernelsTest::TearDown();
  }
  ops::CpuPath saved_ = ops::CpuPath::Avx2;
};

INSTANTIATE_TEST_SUITE_P(CpuPaths, KernelsPathTest, ::testing::Values(ops::CpuPath::Avx2, ops::CpuPath::Avx512),
                         [](const ::testing::TestParamInfo<ops::CpuPath>& info) {
                           return std::string(ops::cpu_path_name(info.param));
                         });

// Runs fn the way threads = 1 would: from inside a pool worker, where every parallel_for
// (and so every op) runs inline on one thread.
template <typename F>
void single_threaded(F&& fn) {
  parallel_for(2, [&](int64_t begin, int64_t) {
    if (begin == 0) fn();
  });
}

// Runs fn once single-threaded and once on the whole pool.
template <typename F>
void on_one_and_all_threads(F&& fn) {
  single_threaded(fn);
  fn();
}

// ---------------------------------------------------------------------------------------
// GEMM

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad;  // extra leading-dimension floats beyond the row width
};

// Runs one case with the current backend and thread count; checks against ref::gemm with
// |err| <= (K + 4) * eps * (|alpha| sum_k |a||b| + |beta c|) per element.
void check_gemm(const GemmCase& c, uint32_t seed, std::vector<float>* out = nullptr) {
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  const int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.N + c.pad;
  auto A = random_vec(static_cast<size_t>(a_rows * lda), seed);
  auto B = random_vec(static_cast<size_t>(b_rows * ldb), seed + 1);
  auto C0 = random_vec(static_cast<size_t>(c.M * ldc), seed + 2);
  std::vector<float> C = C0, R = C0;
  ops::gemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  ref::gemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, R.data(), ldc);
  std::vector<float> absA(A.size()), absB(B.size()), mag(C0.size(), 0.f);
  for (size_t i = 0; i < A.size(); ++i) absA[i] = std::fabs(A[i]);
  for (size_t i = 0; i < B.size(); ++i) absB[i] = std::fabs(B[i]);
  ref::gemm(c.ta, c.tb, c.M, c.N, c.K, 1.f, absA.data(), lda, absB.data(), ldb, 0.f, mag.data(), ldc);
  const std::string what = "gemm ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " M=" +
                           std::to_string(c.M) + " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K);
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      const size_t idx = static_cast<size_t>(i * ldc + j);
      const float bound = static_cast<float>(c.K + 4) * kEps *
                              (std::fabs(c.alpha) * mag[idx] + std::fabs(c.beta * C0[idx])) +
                          1e-30f;
      ASSERT_NEAR(C[idx], R[idx], bound) << what << " at (" << i << ", " << j << ")";
    }
    for (int64_t j = c.N; j < ldc; ++j)  // padding past N is never written
      ASSERT_EQ(C[static_cast<size_t>(i * ldc + j)], C0[static_cast<size_t>(i * ldc + j)]) << what;
  }
  if (out) *out = C;
}

std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> cases;
  const int64_t shapes[][3] = {{1, 1, 1},    {1, 17, 5},    {7, 33, 19},  {6, 16, 256}, {13, 47, 300},
                               {50, 97, 513}, {130, 161, 77}, {2, 600, 40}, {5, 3, 1},    {145, 20, 258},
                               {64, 1030, 9}, {200, 7, 33},   {3, 4100, 5}};  // N > kNC too
  const float ab[][2] = {{1.f, 0.f}, {0.5f, -1.5f}, {-2.f, 1.f}};
  int n = 0;
  for (const auto& s : shapes)
    for (int t = 0; t < 4; ++t) {
      const auto& coef = ab[n % 3];
      cases.push_back({(t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2], coef[0], coef[1], n % 2 ? 3 : 0});
      ++n;
    }
  return cases;
}

TEST_P(KernelsPathTest, GemmMatchesReferenceLumenBackend) {
  ops::set_gemm_backend(ops::GemmBackend::Lumen);
  uint32_t seed = 10;
  on_one_and_all_threads([&] {
    for (const auto& c : gemm_cases()) check_gemm(c, seed += 3);
  });
}

TEST_F(KernelsTest, GemmMatchesReferenceOpenBlasAndAuto) {
  uint32_t seed = 500;
  for (auto backend : {ops::GemmBackend::OpenBlas, ops::GemmBackend::Auto}) {
    ops::set_gemm_backend(backend);
    on_one_and_all_threads([&] {
      for (const auto& c : gemm_cases()) check_gemm(c, seed += 3);
    });
  }
}

TEST_P(KernelsPathTest, GemmBetaZeroIgnoresGarbageInC) {
  ops::set_gemm_backend(ops::GemmBackend::Lumen);
  const int64_t M = 9, N = 21, K = 300;
  auto A = random_vec(M * K, 1), B = random_vec(K * N, 2);
  std::vector<float> C(M * N, std::numeric_limits<float>::quiet_NaN()), R(M * N, 0.f);
  ops::gemm(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N);
  ref::gemm(false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, R.data(), N);
  for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], R[i], (K + 4) * kEps * K) << i;
  // K == 0: C = beta * C
  std::vector<float> D(M * N, 2.f);
  ops::gemm(false, false, M, N, 0, 1.f, A.data(), 1, B.data(), N, 0.5f, D.data(), N);
  for (float v : D) ASSERT_EQ(v, 1.f);
}

TEST_P(KernelsPathTest, GemmSameBitsOnOneAndTwoThreads) {
  ops::set_gemm_backend(ops::GemmBackend::Lumen);
  for (const auto& c : gemm_cases()) {
    if (2.0 * c.M * c.N * c.K < 1e6) continue;  // runs single-threaded either way
    std::vector<float> one, two;
    single_threaded([&] { check_gemm(c, 77, &one); });
    check_gemm(c, 77, &two);
    ASSERT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float))) << c.M << "x" << c.N << "x" << c.K;
  }
}

// Shapes around every tile edge of both kernel sets (AVX2 6 x 16, AVX-512 12 x 32: rows
// 11-13, 23-25; columns one panel short, one panel, a panel over, two panels +- 1; K around
// the kKC = 256 block), every operand layout and alpha/beta.
TEST_P(KernelsPathTest, GemmTileEdges) {
  ops::set_gemm_backend(ops::GemmBackend::Lumen);
  const int64_t ms[] = {1, 5, 6, 7, 11, 12, 13, 18, 23, 24, 25, 37};
  const int64_t ns[] = {15, 16, 17, 31, 32, 33, 48, 49, 65};
  const int64_t ks[] = {1, 3, 255, 256, 257};
  const float ab[][2] = {{1.f, 0.f}, {0.5f, -1.5f}, {-2.f, 1.f}};
  uint32_t seed = 7000;
  int n = 0;
  single_threaded([&] {
    for (int64_t M : ms)
      for (int64_t N : ns)
        for (int64_t K : ks) {
          const auto& coef = ab[n % 3];
          const int t = n % 4;
          check_gemm({(t & 1) != 0, (t & 2) != 0, M, N, K, coef[0], coef[1], n % 2 ? 3 : 0}, seed += 3);
          ++n;
        }
  });
}

TEST_F(KernelsTest, CpuPathSelection) {
  const ops::CpuPath saved = ops::cpu_path();
  EXPECT_TRUE(ops::cpu_path_supported(ops::CpuPath::Avx2));
  ops::set_cpu_path(ops::CpuPath::Avx2);
  EXPECT_EQ(ops::cpu_path(), ops::CpuPath::Avx2);
  if (ops::cpu_path_supported(ops::CpuPath::Avx512)) {
    ops::set_cpu_path(ops::CpuPath::Avx512);
    EXPECT_EQ(ops::cpu_path(), ops::CpuPath::Avx512);
  } else {
    EXPECT_THROW(ops::set_cpu_path(ops::CpuPath::Avx512), Error);
    EXPECT_EQ(ops::cpu_path(), ops::CpuPath::Avx2);
  }
  EXPECT_STREQ(ops::cpu_path_name(ops::CpuPath::Avx2), "avx2");
  EXPECT_STREQ(ops::cpu_path_name(ops::CpuPath::Avx512), "avx512");
  ops::set_cpu_path(saved);
}

// ---------------------------------------------------------------------------------------
// linear / linear_packed

void check_linear_result(const std::vector<float>& y, const std::vector<float>& x, const std::vector<float>& W,
                         const std::vector<float>& bias, int64_t M, int64_t N, int64_t K, const std::string& what) {
  std::vector<float> r(static_cast<size_t>(M * N));
  ref::linear(x.data(), M, K, W.data(), N, bias.empty() ? nullptr : bias.data(), r.data());
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double mag = bias.empty() ? 0 : std::fabs(bias[j]);
      for (int64_t k = 0; k < K; ++k) mag += std::fabs(x[i * K + k] * W[j * K + k]);
      const size_t idx = static_cast<size_t>(i * N + j);
      ASSERT_NEAR(y[idx], r[idx], (K + 4) * kEps * mag + 1e-30) << what << " M=" << M << " N=" << N << " K=" << K
                                                                 << " at (" << i << ", " << j << ")";
    }
}

TEST_P(KernelsPathTest, LinearAndPackedMatchReference) {
  const int64_t shapes[][3] = {{1, 1, 1},  {1, 37, 19}, {2, 64, 256}, {3, 70, 515}, {4, 33, 9},
                               {5, 100, 40}, {7, 17, 260}, {50, 130, 96}, {1, 300, 1030}, {13, 16, 16},
                               {12, 40, 33}, {17, 4200, 20}};
  uint32_t seed = 900;
  on_one_and_all_threads([&] {
    for (const auto& s : shapes) {
      const int64_t M = s[0], N = s[1], K = s[2];
      auto x = random_vec(M * K, ++seed), W = random_vec(N * K, ++seed), bias = random_vec(N, ++seed);
      for (bool with_bias : {true, false}) {
        const std::vector<float> b = with_bias ? bias : std::vector<float>{};
        const float* bp = with_bias ? bias.data() : nullptr;
        std::vector<float> y(static_cast<size_t>(M * N), kInf);
        ops::linear(x.data(), M, K, W.data(), N, bp, y.data());
        check_linear_result(y, x, W, b, M, N, K, "linear");
        PackedWeight pw = ops::pack_linear(W.data(), N, K);
        std::fill(y.begin(), y.end(), kInf);
        ops::linear_packed(x.data(), M, pw, bp, y.data());
        check_linear_result(y, x, W, b, M, N, K, "linear_packed");
      }
    }
  });
}

// linear / linear_packed (weights packed once, as at load time) with and without bias over
// the same tile edges, single-threaded so one call covers the whole edge tile.
TEST_P(KernelsPathTest, LinearPackedTileEdges) {
  const int64_t ms[] = {1, 2, 3, 11, 12, 13, 25, 70};
  const int64_t ns[] = {15, 16, 17, 32, 33, 47};
  const int64_t ks[] = {7, 256, 300};
  uint32_t seed = 8000;
  single_threaded([&] {
    for (int64_t M : ms)
      for (int64_t N : ns)
        for (int64_t K : ks) {
          auto x = random_vec(M * K, ++seed), W = random_vec(N * K, ++seed), bias = random_vec(N, ++seed);
          PackedWeight pw = ops::pack_linear(W.data(), N, K);
          for (bool with_bias : {true, false}) {
            std::vector<float> y(static_cast<size_t>(M * N), kInf);
            ops::linear_packed(x.data(), M, pw, with_bias ? bias.data() : nullptr, y.data());
            check_linear_result(y, x, W, with_bias ? bias : std::vector<float>{}, M, N, K, "linear_packed");
            std::fill(y.begin(), y.end(), kInf);
            ops::linear(x.data(), M, K, W.data(), N, with_bias ? bias.data() : nullptr, y.data());
            check_linear_result(y, x, W, with_bias ? bias : std::vector<float>{}, M, N, K, "linear");
          }
        }
  });
}

TEST_P(KernelsPathTest, PackLinearFromHalfTensors) {
  const int64_t M = 11, N = 45, K = 67;
  auto x = random_vec(M * K, 5), w = random_vec(N * K, 6);
  for (DType dt : {DType::F16, DType::BF16, DType::F32}) {
    Tensor W = Tensor::zeros(dt, {N, K});
    std::vector<float> w_rounded(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      if (dt == DType::F32) {
        W.data<float>()[i] = w_rounded[i] = w[i];
      } else {
        const uint16_t h = dt == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
        static_cast<uint16_t*>(W.raw())[i] = h;
        w_rounded[i] = dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
    }
    PackedWeight pw = ops::pack_linear(W);
    std::vector<float> y(M * N);
    ops::linear_packed(x.data(), M, pw, nullptr, y.data());
    check_linear_result(y, x, w_rounded, {}, M, N, K, std::string("pack_linear ") + dtype_name(dt));
  }
  EXPECT_THROW(ops::pack_linear(Tensor::zeros({3})), Error);
  EXPECT_THROW(ops::pack_linear(Tensor::zeros(DType::I64, {3, 2})), Error);
  EXPECT_THROW(ops::linear_packed(x.data(), 1, PackedWeight{}, nullptr, nullptr), Error);
}

TEST_P(KernelsPathTest, LinearSameBitsOnOneAndTwoThreads) {
  // 300 rows: linear_packed splits rows in pieces claimed on demand (cpu::row_piece_grain).
  const int64_t shapes[][3] = {{1, 1000, 300}, {3, 515, 400}, {50, 400, 300}, {130, 96, 200}, {300, 70, 64}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    auto x = random_vec(M * K, 1), W = random_vec(N * K, 2), b = random_vec(N, 3);
    PackedWeight pw = ops::pack_linear(W.data(), N, K);
    std::vector<float> y[2], yp[2];
    ops::set_gemm_backend(ops::GemmBackend::Lumen);
    for (int t = 0; t < 2; ++t) {
      y[t].resize(M * N);
      yp[t].resize(M * N);
      auto run = [&] {
        ops::linear(x.data(), M, K, W.data(), N, b.data(), y[t].data());
        ops::linear_packed(x.data(), M, pw, b.data(), yp[t].data());
      };
      if (t == 0)
        single_threaded(run);
      else
        run();
    }
    EXPECT_EQ(0, std::memcmp(y[0].data(), y[1].data(), y[0].size() * 4)) << M << "x" << N << "x" << K;
    EXPECT_EQ(0, std::memcmp(yp[0].data(), yp[1].data(), yp[0].size() * 4)) << M << "x" << N << "x" << K;
  }
}

// ---------------------------------------------------------------------------------------
// LinearWeight: f32 / f16 / bf16 / q8_0 storage formats

// W [N, K] as a tensor of `dt` (f16/bf16 rounded from w).
Tensor weight_tensor(const std::vector<float>& w, int64_t N, int64_t K, DType dt) {
  Tensor W = Tensor::zeros(dt, {N, K});
  for (size_t i = 0; i < w.size(); ++i) {
    if (dt == DType::F32)
      W.data<float>()[i] = w[i];
    else
      static_cast<uint16_t*>(W.raw())[i] = dt == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
  }
  return W;
}

// x with each block of 32 rounded the way the q8_0 GEMV quantizes activations: f32
// d = max|x| / 127, q = round_half_even(x / d), x' = d * q.
std::vector<float> q8_activations(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.f;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    for (size_t i = b; i < b + 32; ++i) out[i] = d * std::nearbyint(x[i] * id);
  }
  return out;
}

TEST_F(KernelsTest, QuantizeRowQ8_0MatchesReferenceAndBound) {
  auto x = random_vec(32 * 40, 11, -3.f, 3.f);
  for (int i = 0; i < 32; ++i) x[64 + i] = 0.f;  // an all-zero block: d = 0, q = 0
  x[5] = 1e-30f;                                  // a tiny value next to larger ones
  std::vector<BlockQ8_0> a(40), b(40);
  ops::quantize_row_q8_0(x.data(), a.data(), 32 * 40);
  ref::quantize_row_q8_0(x.data(), b.data(), 32 * 40);
  ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(BlockQ8_0)));
  for (size_t blk = 0; blk < a.size(); ++blk) {
    float amax = 0.f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[blk * 32 + i]));
    const float d = amax / 127.f, dh = f16_to_f32(a[blk].d);
    EXPECT_LE(std::fabs(dh - d), d * 0x1p-11f);
    for (int i = 0; i < 32; ++i) {
      EXPECT_LE(std::abs(a[blk].qs[i]), 127);
      // |w - d_f16 q| <= d / 2 (rounding) + 127 |d - d_f16| (the scale's f16 rounding)
      EXPECT_LE(std::fabs(x[blk * 32 + i] - dh * a[blk].qs[i]), d * (0.5f + 127 * 0x1p-11f) * (1 + 4 * kEps));
    }
  }
  EXPECT_THROW(ops::quantize_row_q8_0(x.data(), a.data(), 33), Error);
}

TEST_P(KernelsPathTest, LinearWeightFormatsMatchReference) {
  // K not a multiple of 8 (f16 tails) only where q8_0 allows it (K % 32 == 0 there).
  // N = 1100: the prefill path splits columns in several pieces claimed on demand.
  const int64_t shapes[][2] = {{37, 64}, {129, 96}, {5, 32}, {70, 320}, {33, 67}, {200, 1030}, {1100, 64}};
  const int64_t rows[] = {1, 2, 3, 4, 7, 65};
  uint32_t seed = 4000;
  for (WeightFormat f : {WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16, WeightFormat::Q8_0}) {
    for (const auto& s : shapes) {
      const int64_t N = s[0], K = s[1];
      if (f == WeightFormat::Q8_0 && K % 32 != 0) continue;
      auto w = random_vec(N * K, ++seed), bias = random_vec(N, ++seed);
      const DType stored = f == WeightFormat::BF16 ? DType::BF16 : f == WeightFormat::F16 ? DType::F16 : DType::F32;
      LinearWeight lw = ops::make_linear_weight(weight_tensor(w, N, K, stored), f);
      ASSERT_EQ(lw.format, f);
      std::vector<float> wd(static_cast<size_t>(N * K));
      ref::dequantize_linear_weight(lw, wd.data());
      for (int64_t M : rows) {
        auto x = random_vec(M * K, ++seed);
        const std::string what = std::string(weight_format_name(f)) + " M=" + std::to_string(M);
        std::vector<float> y1(static_cast<size_t>(M * N), kInf), y2(y1.size(), kInf);
        single_threaded([&] { ops::linear(x.data(), M, lw, bias.data(), y1.data()); });
        ops::linear(x.data(), M, lw, bias.data(), y2.data());
        // Threads split N (or M), never a dot product: same bits.
        ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << what << " N=" << N << " K=" << K;
        if (f == WeightFormat::Q8_0 && M <= kLinearGemvMaxM) {
          // Same quantized weights and the GEMV's activation rounding: float rounding only.
          check_linear_result(y1, q8_activations(x), wd, bias, M, N, K, what + " (gemv, quantized x)");
          // Against the exact product on the dequantized weights: + activation rounding,
          // |x - x'| <= d_x / 2 per element.
          std::vector<float> r(y1.size());
          ref::linear(x.data(), M, lw, bias.data(), r.data());
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double bound = 0, mag = std::fabs(bias[j]);
              for (int64_t b = 0; b < K; b += 32) {
                float amax = 0.f;
                for (int64_t k = b; k < b + 32; ++k) amax = std::max(amax, std::fabs(x[i * K + k]));
                for (int64_t k = b; k < b + 32; ++k) {
                  bound += amax / 127.0 / 2 * std::fabs(wd[j * K + k]);
                  mag += std::fabs(x[i * K + k] * wd[j * K + k]);
                }
              }
              ASSERT_NEAR(y1[i * N + j], r[i * N + j], bound * 1.001 + (K + 4) * kEps * mag) << what;
            }
        } else {
          check_linear_result(y1, x, wd, bias, M, N, K, what);
        }
        if (f == WeightFormat::Q8_0) {
          // Against the f32 weights before quantization: |w - w'| <= d_w (1/2 + 127 * 2^-11),
          // plus the activation rounding on the GEMV path.
          std::vector<float> r(y1.size());
          ref::linear(x.data(), M, K, w.data(), N, bias.data(), r.data());
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double bound = 0;
              for (int64_t b = 0; b < K; b += 32) {
                float wmax = 0.f, xmax = 0.f;
                for (int64_t k = b; k < b + 32; ++k) {
                  wmax = std::max(wmax, std::fabs(w[j * K + k]));
                  xmax = std::max(xmax, std::fabs(x[i * K + k]));
                }
                for (int64_t k = b; k < b + 32; ++k) {
                  bound += std::fabs(x[i * K + k]) * wmax / 127.0 * (0.5 + 127 * 0x1p-11);
                  if (M <= kLinearGemvMaxM) bound += xmax / 127.0 / 2 * std::fabs(wd[j * K + k]);
                }
              }
              ASSERT_NEAR(y1[i * N + j], r[i * N + j], bound * 1.01 + 1e-5) << what << " vs f32 weights";
            }
        }
      }
    }
  }
}

TEST_F(KernelsTest, MakeLinearWeightConversionsAndErrors) {
  const int64_t N = 9, K = 64;
  auto w = random_vec(N * K, 77);
  // Stored f16 (bf16) kept as f16 (bf16): the storage is shared, not copied.
  for (DType dt : {DType::F16, DType::BF16}) {
    Tensor W = weight_tensor(w, N, K, dt);
    LinearWeight lw = ops::make_linear_weight(W, dt == DType::F16 ? WeightFormat::F16 : WeightFormat::BF16);
    EXPECT_EQ(lw.data.get(), W.raw());
    EXPECT_EQ(lw.bytes(), static_cast<size_t>(N * K * 2));
  }
  // Converting from f32 rounds to nearest even, as the scalar converters do.
  LinearWeight h = ops::make_linear_weight(weight_tensor(w, N, K, DType::F32), WeightFormat::F16);
  LinearWeight bh = ops::make_linear_weight(weight_tensor(w, N, K, DType::F32), WeightFormat::BF16);
  for (size_t i = 0; i < w.size(); ++i) {
    ASSERT_EQ(h.half()[i], f32_to_f16(w[i]));
    ASSERT_EQ(bh.half()[i], f32_to_bf16(w[i]));
  }
  // Q8_0 from any stored dtype quantizes the (converted) rows like quantize_row_q8_0.
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    Tensor W = weight_tensor(w, N, K, dt);
    LinearWeight q = ops::make_linear_weight(W, WeightFormat::Q8_0);
    EXPECT_EQ(q.bytes(), static_cast<size_t>(N * K / 32 * 34));
    Tensor f = W.to_f32();
    std::vector<BlockQ8_0> expect(static_cast<size_t>(N * K / 32));
    ref::quantize_row_q8_0(f.data<float>(), expect.data(), N * K);
    ASSERT_EQ(0, std::memcmp(expect.data(), q.q8_0(), expect.size() * sizeof(BlockQ8_0))) << dtype_name(dt);
  }
  EXPECT_THROW(ops::make_linear_weight(Tensor::zeros({4, 33}), WeightFormat::Q8_0), Error);
  EXPECT_THROW(ops::make_linear_weight(Tensor::zeros({3}), WeightFormat::F16), Error);
  EXPECT_THROW(ops::make_linear_weight(Tensor::zeros(DType::I64, {3, 2}), WeightFormat::F32), Error);
  std::vector<float> x(K), y(N);
  EXPECT_THROW(ops::linear(x.data(), 1, LinearWeight{}, nullptr, y.data()), Error);
  WeightFormat f;
  EXPECT_TRUE(weight_format_from_name("Q8_0", &f));
  EXPECT_EQ(f, WeightFormat::Q8_0);
  EXPECT_FALSE(weight_format_from_name("q4_0", &f));
}

// ---------------------------------------------------------------------------------------
// attention

struct AttnCase {
  int64_t Lq, Lk, heads, hd;
  int64_t extra_stride;  // q/k/v/out row strides exceed heads * hd by this much
};

enum class MaskKind { None, Causal, CausalOffset, KeyKeep, Additive, All, FullyMasked, SlidingWindow };

void check_attention(const AttnCase& c, MaskKind kind, uint32_t seed, std::vector<float>* out_copy = nullptr) {
  const int64_t D = c.heads * c.hd, stride = D + c.extra_stride;
  auto q = random_vec(c.Lq * stride, seed, -2.f, 2.f);
  auto k = random_vec(c.Lk * stride, seed + 1, -2.f, 2.f);
  auto v = random_vec(c.Lk * stride, seed + 2);
  std::vector<int64_t> keep(c.Lk, 1);
  std::vector<float> add;
  AttentionMask mask;
  std::mt19937 rng(seed);
  if (kind == MaskKind::Causal || kind == MaskKind::All) mask.causal = true;
  if (kind == MaskKind::CausalOffset) {
    mask.causal = true;
    mask.causal_offset = c.Lk - c.Lq;
  }
  if (kind == MaskKind::SlidingWindow) {  // Mistral: causal over the cache, last 5 keys only
    mask.causal = true;
    mask.causal_offset = c.Lk - c.Lq;
    mask.window = 5;
  }
  if (kind == MaskKind::KeyKeep || kind == MaskKind::All) {
    for (int64_t j = 0; j < c.Lk; ++j) keep[j] = (rng() % 4) != 0;
    keep[0] = 1;
    mask.key_keep = keep.data();
  }
  if (kind == MaskKind::Additive || kind == MaskKind::All) {
    add = random_vec(c.Lq * c.Lk, seed + 3, -3.f, 1.f);
    for (auto& a : add)
      if (rng() % 7 == 0) a = -kInf;
    if (c.Lq > 1)  // one query sees nothing: its output must be zeros
      for (int64_t j = 0; j < c.Lk; ++j) add[c.Lk + j] = -kInf;
    mask.additive = add.data();
  }
  if (kind == MaskKind::FullyMasked) {  // early queries see no key at all
    mask.causal = true;
    mask.causal_offset = -2;
    std::fill(keep.begin(), keep.end(), 1);
    keep[c.Lk - 1] = 0;
    mask.key_keep = keep.data();
  }
  const float scale = 1.f / std::sqrt(static_cast<float>(c.hd));
  std::vector<float> out(c.Lq * stride, 7.f), ref_out(c.Lq * stride, 7.f);
  ops::attention(q.data(), stride, k.data(), stride, v.data(), stride, c.Lq, c.Lk, c.heads, c.hd, scale, mask,
                 out.data(), stride);
  ref::attention(q.data(), stride, k.data(), stride, v.data(), stride, c.Lq, c.Lk, c.heads, c.hd, scale, mask,
                 ref_out.data(), stride);
  // Outputs are convex combinations of v in [-1, 1]; score errors ~ hd * eps * |q||k| relative.
  const float tol = 8.f * kEps * static_cast<float>(c.hd + c.Lk);
  for (int64_t i = 0; i < c.Lq; ++i)
    for (int64_t d = 0; d < stride; ++d) {
      const size_t idx = static_cast<size_t>(i * stride + d);
      if (d >= D) {
        ASSERT_EQ(out[idx], 7.f) << "attention wrote past heads * head_dim";
        continue;
      }
      ASSERT_NEAR(out[idx], ref_out[idx], tol) << "Lq=" << c.Lq << " Lk=" << c.Lk << " heads=" << c.heads
                                               << " hd=" << c.hd << " mask=" << static_cast<int>(kind) << " at ("
                                               << i << ", " << d << ")";
    }
  if (kind == MaskKind::FullyMasked) {
    for (int64_t d = 0; d < D; ++d) ASSERT_EQ(out[d], 0.f);  // query 0 sees keys <= -2: none
  }
  if (out_copy) *out_copy = out;
}

const AttnCase kAttnCases[] = {
    {50, 50, 3, 64, 0},   {1, 70, 2, 64, 5},   {2, 33, 2, 32, 0},   {3, 9, 1, 8, 1},   {77, 77, 2, 64, 3},
    {5, 9, 2, 24, 0},     {130, 130, 2, 40, 7}, {17, 200, 3, 20, 0}, {64, 64, 1, 128, 0}, {4, 300, 2, 64, 0},
    {70, 1, 2, 16, 0},    {150, 150, 4, 16, 2},  // 4 heads x 3 query blocks: K/V packed once per head
};

TEST_P(KernelsPathTest, AttentionMatchesReferenceForEveryMask) {
  uint32_t seed = 40;
  on_one_and_all_threads([&] {
    for (const auto& c : kAttnCases)
      for (MaskKind kind : {MaskKind::None, MaskKind::Causal, MaskKind::CausalOffset, MaskKind::KeyKeep,
                            MaskKind::Additive, MaskKind::All, MaskKind::FullyMasked, MaskKind::SlidingWindow})
        check_attention(c, kind, seed += 5);
  });
}

TEST_P(KernelsPathTest, AttentionEdgeCases) {
  // Lk == 0: every query is fully masked -> zeros.
  std::vector<float> q(2 * 8, 1.f), out(2 * 8, 5.f);
  ops::attention(q.data(), 8, nullptr, 8, nullptr, 8, 2, 0, 1, 8, 1.f, AttentionMask{}, out.data(), 8);
  for (float o : out) EXPECT_EQ(o, 0.f);
  // Every key padded out.
  std::vector<float> k(3 * 8, 1.f), v(3 * 8, 1.f);
  std::vector<int64_t> keep(3, 0);
  AttentionMask m;
  m.key_keep = keep.data();
  std::fill(out.begin(), out.end(), 5.f);
  ops::attention(q.data(), 8, k.data(), 8, v.data(), 8, 2, 3, 1, 8, 1.f, m, out.data(), 8);
  for (float o : out) EXPECT_EQ(o, 0.f);
}

TEST_P(KernelsPathTest, AttentionSameBitsOnOneAndTwoThreads) {
  for (const auto& c : kAttnCases) {
    std::vector<float> one, two;
    single_threaded([&] { check_attention(c, MaskKind::All, 3, &one); });
    check_attention(c, MaskKind::All, 3, &two);
    ASSERT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float))) << c.Lq << "x" << c.Lk;
  }
}

// ---------------------------------------------------------------------------------------
// element-wise

// Inputs spanning the interesting ranges of the activations, plus special values.
std::vector<float> activation_inputs() {
  std::vector<float> x = random_vec(5000, 11, -6.f, 6.f);
  auto wide = random_vec(2000, 12, -30.f, 30.f);
  auto tiny = random_vec(500, 13, -1e-3f, 1e-3f);
  x.insert(x.end(), wide.begin(), wide.end());
  x.insert(x.end(), tiny.begin(), tiny.end());
  for (float s : {0.f, -0.f, 0.5f, -0.5f, 0.70710677f, -0.70710677f, 100.f, -100.f, 1e30f, -1e30f, 88.f, -88.f})
    x.push_back(s);
  x.push_back(1.f);  // odd length: exercises the masked tail
  return x;
}

// |got - want| <= ulps * eps * |want| * amp(x) + abs_floor. amp is the condition number of
// the float evaluation: an exp argument a computed in float carries eps * |a| absolute error
// into e^a, so ops whose exp argument grows with |x| get (1 + |a|).
void expect_close_rel(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& in,
                      float ulps, float (*amp)(float), float abs_floor, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << "(" << in[i] << ")";
      continue;
    }
    if (got[i] == want[i]) continue;  // also covers amp = inf with want = 0
    ASSERT_NEAR(got[i], want[i], ulps * kEps * std::fabs(want[i]) * amp(in[i]) + abs_floor)
        << what << "(" << in[i] << ")";
  }
}

TEST_F(KernelsTest, ActivationsMatchReference) {
  const auto in = activation_inputs();
  struct Op {
    const char* name;
    void (*fast)(float*, int64_t);
    void (*slow)(float*, int64_t);
    float ulps;
    float (*amp)(float);
  };
  // erf-GELU for x < 0 is 0.5 x erfc(|x|/sqrt2) with x^2/2 formed exactly: <= ~6 ulp from
  // the erfc fit and exp, no growth with |x|.
  const Op ops_list[] = {
      {"gelu_erf", ops::gelu_erf, ref::gelu_erf, 12.f, [](float) { return 1.f; }},
      {"gelu_tanh", ops::gelu_tanh, ref::gelu_tanh, 8.f,
       [](float x) { return 1.f + 1.6f * std::fabs(x + 0.044715f * x * x * x); }},
      {"quick_gelu", ops::quick_gelu, ref::quick_gelu, 6.f, [](float x) { return 1.f + 1.702f * std::fabs(x); }},
      {"silu", ops::silu, ref::silu, 6.f, [](float x) { return 1.f + std::fabs(x); }}};
  on_one_and_all_threads([&] {
    for (const Op& op : ops_list) {
      auto got = in, want = in;
      op.fast(got.data(), static_cast<int64_t>(got.size()));
      op.slow(want.data(), static_cast<int64_t>(want.size()));
      expect_close_rel(got, want, in, op.ulps, op.amp, 1e-37f, op.name);
      // Large buffer: the parallel path.
      std::vector<float> big = random_vec(100003, 21, -8.f, 8.f), big_ref = big, big_in = big;
      op.fast(big.data(), static_cast<int64_t>(big.size()));
      op.slow(big_ref.data(), static_cast<int64_t>(big_ref.size()));
      expect_close_rel(big, big_ref, big_in, op.ulps, op.amp, 1e-37f, op.name);
    }
  });
  float nan_in[9];
  std::fill(nan_in, nan_in + 9, std::numeric_limits<float>::quiet_NaN());
  ops::gelu_erf(nan_in, 9);
  for (float v : nan_in) EXPECT_TRUE(std::isnan(v));
}

TEST_F(KernelsTest, VectorExpAndErfAccuracy) {
  float worst_exp = 0, worst_erf = 0;
  for (float x = -87.f; x < 88.f; x += 0.0173f) {
    float in[8], out[8], erf_out[8];
    for (int i = 0; i < 8; ++i) in[i] = x + static_cast<float>(i) * 1.3e-3f;
    _mm256_storeu_ps(out, cpu::exp256(_mm256_loadu_ps(in)));
    for (int i = 0; i < 8; ++i) {
      const double want = std::exp(static_cast<double>(in[i]));
      worst_exp = std::max(worst_exp, static_cast<float>(std::fabs(out[i] - want) / (want * kEps)));
    }
    for (int i = 0; i < 8; ++i) in[i] = in[i] / 8.f;  // erf on [-11, 11]
    _mm256_storeu_ps(erf_out, cpu::erf256(_mm256_loadu_ps(in)));
    for (int i = 0; i < 8; ++i) {
      const double want = std::erf(static_cast<double>(in[i]));
      worst_erf = std::max(worst_erf, static_cast<float>(std::fabs(erf_out[i] - want) / (std::fabs(want) * kEps)));
    }
  }
  EXPECT_LE(worst_exp, 2.f) << "exp error in units of eps * |exp(x)|";
  EXPECT_LE(worst_erf, 4.f) << "erf error in units of eps * |erf(x)|";
  float special[8] = {-kInf, kInf, std::numeric_limits<float>::quiet_NaN(), 100.f, -100.f, 0.f, -88.f, 88.f};
  float out[8];
  _mm256_storeu_ps(out, cpu::exp256(_mm256_loadu_ps(special)));
  EXPECT_EQ(out[0], 0.f);
  EXPECT_EQ(out[1], kInf);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(out[3], kInf);
  EXPECT_EQ(out[4], 0.f);
  EXPECT_EQ(out[5], 1.f);
}

TEST_F(KernelsTest, SoftmaxRowsMatchesReference) {
  for (int64_t cols : {1, 7, 8, 50, 77, 577, 1001}) {
    const int64_t rows = 5;
    auto x = random_vec(rows * cols, static_cast<uint32_t>(cols), -10.f, 10.f);
    for (int64_t j = 0; j < cols; j += 3) x[j] = -kInf;                    // row 0 partly masked
    for (int64_t j = 0; j < cols; ++j) x[2 * cols + j] = -kInf;            // row 2 fully masked
    auto got = x, want = x;
    ops::softmax_rows(got.data(), rows, cols);
    ref::softmax_rows(want.data(), rows, cols);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 4 * kEps * want[i] + kEps * 1e-3f) << "cols=" << cols << " i=" << i;
    for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(got[2 * cols + j], 0.f);
  }
}

TEST_F(KernelsTest, LayerNormMatchesReference) {
  on_one_and_all_threads([&] {
    for (int64_t dim : {1, 7, 8, 33, 768, 1023}) {
      const int64_t rows = 37;
      auto x = random_vec(rows * dim, static_cast<uint32_t>(dim), -3.f, 3.f);
      for (int64_t i = 0; i < dim; ++i) x[i] += 50.f;  // row 0: offset mean (cancellation)
      auto g = random_vec(dim, 2, 0.5f, 1.5f), b = random_vec(dim, 3);
      for (bool affine : {true, false}) {
        std::vector<float> got(x.size()), want(x.size());
        ops::layer_norm(x.data(), rows, dim, affine ? g.data() : nullptr, affine ? b.data() : nullptr, 1e-5f,
                        got.data());
        ref::layer_norm(x.data(), rows, dim, affine ? g.data() : nullptr, affine ? b.data() : nullptr, 1e-5f,
                        want.data());
        // Normalised values are O(1); the float mean carries |mean| * eps * log2(dim)
        // relative to the std into every element.
        for (int64_t r = 0; r < rows; ++r) {
          const float offset_factor = r == 0 ? 50.f / 1.7f : 1.f;
          const float tol = 16.f * kEps * offset_factor * (1.f + std::log2(static_cast<float>(dim)));
          for (int64_t i = 0; i < dim; ++i) {
            const size_t idx = static_cast<size_t>(r * dim + i);
            ASSERT_NEAR(got[idx], want[idx], tol * (1.f + std::fabs(want[idx]))) << "dim=" << dim << " row=" << r;
          }
        }
      }
    }
  });
}

TEST_F(KernelsTest, AddL2NormalizeMatchReference) {
  for (int64_t n : {1, 9, 100, 300001}) {
    auto y = random_vec(n, 1), x = random_vec(n, 2);
    auto got = y, want = y;
    ops::add_inplace(got.data(), x.data(), n);
    ref::add_inplace(want.data(), x.data(), n);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(float)));
  }
  for (int64_t dim : {1, 13, 512, 768}) {
    auto x = random_vec(3 * dim, 4);
    auto got = x, want = x;
    ops::l2_normalize_rows(got.data(), 3, dim);
    ref::l2_normalize_rows(want.data(), 3, dim);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 4 * kEps * (1 + std::sqrt(dim * 1.f)) * std::fabs(want[i]) + 1e-30f);
  }
}

// ---------------------------------------------------------------------------------------
// conversions

TEST_F(KernelsTest, HalfConversionsMatchScalarForEveryBitPattern) {
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(all.size());
  ops::convert_f16_to_f32(all.data(), out.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    const float want = f16_to_f32(all[i]);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(out[i])) << i;
    } else {
      ASSERT_EQ(0, std::memcmp(&out[i], &want, 4)) << "f16 bits " << i;
    }
  }
  ops::convert_bf16_to_f32(all.data(), out.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    const float want = bf16_to_f32(all[i]);
    ASSERT_EQ(0, std::memcmp(&out[i], &want, 4)) << "bf16 bits " << i;
  }
}

TEST_F(KernelsTest, ConvertToF32AndEmbedding) {
  const int64_t rows = 6, dim = 13;
  auto vals = random_vec(rows * dim, 8, -4.f, 4.f);
  Tensor f16 = Tensor::zeros(DType::F16, {rows, dim}), bf16 = Tensor::zeros(DType::BF16, {rows, dim});
  for (size_t i = 0; i < vals.size(); ++i) {
    static_cast<uint16_t*>(f16.raw())[i] = f32_to_f16(vals[i]);
    static_cast<uint16_t*>(bf16.raw())[i] = f32_to_bf16(vals[i]);
  }
  std::vector<float> out(vals.size());
  ops::convert_to_f32(f16, out.data());
  for (size_t i = 0; i < vals.size(); ++i) ASSERT_EQ(out[i], f16_to_f32(static_cast<uint16_t*>(f16.raw())[i]));
  ops::convert_to_f32(bf16, out.data());
  for (size_t i = 0; i < vals.size(); ++i) ASSERT_EQ(out[i], bf16_to_f32(static_cast<uint16_t*>(bf16.raw())[i]));
  EXPECT_THROW(ops::convert_to_f32(Tensor::zeros(DType::I64, {2}), out.data()), Error);

  const int64_t ids[] = {5, 0, 3};
  std::vector<float> emb(3 * dim);
  ops::embedding(bf16, ids, 3, emb.data());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t d = 0; d < dim; ++d)
      ASSERT_EQ(emb[i * dim + d], bf16_to_f32(static_cast<uint16_t*>(bf16.raw())[ids[i] * dim + d]));
  const int64_t bad[] = {6};
  EXPECT_THROW(ops::embedding(f16, bad, 1, emb.data()), Error);
}

}  // namespace
}  // namespace lumen

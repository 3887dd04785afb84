// AVX2/FMA vector math for the cpu kernels: exp, erf/erfc, horizontal reductions, tail masks.
// Internal to src/kernels/cpu. Accuracy (measured against double-precision libm in
// tests/kernels_test.cpp): exp <= 2 ulp, erfc relative error <= ~4 ulp, erf <= 2 ulp.
//
// Coefficients were fitted for lumen with mpmath.chebyfit (Chebyshev least-max fits):
//   exp:  e^r on r in [-ln2/2, ln2/2], degree 6 (fit error 2e-9).
//   erf:  erf(x)/x as a polynomial in u = x^2 on x in [0, 0.5], degree 5 (fit error 1e-11).
//   erfc: erfc(z) * e^(z^2) as a polynomial in t = 1/(1 + z/2) on z in [0.5, 9.4], degree 10
//         (fit error 3e-9 relative); erfc(9.4) is below the float range, so larger z give 0.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace lumen::cpu {

// In-register transpose of an 8x8 block: r[i] holds row i on entry, column i on return
// (the GEMM's B packing and the converted-weight panels).
inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3 and rows 4-7
    __m256 lo = t[4 * h], hi = t[4 * h + 1], lo2 = t[4 * h + 2], hi2 = t[4 * h + 3];
    s[4 * h + 0] = _mm256_shuffle_ps(lo, lo2, _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * h + 1] = _mm256_shuffle_ps(lo, lo2, _MM_SHUFFLE(3, 2, 3, 2));
    s[4 * h + 2] = _mm256_shuffle_ps(hi, hi2, _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * h + 3] = _mm256_shuffle_ps(hi, hi2, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
  }
}

// Lanes [0, n) set (n in 0..8): for masked loads/stores of row tails.
inline __m256i tail_mask(int64_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x. Cody-Waite reduction x = n ln2 + r with |r| <= ln2/2, then 2^n * p(r).
// x > 88.72 gives +inf, x < -87.34 gives 0 (no subnormal results; -inf -> 0), NaN stays NaN.
inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7228317f), lo = _mm256_set1_ps(-87.3365479f);
  // min/max return their second operand when either is NaN, so NaN passes through.
  __m256 xc = _mm256_max_ps(lo, _mm256_min_ps(hi, x));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 split so that n * ln2_hi is exact for |n| <= 128.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(0.001394110843f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.008375126398f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.0416663529f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.1666641551f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5000000047f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.000000038f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // 2^n for n in [-126, 128]: n = 128 (x in (88.38, 88.72]) is built as 2 * 2^127.
  __m256 top = _mm256_cmp_ps(n, _mm256_set1_ps(127.5f), _CMP_GT_OQ);
  n = _mm256_min_ps(n, _mm256_set1_ps(127.f));
  p = _mm256_blendv_ps(p, _mm256_add_ps(p, p), top);
  __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  return y;
}

// erfc(z) for z >= 0.5 (callers select the range): e^(-z^2) * R(t), t = 1 / (1 + z/2), given
// z^2 = z2_hi + z2_lo exactly. e^(-z^2) = e^(-z2_hi) * (1 - z2_lo) to float precision, so the
// rounding of z^2 (whose error is amplified by z^2 in the result) does not leak in.
inline __m256 erfc_tail256(__m256 z, __m256 z2_hi, __m256 z2_lo) {
  const __m256 one = _mm256_set1_ps(1.f);
  // Clamp to the fitted range (erfc(10) underflows to 0 anyway); NaN passes through.
  z = _mm256_min_ps(_mm256_set1_ps(10.f), _mm256_max_ps(_mm256_set1_ps(0.5f), z));
  z2_hi = _mm256_min_ps(_mm256_set1_ps(100.f), z2_hi);
  z2_lo = _mm256_and_ps(z2_lo, _mm256_cmp_ps(z2_hi, _mm256_set1_ps(100.f), _CMP_LT_OQ));
  __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), one));
  __m256 r = _mm256_set1_ps(0.00821745791f);
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.1161470861f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.4441179655f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.7300658323f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.5037087069f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.1610223136f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.2547664801f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.2301304665f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.2843642788f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.2819167978f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(6.121642483e-6f));
  __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), z2_hi));
  return _mm256_mul_ps(_mm256_mul_ps(e, r), _mm256_sub_ps(one, z2_lo));
}

// erfc(z) for z >= 0.5.
inline __m256 erfc_tail256(__m256 z) {
  __m256 z2 = _mm256_mul_ps(z, z);
  return erfc_tail256(z, z2, _mm256_fmsub_ps(z, z, z2));
}

// erf(x) / x for |x| <= 0.5, as a polynomial in x^2.
inline __m256 erf_small_over_x256(__m256 x) {
  __m256 u = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-0.0007694534279f);
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(0.005200413724f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-0.02686314303f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(0.1128377401f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-0.3761263853f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(1.128379167f));
  return p;
}

// 1 + erf(x / sqrt 2), the GELU factor: accurate in relative terms on both sides (for x < 0
// it is erfc(|x| / sqrt 2), computed directly rather than as 1 - erf). z^2 = x^2 / 2 is formed
// exactly from x, not from the rounded z.
inline __m256 one_plus_erf_scaled256(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f), half = _mm256_set1_ps(0.5f);
  __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
  __m256 az = _mm256_andnot_ps(sign, z);
  __m256 small = _mm256_fmadd_ps(z, erf_small_over_x256(z), _mm256_set1_ps(1.f));
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 x2_lo = _mm256_fmsub_ps(x, x, x2);
  __m256 tail = erfc_tail256(az, _mm256_mul_ps(half, x2), _mm256_mul_ps(half, x2_lo));  // erfc(|z|)
  // z >= 0.5: 2 - erfc(z); z <= -0.5: erfc(-z).
  __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
  __m256 big = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.f), tail), tail, neg);
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(az, half, _CMP_LE_OQ));
}

inline __m256 erf256(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 ax = _mm256_andnot_ps(sign, x);
  __m256 small = _mm256_mul_ps(x, erf_small_over_x256(x));
  __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.f), erfc_tail256(ax));
  big = _mm256_or_ps(big, _mm256_and_ps(sign, x));  // erf is odd
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.5f), _CMP_LE_OQ));
}

// 1 / (1 + e^-x), written so that large |x| saturates to 0 or 1 without NaN.
inline __m256 sigmoid256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

}  // namespace lumen::cpu

namespace lumen::cpu {

// In-place softmax of one row x[0, n). A row whose maximum is -inf (every entry masked)
// becomes all zeros, matching ops.h's attention contract.
inline void softmax_row(float* x, int64_t n) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  const int64_t n8 = n - n % 8;
  const __m256i tail = tail_mask(n % 8);
  __m256 mx = ninf;
  for (int64_t i = 0; i < n8; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
  if (n8 < n) mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + n8, tail), _mm256_castsi256_ps(tail)));
  const float m = hmax(mx);
  if (m == -__builtin_inff()) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.f;
    return;
  }
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < n8; i += 8) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (n8 < n) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_maskload_ps(x + n8, tail), mv));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
    _mm256_maskstore_ps(x + n8, tail, e);
    sum = _mm256_add_ps(sum, e);
  }
  const __m256 inv = _mm256_set1_ps(1.f / hsum(sum));
  for (int64_t i = 0; i < n8; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  if (n8 < n) _mm256_maskstore_ps(x + n8, tail, _mm256_mul_ps(_mm256_maskload_ps(x + n8, tail), inv));
}

}  // namespace lumen::cpu

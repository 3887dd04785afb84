// Scaled dot-product attention on the packed GEMM engine.
//
// Per head: pack K^T and V into GEMM panels once, then for each block of up to kQueryBlock
// queries compute S = scale * Q K^T with the GEMM micro-kernel, apply the masks and a
// vectorised softmax row by row, and O = P V. Tasks are heads; with fewer heads than 2x the
// threads they are (head, query block) pairs that pack their own K/V, so one head can
// spread over the threads. Under a causal mask a block only uses keys up to the last one its
// last query may see (the packed panels are sliced, so results do not depend on the split).
// Few queries (decode, Lq <= kDirectMaxQueries) skip packing: dot products and axpys straight
// from the K/V rows, since packing K would cost as much as using it once.
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "core/threads.h"
#include "kernels/cpu/gemm_kernel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ops.h"

namespace lumen::ops {
namespace {

constexpr int64_t kQueryBlock = 64;
constexpr int64_t kDirectMaxQueries = 3;

// Keys [0, n) that query i may see at most (causal bound), for i in a block.
int64_t visible_keys(const AttentionMask& mask, int64_t last_query, int64_t Lk) {
  if (!mask.causal) return Lk;
  return std::clamp<int64_t>(last_query + mask.causal_offset + 1, 0, Lk);
}

// Scores row s[0, n) of query i (already scaled): adds the additive mask and sets invisible
// keys to -inf, then softmax (an all -inf row becomes zeros).
void mask_and_softmax(float* s, int64_t n, int64_t i, int64_t Lk, const AttentionMask& mask) {
  const float ninf = -std::numeric_limits<float>::infinity();
  if (mask.additive) {
    const float* add = mask.additive + i * Lk;
    for (int64_t j = 0; j < n; ++j) s[j] += add[j];
  }
  if (mask.causal)
    for (int64_t j = std::max<int64_t>(0, i + mask.causal_offset + 1); j < n; ++j) s[j] = ninf;
  if (mask.key_keep)
    for (int64_t j = 0; j < n; ++j)
      if (!mask.key_keep[j]) s[j] = ninf;
  if (mask.window > 0)
    for (int64_t j = 0; j < n && j <= i + mask.causal_offset - mask.window; ++j) s[j] = ninf;
  cpu::softmax_row(s, n);
}

// dot(a, b) over d floats (head_dim).
inline float dot(const float* a, const float* b, int64_t d) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i < d; i += 8) {
    const __m256i m = cpu::tail_mask(d - i);
    acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), acc0);
  }
  return cpu::hsum(_mm256_add_ps(acc0, acc1));
}

struct Args {
  const float *q, *k, *v;
  int64_t q_stride, k_stride, v_stride, Lq, Lk, head_dim;
  float scale;
  const AttentionMask* mask;
  float* out;
  int64_t out_stride;
};

// Queries [i0, i0 + qn) of head h, one at a time, without packing.
void attend_direct(const Args& a, int64_t h, int64_t i0, int64_t qn) {
  const int64_t hd = a.head_dim;
  float* s = cpu::scratch(2, static_cast<size_t>(a.Lk));
  for (int64_t i = i0; i < i0 + qn; ++i) {
    const float* qi = a.q + i * a.q_stride + h * hd;
    const int64_t n = visible_keys(*a.mask, i, a.Lk);
    for (int64_t j = 0; j < n; ++j) s[j] = dot(qi, a.k + j * a.k_stride + h * hd, hd) * a.scale;
    mask_and_softmax(s, n, i, a.Lk, *a.mask);
    float* oi = a.out + i * a.out_stride + h * hd;
    // o = sum_j p_j v_j, 32 output floats (4 registers) at a time.
    for (int64_t d0 = 0; d0 < hd; d0 += 32) {
      const int64_t dn = std::min<int64_t>(32, hd - d0);
      __m256i m[4];
      for (int c = 0; c < 4; ++c) m[c] = cpu::tail_mask(dn - 8 * c);
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t j = 0; j < n; ++j) {
        if (s[j] == 0.f) continue;
        const __m256 p = _mm256_set1_ps(s[j]);
        const float* vj = a.v + j * a.v_stride + h * hd + d0;
        for (int c = 0; c < 4; ++c) acc[c] = _mm256_fmadd_ps(p, _mm256_maskload_ps(vj + 8 * c, m[c]), acc[c]);
      }
      for (int c = 0; c < 4; ++c) _mm256_maskstore_ps(oi + d0 + 8 * c, m[c], acc[c]);
    }
  }
}

// K_h^T and V_h of head h for keys [0, n), packed for the GEMM.
struct PackedHead {
  const float* kt;  // op(B) [head_dim, n]
  const float* v;   // op(B) [n, head_dim]
  int64_t n;
};

PackedHead pack_head(const Args& a, int64_t h, int64_t n) {
  const int64_t hd = a.head_dim;
  float* kp = cpu::scratch(3, static_cast<size_t>(cpu::packed_b_floats(hd, n)));
  float* vp = cpu::scratch(4, static_cast<size_t>(cpu::packed_b_floats(n, hd)));
  cpu::pack_b(true, a.k + h * hd, a.k_stride, hd, n, kp);
  cpu::pack_b(false, a.v + h * hd, a.v_stride, n, hd, vp);
  return {kp, vp, n};
}

// Queries [i0, i0 + qn) of head h through the packed GEMM, with the head's K/V packed for at
// least the keys these queries may see.
void attend_block(const Args& a, int64_t h, int64_t i0, int64_t qn, const PackedHead& kv) {
  const int64_t hd = a.head_dim;
  float* out = a.out + i0 * a.out_stride + h * hd;
  const int64_t n = visible_keys(*a.mask, i0 + qn - 1, a.Lk);  // <= kv.n
  if (n == 0) {  // no key visible to any query of the block
    for (int64_t r = 0; r < qn; ++r) std::fill(out + r * a.out_stride, out + r * a.out_stride + hd, 0.f);
    return;
  }
  float* s = cpu::scratch(2, static_cast<size_t>(qn * n));
  // S [qn, n] = scale * Q_h [qn, hd] @ K_h^T [hd, n]
  cpu::gemm_packed_st(false, a.q + i0 * a.q_stride + h * hd, a.q_stride, qn, hd, kv.kt, hd, kv.n, 0, n,
                      cpu::Epilogue{a.scale, 0.f, nullptr}, s, n);
  for (int64_t r = 0; r < qn; ++r) mask_and_softmax(s + r * n, n, i0 + r, a.Lk, *a.mask);
  // O [qn, hd] = P [qn, n] @ V_h [n, hd]
  cpu::gemm_packed_st(false, s, n, qn, n, kv.v, kv.n, hd, 0, hd, cpu::Epilogue{}, out, a.out_stride);
}

}  // namespace

void attention(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
               int64_t Lq, int64_t Lk, int64_t heads, int64_t head_dim, float scale, const AttentionMask& mask,
               float* out, int64_t out_stride) {
  LUMEN_CHECK(Lq >= 0 && Lk >= 0 && heads >= 0 && head_dim >= 0, "attention: negative size Lq=", Lq, " Lk=", Lk,
              " heads=", heads, " head_dim=", head_dim);
  if (Lq == 0 || heads == 0 || head_dim == 0) return;
  const Args args{q, k, v, q_stride, k_stride, v_stride, Lq, Lk, head_dim, scale, &mask, out, out_stride};
  if (Lq <= kDirectMaxQueries) {
    parallel_for(heads * Lq, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) attend_direct(args, t / Lq, t % Lq, 1);
    });
    return;
  }
  const int64_t blocks = (Lq + kQueryBlock - 1) / kQueryBlock;
  if (heads >= 2 * num_threads() || blocks == 1) {
    // One task per head: K/V packed once and shared by all its query blocks.
    // Heads claimed one at a time, so a descheduled thread holds up one head, not half.
    parallel_for_dynamic(heads, 1, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) {
        const PackedHead kv = pack_head(args, h, visible_keys(mask, Lq - 1, Lk));
        for (int64_t i0 = 0; i0 < Lq; i0 += kQueryBlock)
          attend_block(args, h, i0, std::min(kQueryBlock, Lq - i0), kv);
      }
    });
    return;
  }
  // Few heads: one task per (head, query block), each packing the keys its block sees.
  parallel_for(heads * blocks, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t h = t / blocks, i0 = (t % blocks) * kQueryBlock, qn = std::min(kQueryBlock, Lq - i0);
      const PackedHead kv = pack_head(args, h, visible_keys(mask, i0 + qn - 1, Lk));
      attend_block(args, h, i0, qn, kv);
    }
  });
}

}  // namespace lumen::ops

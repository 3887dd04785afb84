// Memory read bandwidth, STREAM-style ("sum" of a buffer much larger than the caches): the
// denominator for memory-bound kernels (a decode GEMV reads every weight byte once per token).
// Shared by bench/membw_bench.cpp and bench/kernels_bench.cpp.
#pragma once
#include <immintrin.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/threads.h"

namespace lumen::bench {

// Reads [p, p + bytes) with AVX2 loads (8 independent add chains, so the adds never limit it).
inline float read_sum(const char* p, size_t bytes) {
  __m256 a[8];
  for (auto& v : a) v = _mm256_setzero_ps();
  const float* f = reinterpret_cast<const float*>(p);
  const size_t n = bytes / sizeof(float);
  for (size_t i = 0; i + 64 <= n; i += 64)
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(f + i + 8 * j));
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  float out[8];
  _mm256_storeu_ps(out, a[0]);
  return out[0] + out[7];
}

// As read_sum, with [p, p + bytes) cut into `streams` parts read side by side (one 64-byte
// line of each per step), the access pattern of a GEMV over several rows of W at once.
// Several streams keep more cache misses in flight than one.
inline float read_sum_streams(const char* p, size_t bytes, int streams) {
  if (streams <= 1) return read_sum(p, bytes);
  const size_t part = bytes / static_cast<size_t>(streams) / 64 * 64;
  __m256 a[8];
  for (auto& v : a) v = _mm256_setzero_ps();
  for (size_t off = 0; off < part; off += 64)
    for (int s = 0; s < streams; ++s) {
      const float* f = reinterpret_cast<const float*>(p + static_cast<size_t>(s) * part + off);
      a[(2 * s) % 8] = _mm256_add_ps(a[(2 * s) % 8], _mm256_load_ps(f));
      a[(2 * s + 1) % 8] = _mm256_add_ps(a[(2 * s + 1) % 8], _mm256_load_ps(f + 8));
    }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  float out[8];
  _mm256_storeu_ps(out, a[0]);
  return out[0] + out[7] + read_sum(p + part * static_cast<size_t>(streams), bytes - part * static_cast<size_t>(streams));
}

// A buffer of `bytes` (64-byte aligned, every page touched so it is really backed).
struct Buffer {
  char* p = nullptr;
  size_t n = 0;
  explicit Buffer(size_t bytes) : n(bytes / 4096 * 4096) {
    p = static_cast<char*>(std::aligned_alloc(4096, n));
    for (size_t i = 0; i < n; i += 64) std::memset(p + i, static_cast<int>(i / 64 % 251), 64);
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Read bandwidth in GB/s (1e9 bytes) from wall time and from CPU time (the slowest thread's
// own CPU seconds: on a machine shared with other jobs, time spent descheduled is left out,
// so it is closer to what an idle machine gives).
struct Bandwidth {
  double wall = 0, cpu = 0;
};

// Best of `reps` reads of `buf` with `threads` threads of lumen's pool, each reading a
// contiguous share (threads <= num_threads()) as `streams` side-by-side streams.
inline Bandwidth read_bandwidth(const Buffer& buf, int threads, int reps = 5, int streams = 1) {
  double best_wall = 1e30, best_cpu = 1e30;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::atomic<double> max_cpu{0};
    auto read_part = [&](int64_t c) {
      const size_t pages = buf.n / 4096, a = pages * c / threads * 4096, b = pages * (c + 1) / threads * 4096;
      const double c0 = thread_cpu_seconds();
      sink = sink + read_sum_streams(buf.p + a, b - a, streams);
      const double dt = thread_cpu_seconds() - c0;
      double cur = max_cpu.load();
      while (dt > cur && !max_cpu.compare_exchange_weak(cur, dt)) {
      }
    };
    auto t0 = std::chrono::steady_clock::now();
    if (threads <= 1)
      read_part(0);
    else
      parallel_for(threads, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) read_part(c);
      });
    best_wall = std::min(best_wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    best_cpu = std::min(best_cpu, max_cpu.load());
  }
  return {static_cast<double>(buf.n) / best_wall * 1e-9, static_cast<double>(buf.n) / best_cpu * 1e-9};
}

// The best of 1, 4 and 8 streams: the bandwidth a kernel can be held to.
inline Bandwidth best_read_bandwidth(const Buffer& buf, int threads, int reps = 5) {
  Bandwidth best;
  for (int streams : {1, 4, 8}) {
    const Bandwidth b = read_bandwidth(buf, threads, reps, streams);
    best.wall = std::max(best.wall, b.wall);
    best.cpu = std::max(best.cpu, b.cpu);
  }
  return best;
}

}  // namespace lumen::bench

#include "apps/cli/bench_weights.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "core/threads.h"

namespace lumen::cli {

double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double peak_rss_gib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is KiB
}

void fill_random(Tensor& t, Init init, uint64_t seed) {
  const Shape& s = t.shape();
  int64_t fan_in = 1;
  for (size_t i = 1; i < s.size(); ++i) fan_in *= s[i];
  const float scale = init == Init::Matrix ? 1.7f / std::sqrt(static_cast<float>(fan_in))
                      : init == Init::NormWeight ? 0.1f
                                                 : 0.05f;
  const float base = init == Init::NormWeight ? 1.f : 0.f;
  float* p = t.data<float>();
  const int64_t n = t.numel(), block = 1 << 16;
  parallel_for((n + block - 1) / block, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(b) * 0xBF58476D1CE4E5B9ull + 1;
      for (int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const float u = static_cast<float>(x >> 40) * (1.f / 16777216.f);  // [0, 1)
        p[i] = base + scale * (2.f * u - 1.f);
      }
    }
  });
}

void RandomWeightsVisitor::param(const std::string&, const Shape& shape, Init init, Tensor* slot) {
  *slot = Tensor::zeros(shape);
  fill_random(*slot, init, ++seed_);
}

void RandomWeightsVisitor::scalar(const std::string& name, const Shape& shape, float, Tensor* slot) {
  param(name, shape, Init::Vector, slot);
}

void RandomWeightsVisitor::linear_weight(const std::string& name, const Shape& shape, Init init,
                                         LinearWeight* slot) {
  Tensor t;
  param(name, shape, init, &t);
  const bool q8_ok = format_ != WeightFormat::Q8_0 || shape[1] % kQ8BlockSize == 0;
  *slot = ops::make_linear_weight(t, q8_ok ? format_ : WeightFormat::F16);
  bytes_ += slot->bytes();
}

}  // namespace lumen::cli

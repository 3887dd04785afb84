// Helpers the real-size benchmarks share (bench llava, bench blip2): random weights built in
// memory straight into a linear weight format (no checkpoint on disk), wall/CPU clocks and peak RSS.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "blocks/params.h"

namespace lumen::cli {

using bench_clock = std::chrono::steady_clock;

inline double seconds_since(bench_clock::time_point t0) {
  return std::chrono::duration<double>(bench_clock::now() - t0).count();
}
double cpu_seconds();   // CPU time of all this process's threads so far
double peak_rss_gib();  // the process's peak resident set

// Fills a tensor with uniform values of the init scheme's scale, fast (xorshift per row block):
// the values do not matter for timing, only that they are finite and not all equal.
void fill_random(Tensor& t, Init init, uint64_t seed);

// Random parameters straight into the chosen linear format: one layer's f32 at a time. `has`
// answers the model's questions about optional tensors (which layout to build).
class RandomWeightsVisitor : public ParamVisitor {
 public:
  RandomWeightsVisitor(WeightFormat f, std::function<bool(const std::string&)> has)
      : format_(f), has_(std::move(has)) {}
  void param(const std::string&, const Shape& shape, Init init, Tensor* slot) override;
  void scalar(const std::string& name, const Shape& shape, float, Tensor* slot) override;
  bool has(const std::string& name) const override { return has_(name); }
  void linear_weight(const std::string& name, const Shape& shape, Init init, LinearWeight* slot) override;
  size_t linear_bytes() const { return bytes_; }

 private:
  WeightFormat format_;
  std::function<bool(const std::string&)> has_;
  uint64_t seed_ = 0;
  size_t bytes_ = 0;
};

}  // namespace lumen::cli

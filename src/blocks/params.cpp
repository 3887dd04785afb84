#include "blocks/params.h"

#include <cmath>

namespace lumen {

void RandomInitVisitor::param(const std::string& name, const Shape& shape, Init init, Tensor* slot) {
  Tensor t = Tensor::zeros(shape);
  float* p = t.data<float>();
  int64_t n = t.numel();
  std::normal_distribution<float> normal(0.f, 1.f);
  double scale = 1.0, offset = 0.0;
  switch (init) {
    case Init::Matrix: {
      int64_t fan_in = shape.size() > 1 ? n / shape[0] : n;
      scale = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(1, fan_in)));
      break;
    }
    case Init::Vector: scale = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(1, n))); break;
    case Init::Bias: scale = 0.05; break;
    case Init::NormWeight: scale = 0.1; offset = 1.0; break;
    case Init::NormBias: scale = 0.1; break;
    case Init::Zero: scale = 0.0; break;
  }
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(offset + scale * normal(rng_));
  tensors_.emplace_back(name, t);
  *slot = t;
}

void RandomInitVisitor::scalar(const std::string& name, const Shape& shape, float init_value, Tensor* slot) {
  Tensor t = Tensor::zeros(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = init_value;
  tensors_.emplace_back(name, t);
  *slot = t;
}

}  // namespace lumen

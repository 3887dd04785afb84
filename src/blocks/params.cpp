#include "blocks/params.h"

#include <cctype>
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

void ParamVisitor::linear_weight(const std::string& name, const Shape& shape, Init init, LinearWeight* slot) {
  Tensor t;
  param(name, shape, init, &t);
  *slot = ops::make_linear_weight(t, WeightFormat::F32);
}

WeightFormat resolve_linear_format(LinearFormat f, DType stored, int64_t in_features) {
  const WeightFormat as_stored = stored == DType::F16    ? WeightFormat::F16
                                 : stored == DType::BF16 ? WeightFormat::BF16
                                                         : WeightFormat::F32;
  switch (f) {
    case LinearFormat::F32: return WeightFormat::F32;
    case LinearFormat::F16: return WeightFormat::F16;
    case LinearFormat::BF16: return WeightFormat::BF16;
    case LinearFormat::Q8_0: return in_features % kQ8BlockSize == 0 ? WeightFormat::Q8_0 : as_stored;
    case LinearFormat::Stored: return as_stored;
  }
  return WeightFormat::F32;
}

bool linear_format_from_name(const std::string& name, LinearFormat* out) {
  std::string n = name;
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "stored") {
    *out = LinearFormat::Stored;
    return true;
  }
  WeightFormat w;
  if (!weight_format_from_name(n, &w)) return false;
  switch (w) {
    case WeightFormat::F32: *out = LinearFormat::F32; break;
    case WeightFormat::F16: *out = LinearFormat::F16; break;
    case WeightFormat::BF16: *out = LinearFormat::BF16; break;
    case WeightFormat::Q8_0: *out = LinearFormat::Q8_0; break;
  }
  return true;
}

void LoadVisitor::linear_weight(const std::string& name, const Shape& shape, Init, LinearWeight* slot) {
  Tensor t = store_.get(name, shape);  // borrowed, in the stored dtype
  const DType dt = t.dtype();
  LUMEN_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, store_.source(), ": tensor '", name,
              "' is ", dtype_name(dt), "; a linear weight must be F32, F16 or BF16");
  *slot = ops::make_linear_weight(t, resolve_linear_format(options_.linear, dt, shape.size() == 2 ? shape[1] : 0));
}

}  // namespace lumen

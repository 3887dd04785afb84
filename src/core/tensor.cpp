#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/half.h"

namespace lumen {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

bool dtype_from_name(const std::string& name, DType* out) {
  static const struct { const char* name; DType t; } kNames[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32}, {"U8", DType::U8},
  };
  for (const auto& n : kNames) {
    if (name == n.name) {
      *out = n.t;
      return true;
    }
  }
  return false;
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  for (int64_t d : shape) LUMEN_CHECK(d >= 0, "tensor shape ", shape_str(shape), " has a negative dimension");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  size_t bytes = t.nbytes();
  // Round up to 64 bytes so SIMD kernels may read a full vector past the end of small tensors.
  size_t alloc = (bytes + 64 + 63) & ~size_t{63};
  void* p = ::operator new(alloc, std::align_val_t{64});
  std::memset(p, 0, alloc);
  t.data_ = p;
  t.owner_ = std::shared_ptr<const void>(p, [](const void* q) {
    ::operator delete(const_cast<void*>(q), std::align_val_t{64});
  });
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape) {
  LUMEN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values for shape ", shape_str(shape));
  Tensor t = zeros(DType::F32, std::move(shape));
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_ids(const std::vector<int64_t>& values, Shape shape) {
  LUMEN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_ids: ", values.size(),
              " values for shape ", shape_str(shape));
  Tensor t = zeros(DType::I64, std::move(shape));
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(int64_t));
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = const_cast<void*>(data);
  t.owner_ = std::move(owner);
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  LUMEN_CHECK(j >= 0 && j < n, "tensor ", describe(), " has no dimension ", i);
  return shape_[static_cast<size_t>(j)];
}

Tensor Tensor::reshape(Shape shape) const {
  LUMEN_CHECK(shape_numel(shape) == numel(), "cannot reshape ", describe(), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  LUMEN_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice [", begin, ", ", end,
              ") out of range for ", describe());
  Tensor t = *this;
  int64_t row = shape_[0] ? numel() / shape_[0] : 0;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + static_cast<size_t>(begin * row) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::to_f32() const {
  Tensor out = zeros(DType::F32, shape_);
  float* o = static_cast<float*>(out.data_);
  int64_t n = numel();
  switch (dtype_) {
    case DType::F32: if (n) std::memcpy(o, data_, nbytes()); break;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(data_);
      for (int64_t i = 0; i < n; ++i) o[i] = f16_to_f32(s[i]);
      break;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(data_);
      for (int64_t i = 0; i < n; ++i) o[i] = bf16_to_f32(s[i]);
      break;
    }
    case DType::I64: {
      const auto* s = static_cast<const int64_t*>(data_);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(s[i]);
      break;
    }
    case DType::I32: {
      const auto* s = static_cast<const int32_t*>(data_);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(s[i]);
      break;
    }
    case DType::U8: {
      const auto* s = static_cast<const uint8_t*>(data_);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(s[i]);
      break;
    }
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = zeros(dtype_, shape_);
  if (numel()) std::memcpy(out.data_, data_, nbytes());
  return out;
}

std::string Tensor::describe() const { return std::string(dtype_name(dtype_)) + shape_str(shape_); }

void Tensor::check_dtype(DType want) const {
  LUMEN_CHECK(dtype_ == want, "tensor ", describe(), " accessed as ", dtype_name(want));
}

}  // namespace lumen

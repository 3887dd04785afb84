// A Tensor is a contiguous, row-major block of one dtype with a shape. Storage is shared:
// owned heap memory or a borrowed range of an mmapped checkpoint kept alive by `owner_`.
// Quantized/half types are storage types; kernels compute in f32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace lumen {

enum class DType { F32, F16, BF16, I64, I32, U8 };

using Shape = std::vector<int64_t>;

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "F16", ...
// Parses a safetensors dtype name; returns false for names lumen does not store.
bool dtype_from_name(const std::string& name, DType* out);

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3, 224, 224]"

template <typename T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };

class Tensor {
 public:
  Tensor() = default;

  // Owned, zero-initialised storage.
  static Tensor zeros(DType dtype, Shape shape);
  static Tensor zeros(Shape shape) { return zeros(DType::F32, std::move(shape)); }
  // Owned copy of `values` (f32).
  static Tensor from_vector(const std::vector<float>& values, Shape shape);
  static Tensor from_ids(const std::vector<int64_t>& values, Shape shape);
  // Borrowed view on memory kept alive by `owner` (e.g. an mmapped file).
  static Tensor borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);

  bool defined() const { return data_ != nullptr || shape_numel(shape_) == 0; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  template <typename T>
  T* data() {
    check_dtype(dtype_of<T>::value);
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    check_dtype(dtype_of<T>::value);
    return static_cast<const T*>(data_);
  }
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  // Same storage, new shape (same numel).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) of the first dimension, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // An owned f32 copy (converting from f16/bf16/f32/integers).
  Tensor to_f32() const;
  // An owned copy of the same dtype.
  Tensor clone() const;

  std::string describe() const;  // "F32[2, 3]"

 private:
  void check_dtype(DType want) const;

  DType dtype_ = DType::F32;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace lumen

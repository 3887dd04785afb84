// NumPy .npy (format version 1.0) writer for f32/i64 tensors: `lumen embed --npy`.
#pragma once
#include <string>

#include "core/tensor.h"

namespace lumen {

std::string serialize_npy(const Tensor& t);
void write_npy(const std::string& path, const Tensor& t);  // atomic replace

}  // namespace lumen

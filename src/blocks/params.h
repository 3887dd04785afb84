// One declaration of a block's parameters serves loading, random init (make-tiny) and listing
// (gemma.cpp's ForEachTensor idea). A block's `visit(ParamScope)` names every tensor it owns
// with its checkpoint name and shape; the visitor decides what to do with it.
#pragma once
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "formats/safetensors.h"
#include "kernels/ops.h"

namespace lumen {

// How make-tiny draws a parameter (the fixture generator's scheme, FORMAT.md section 4).
enum class Init {
  Matrix,     // N(0,1)/sqrt(fan_in), fan_in = product of dims after the first
  Vector,     // N(0,1)/sqrt(numel)
  Bias,       // 0.05 N(0,1)
  NormWeight, // 1 + 0.1 N(0,1)
  NormBias,   // 0.1 N(0,1)
  Zero,
};

class ParamVisitor {
 public:
  virtual ~ParamVisitor() = default;
  // `name` is the full checkpoint name; fills *slot with an f32 tensor of `shape`.
  virtual void param(const std::string& name, const Shape& shape, Init init, Tensor* slot) = 0;
  // Scalars such as logit_scale: value used by make-tiny when no tensor exists to copy.
  virtual void scalar(const std::string& name, const Shape& shape, float init_value, Tensor* slot) = 0;
  // Whether the checkpoint has `name` (loaders answer from the file; make-tiny says true).
  virtual bool has(const std::string& name) const = 0;
  // A linear layer's weight [out, in]: the visitor picks its storage format. The default goes
  // through param() and packs f32 (so make-tiny and listing visitors need nothing new).
  virtual void linear_weight(const std::string& name, const Shape& shape, Init init, LinearWeight* slot);
};

// A prefix into the checkpoint's namespace: scope.sub("encoder").sub("layers.0")("fc1.weight", ...).
class ParamScope {
 public:
  ParamScope(ParamVisitor& v, std::string prefix = "") : v_(&v), prefix_(std::move(prefix)) {}
  ParamScope sub(const std::string& name) const { return ParamScope(*v_, prefix_ + name + "."); }
  void operator()(const std::string& name, const Shape& shape, Init init, Tensor* slot) const {
    v_->param(prefix_ + name, shape, init, slot);
  }
  void scalar(const std::string& name, const Shape& shape, float init_value, Tensor* slot) const {
    v_->scalar(prefix_ + name, shape, init_value, slot);
  }
  void linear(const std::string& name, const Shape& shape, Init init, LinearWeight* slot) const {
    v_->linear_weight(prefix_ + name, shape, init, slot);
  }
  bool has(const std::string& name) const { return v_->has(prefix_ + name); }
  const std::string& prefix() const { return prefix_; }

 private:
  ParamVisitor* v_;
  std::string prefix_;
};

// The storage format LoadVisitor gives linear-layer weights (Linear::visit): a fixed one, or
// Stored = the checkpoint's dtype (F16 -> F16, BF16 -> BF16, F32 -> F32; mmapped half weights
// are used in place, not copied).
enum class LinearFormat { F32, F16, BF16, Q8_0, Stored };
struct LoadOptions {
  // F32 (packed) is what CLIP/SigLIP have always used. Q8_0 keeps a layer whose input size is
  // not a multiple of 32 in its stored dtype (llama.cpp also falls back for such tensors).
  LinearFormat linear = LinearFormat::F32;
};
// The format a linear weight of `stored` dtype and `in_features` inputs gets under `f`.
WeightFormat resolve_linear_format(LinearFormat f, DType stored, int64_t in_features);
// "f32", "f16", "bf16", "q8_0", "stored" (case-insensitive); false when unknown.
bool linear_format_from_name(const std::string& name, LinearFormat* out);

// Loads every visited parameter from a checkpoint, converting f16/bf16 to f32 and checking
// shapes; linear weights get the format LoadOptions::linear says.
class LoadVisitor : public ParamVisitor {
 public:
  explicit LoadVisitor(const TensorStore& store, LoadOptions options = {}) : store_(store), options_(options) {}
  void param(const std::string& name, const Shape& shape, Init, Tensor* slot) override {
    *slot = store_.get_f32(name, shape);
  }
  void scalar(const std::string& name, const Shape& shape, float, Tensor* slot) override {
    *slot = store_.get_f32(name, shape);
  }
  bool has(const std::string& name) const override { return store_.has(name); }
  void linear_weight(const std::string& name, const Shape& shape, Init init, LinearWeight* slot) override;

 private:
  const TensorStore& store_;
  LoadOptions options_;
};

// Draws random parameters (deterministic in the seed) and remembers them for writing.
class RandomInitVisitor : public ParamVisitor {
 public:
  explicit RandomInitVisitor(uint64_t seed) : rng_(seed) {}
  void param(const std::string& name, const Shape& shape, Init init, Tensor* slot) override;
  void scalar(const std::string& name, const Shape& shape, float init_value, Tensor* slot) override;
  bool has(const std::string&) const override { return true; }
  const std::vector<std::pair<std::string, Tensor>>& tensors() const { return tensors_; }

 private:
  std::mt19937_64 rng_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace lumen

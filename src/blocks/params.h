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
  bool has(const std::string& name) const { return v_->has(prefix_ + name); }
  const std::string& prefix() const { return prefix_; }

 private:
  ParamVisitor* v_;
  std::string prefix_;
};

// Loads every visited parameter from a checkpoint, converting f16/bf16 to f32 and checking shapes.
class LoadVisitor : public ParamVisitor {
 public:
  explicit LoadVisitor(const TensorStore& store) : store_(store) {}
  void param(const std::string& name, const Shape& shape, Init, Tensor* slot) override {
    *slot = store_.get_f32(name, shape);
  }
  void scalar(const std::string& name, const Shape& shape, float, Tensor* slot) override {
    *slot = store_.get_f32(name, shape);
  }
  bool has(const std::string& name) const override { return store_.has(name); }

 private:
  const TensorStore& store_;
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

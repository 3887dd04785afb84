// Tree-walking evaluator for parsed templates, with the semantics of jinja2's
// ImmutableSandboxedEnvironment as transformers configures it for chat templates: Python
// operators and truthiness, default Undefined, loop scoping (assignments inside a for body
// stay in that iteration), namespace() as the only mutable object, and no methods that
// mutate lists or dicts. Runaway templates are stopped by RenderLimits with an error.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/jinja/ast.h"

namespace lumen::text::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{64} << 20;  // also caps any single string or printed value
  uint64_t max_steps = 20'000'000;             // loop iterations, macro calls and outputs
  int max_call_depth = 64;                     // nested macro calls
};

// Arguments of a call, filter or test (the filter/test input is passed separately).
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;

  // The argument at position `i` or named `name`; nullptr when neither was given.
  const Value* get(size_t i, const char* name) const;
  Value get_or(size_t i, const char* name, Value fallback) const {
    const Value* v = get(i, name);
    return v ? *v : fallback;
  }
  // Rejects more than `max_positional` positional arguments or keywords not in `names`.
  void check(const char* what, size_t max_positional, std::initializer_list<const char*> names) const;
};

class Interpreter {
 public:
  Interpreter(const Program& program, RenderLimits limits);
  // Renders the whole template with `context` (a dict) as its variables.
  std::string render(const Value& context);

  // Pieces the builtins need.
  Value call(const Value& callee, CallArgs& args);
  Value filter(const std::string& name, const Value& input, CallArgs& args);
  bool test(const std::string& name, const Value& input, CallArgs& args);
  // jinja2's Environment.getattr: for `x.name`, Python attributes (methods) first, then items.
  Value get_attr(const Value& obj, const std::string& name);
  // jinja2's Environment.getitem: for `x[key]`, items first, then attributes.
  Value get_item(const Value& obj, const Value& key);
  // Charges one unit of work (loop iteration, call, ...) against RenderLimits::max_steps.
  void step();
  // Fails when a string being built would pass the output limit.
  void check_size(size_t bytes) const;
  const RenderLimits& limits() const { return limits_; }

  // Iterates a value the way a for loop does (dict -> keys, string -> characters).
  std::vector<Value> iterate(const Value& v);

 private:
  struct Frame;
  struct DepthGuard;
  static constexpr int kMaxRuntimeDepth = 1500;
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, std::string& out, const std::shared_ptr<Frame>& frame);
  Flow exec(const Stmt& s, std::string& out, const std::shared_ptr<Frame>& frame);
  Flow exec_for(const Stmt& s, std::string& out, const std::shared_ptr<Frame>& frame);
  void assign(const Target& target, const Value& value, Frame& frame, const SourcePos& pos);
  Value define_macro(const Stmt& s, const std::shared_ptr<Frame>& frame);
  Value eval(const Expr& e, const std::shared_ptr<Frame>& frame);
  Value eval_inner(const Expr& e, const std::shared_ptr<Frame>& frame);
  Value eval_binary(const Expr& e, const std::shared_ptr<Frame>& frame);
  Value eval_compare(const Expr& e, const std::shared_ptr<Frame>& frame);
  Value eval_slice(const Expr& e, const std::shared_ptr<Frame>& frame);
  CallArgs eval_args(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame);
  Value lookup(const std::string& name, const Frame& frame) const;
  void append(std::string& out, const std::string& text);

  const Program& program_;
  RenderLimits limits_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int depth_ = 0;  // nested exec/eval calls
  std::shared_ptr<Frame> globals_;
  // Rendered body of the innermost {% filter %} / {% set x | f %} block, for kBlockValue.
  std::vector<Value> block_values_;
};

}  // namespace lumen::text::jinja

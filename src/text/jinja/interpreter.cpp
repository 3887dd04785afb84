#include "text/jinja/interpreter.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "text/jinja/builtins.h"
#include "text/jinja/template_error.h"
#include "text/unicode.h"

namespace lumen::text::jinja {

// A scope: the template's top level, one for-loop iteration, a macro call, a with block.
// Lookups walk outwards; assignments go to the innermost frame (jinja2's scoping rules).
struct Interpreter::Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
};

const Value* CallArgs::get(size_t i, const char* name) const {
  const Value* found = i < args.size() ? &args[i] : nullptr;
  for (const auto& [k, v] : kwargs) {
    if (k != name) continue;
    LUMEN_CHECK(!found, "got multiple values for argument '", name, "'");
    found = &v;
  }
  return found;
}

void CallArgs::check(const char* what, size_t max_positional, std::initializer_list<const char*> names) const {
  LUMEN_CHECK(args.size() <= max_positional, what, "() takes at most ", max_positional, " argument(s) (", args.size(),
              " given)");
  for (const auto& [k, v] : kwargs) {
    bool known = false;
    for (const char* n : names) known = known || k == n;
    LUMEN_CHECK(known, what, "() got an unexpected keyword argument '", k, "'");
  }
}

namespace {

// Errors raised below the interpreter (builtins, value operations) carry no position; the
// innermost node that sees them adds it, and the located error passes through outer nodes.
[[noreturn]] void rethrow_located(const SourcePos& pos) {
  try {
    throw;
  } catch (const TemplateError&) {
    throw;
  } catch (const TemplateRaised& e) {
    throw TemplateError("chat template " + describe(pos) + ": " + e.what(), true, e.what());
  } catch (const Error& e) {
    throw TemplateError("chat template " + describe(pos) + ": " + e.what(), false, e.what());
  }
}

// "'dict object' has no attribute 'x'" (built with append: GCC 12 misreports -Wrestrict on
// chains of operator+ here).
std::string missing_hint(const Value& obj, const std::string& what) {
  std::string s = "'";
  s += obj.type_name();
  s += " object' has no ";
  s += what;
  return s;
}

// Python ints are unbounded; lumen's are 64-bit and overflow is an error, never a wrap.
constexpr const char* kOverflow = "integer overflow (lumen's templates use 64-bit integers)";
int64_t add_checked(int64_t a, int64_t b) {
  int64_t r;
  LUMEN_CHECK(!__builtin_add_overflow(a, b, &r), kOverflow);
  return r;
}
int64_t sub_checked(int64_t a, int64_t b) {
  int64_t r;
  LUMEN_CHECK(!__builtin_sub_overflow(a, b, &r), kOverflow);
  return r;
}
int64_t mul_checked(int64_t a, int64_t b) {
  int64_t r;
  LUMEN_CHECK(!__builtin_mul_overflow(a, b, &r), kOverflow);
  return r;
}

[[noreturn]] void bad_operands(const char* op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
}

Value python_floordiv(const Value& a, const Value& b) {
  if (a.is_float() || b.is_float()) {
    LUMEN_CHECK(b.as_float() != 0.0, "float floor division by zero");
    return Value(std::floor(a.as_float() / b.as_float()));
  }
  const int64_t x = a.as_int(), y = b.as_int();
  LUMEN_CHECK(y != 0, "integer division or modulo by zero");
  LUMEN_CHECK(!(x == INT64_MIN && y == -1), kOverflow);
  int64_t q = x / y;
  if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
  return Value(q);
}

Value python_mod(const Value& a, const Value& b) {
  if (a.is_float() || b.is_float()) {
    LUMEN_CHECK(b.as_float() != 0.0, "float modulo");
    double r = std::fmod(a.as_float(), b.as_float());
    if (r != 0 && ((r < 0) != (b.as_float() < 0))) r += b.as_float();
    return Value(r);
  }
  const int64_t x = a.as_int(), y = b.as_int();
  LUMEN_CHECK(y != 0, "integer division or modulo by zero");
  if (y == -1) return Value(0);
  int64_t r = x % y;
  if (r != 0 && ((r < 0) != (y < 0))) r += y;
  return Value(r);
}

Value python_pow(const Value& a, const Value& b) {
  if (a.is_float() || b.is_float() || b.as_int() < 0) {
    const double x = a.as_float(), y = b.as_float();
    LUMEN_CHECK(!(x == 0.0 && y < 0), "0.0 cannot be raised to a negative power");
    return Value(std::pow(x, y));
  }
  int64_t base = a.as_int(), exp = b.as_int(), result = 1;
  while (exp > 0) {
    if (exp & 1) result = mul_checked(result, base);
    exp >>= 1;
    if (exp) base = mul_checked(base, base);
  }
  return Value(result);
}

}  // namespace

Interpreter::Interpreter(const Program& program, RenderLimits limits) : program_(program), limits_(limits) {}

void Interpreter::step() {
  if (++steps_ > limits_.max_steps)
    fail("template ran too long (more than ", limits_.max_steps, " loop iterations, calls and outputs)");
}

void Interpreter::check_size(size_t bytes) const {
  LUMEN_CHECK(bytes <= limits_.max_output_bytes, "output too large (more than ", limits_.max_output_bytes, " bytes)");
}

void Interpreter::append(std::string& out, const std::string& text) {
  step();
  check_size(out.size() + text.size());
  out += text;
}

std::string Interpreter::render(const Value& context) {
  LUMEN_CHECK(context.is_dict(), "template context must be a JSON object, not ", context.type_name());
  globals_ = std::make_shared<Frame>();
  for (auto& [k, v] : make_globals()) globals_->vars[k.as_string()] = v;
  // Render arguments shadow the environment's globals, as in jinja2.
  for (const auto& [k, v] : context.as_dict()) {
    LUMEN_CHECK(k.is_string(), "template context keys must be strings");
    globals_->vars[k.as_string()] = v;
  }
  auto top = std::make_shared<Frame>();
  top->parent = globals_;
  std::string out;
  exec_body(program_.body, out, top);
  // Macros capture their frame; drop the references so the frames can be freed.
  top->vars.clear();
  globals_.reset();
  return out;
}

Value Interpreter::lookup(const std::string& name, const Frame& frame) const {
  for (const Frame* f = &frame; f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  return Value::undefined("'" + name + "' is undefined");
}

Interpreter::Flow Interpreter::exec_body(const Body& body, std::string& out, const std::shared_ptr<Frame>& frame) {
  for (const StmtPtr& s : body) {
    const Flow flow = exec(*s, out, frame);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

// Counts nested exec/eval calls: macro recursion multiplies the template's own nesting, so
// the stack is guarded at run time too.
struct Interpreter::DepthGuard {
  Interpreter* in;
  explicit DepthGuard(Interpreter* interpreter) : in(interpreter) {
    if (++in->depth_ > kMaxRuntimeDepth) {
      --in->depth_;
      fail("template nested too deeply at run time (macro recursion?)");
    }
  }
  ~DepthGuard() { --in->depth_; }
};

Interpreter::Flow Interpreter::exec(const Stmt& s, std::string& out, const std::shared_ptr<Frame>& frame) {
  try {
    DepthGuard guard(this);
    switch (s.kind) {
      case Stmt::Kind::kText: append(out, s.text); return Flow::kNormal;
      case Stmt::Kind::kOutput: {
        const Value v = eval(*s.expr, frame);
        append(out, py_str(v, limits_.max_output_bytes));
        return Flow::kNormal;
      }
      case Stmt::Kind::kIf:
        // `if` opens no scope: its assignments are visible after it.
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond, frame).truthy()) return exec_body(body, out, frame);
        return exec_body(s.else_body, out, frame);
      case Stmt::Kind::kFor: return exec_for(s, out, frame);
      case Stmt::Kind::kSet: assign(s.target, eval(*s.expr, frame), *frame, s.pos); return Flow::kNormal;
      case Stmt::Kind::kSetBlock:
      case Stmt::Kind::kFilterBlock: {
        auto inner = std::make_shared<Frame>();
        inner->parent = frame;
        std::string body;
        const Flow flow = exec_body(s.body, body, inner);
        Value value(std::move(body));
        if (s.expr) {
          block_values_.push_back(value);
          try {
            value = eval(*s.expr, frame);
          } catch (...) {
            block_values_.pop_back();
            throw;
          }
          block_values_.pop_back();
        }
        if (s.kind == Stmt::Kind::kSetBlock) {
          assign(s.target, value, *frame, s.pos);
        } else {
          append(out, py_str(value, limits_.max_output_bytes));
        }
        return flow;
      }
      case Stmt::Kind::kMacro: frame->vars[s.text] = define_macro(s, frame); return Flow::kNormal;
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
      case Stmt::Kind::kScope: {
        auto inner = std::make_shared<Frame>();
        inner->parent = frame;
        for (const auto& [name, expr] : s.withs) inner->vars[name] = eval(*expr, frame);
        return exec_body(s.body, out, inner);
      }
    }
  } catch (...) {
    rethrow_located(s.pos);
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, std::string& out, const std::shared_ptr<Frame>& frame) {
  std::vector<Value> items = iterate(eval(*s.expr, frame));
  if (s.cond) {
    // The loop filter runs before the loop, so loop.length counts only the kept items.
    std::vector<Value> kept;
    for (Value& item : items) {
      step();
      auto probe = std::make_shared<Frame>();
      probe->parent = frame;
      assign(s.target, item, *probe, s.pos);
      if (eval(*s.cond, probe).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Frame>();
    inner->parent = frame;
    const Flow flow = exec_body(s.else_body, out, inner);
    return flow == Flow::kNormal ? Flow::kNormal : flow;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    step();
    // Each iteration is its own scope: `set` inside the body does not survive it.
    auto inner = std::make_shared<Frame>();
    inner->parent = frame;
    assign(s.target, items[static_cast<size_t>(i)], *inner, s.pos);
    Dict loop;
    loop.emplace_back(Value("index"), Value(i + 1));
    loop.emplace_back(Value("index0"), Value(i));
    loop.emplace_back(Value("revindex"), Value(n - i));
    loop.emplace_back(Value("revindex0"), Value(n - i - 1));
    loop.emplace_back(Value("first"), Value(i == 0));
    loop.emplace_back(Value("last"), Value(i == n - 1));
    loop.emplace_back(Value("length"), Value(n));
    loop.emplace_back(Value("depth"), Value(1));
    loop.emplace_back(Value("depth0"), Value(0));
    loop.emplace_back(Value("previtem"), i > 0 ? items[static_cast<size_t>(i - 1)]
                                               : Value::undefined("there is no previous item"));
    loop.emplace_back(Value("nextitem"), i + 1 < n ? items[static_cast<size_t>(i + 1)]
                                                   : Value::undefined("there is no next item"));
    loop.emplace_back(Value("cycle"), Value::callable("loop.cycle", [i](Interpreter&, CallArgs& a) {
                        LUMEN_CHECK(!a.args.empty(), "no items for cycling given");
                        return a.args[static_cast<size_t>(i) % a.args.size()];
                      }));
    inner->vars["loop"] = Value::dict(std::move(loop));
    const Flow flow = exec_body(s.body, out, inner);
    if (flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

void Interpreter::assign(const Target& target, const Value& value, Frame& frame, const SourcePos& pos) {
  if (!target.attr.empty()) {
    const Value ns = lookup(target.names[0], frame);
    LUMEN_CHECK(ns.is_namespace(), "cannot assign attribute on non-namespace object '", target.names[0], "'");
    LUMEN_CHECK(!value.has_namespace(), "a namespace cannot hold another namespace");
    for (auto& [k, v] : ns.as_namespace().attrs) {
      if (k.is_string() && k.as_string() == target.attr) {
        v = value;
        return;
      }
    }
    ns.as_namespace().attrs.emplace_back(Value(target.attr), value);
    return;
  }
  if (!target.tuple) {
    frame.vars[target.names[0]] = value;
    return;
  }
  const std::vector<Value> parts = iterate(value);
  LUMEN_CHECK(parts.size() >= target.names.size(), "not enough values to unpack (expected ", target.names.size(),
              ", got ", parts.size(), ")");
  LUMEN_CHECK(parts.size() <= target.names.size(), "too many values to unpack (expected ", target.names.size(), ")");
  for (size_t i = 0; i < parts.size(); ++i) frame.vars[target.names[i]] = parts[i];
}

Value Interpreter::define_macro(const Stmt& s, const std::shared_ptr<Frame>& frame) {
  // The macro sees its defining scope as it is when called (it holds the frame, not a copy).
  std::weak_ptr<Frame> closure = frame;
  const Stmt* macro = &s;
  return Value::callable(s.text, [this, macro, closure](Interpreter&, CallArgs& a) -> Value {
    auto scope = closure.lock();
    LUMEN_CHECK(scope, "macro '", macro->text, "' called after its scope ended");
    LUMEN_CHECK(call_depth_ < limits_.max_call_depth, "macro calls nested more than ", limits_.max_call_depth,
                " deep (runaway recursion?)");
    LUMEN_CHECK(a.args.size() <= macro->params.size(), "macro '", macro->text, "' takes not more than ",
                macro->params.size(), " argument(s)");
    auto inner = std::make_shared<Frame>();
    inner->parent = scope;
    std::vector<bool> given(macro->params.size(), false);
    for (size_t i = 0; i < a.args.size(); ++i) {
      inner->vars[macro->params[i].name] = a.args[i];
      given[i] = true;
    }
    for (const auto& [k, v] : a.kwargs) {
      size_t i = 0;
      while (i < macro->params.size() && macro->params[i].name != k) ++i;
      LUMEN_CHECK(i < macro->params.size(), "macro '", macro->text, "' takes no keyword argument '", k, "'");
      LUMEN_CHECK(!given[i], "macro '", macro->text, "' got multiple values for argument '", k, "'");
      inner->vars[k] = v;
      given[i] = true;
    }
    for (size_t i = 0; i < macro->params.size(); ++i) {
      if (given[i]) continue;
      const MacroParam& p = macro->params[i];
      inner->vars[p.name] = p.default_value ? eval(*p.default_value, inner)
                                            : Value::undefined("parameter '" + p.name + "' was not provided");
    }
    ++call_depth_;
    std::string out;
    try {
      exec_body(macro->body, out, inner);
    } catch (...) {
      --call_depth_;
      throw;
    }
    --call_depth_;
    return Value(std::move(out));
  });
}

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kList:
    case Value::Kind::kTuple: return v.as_list();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.as_dict()) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      const std::string& s = v.as_string();
      for (size_t i = 0; i < s.size();) {
        size_t len = 1;
        decode_utf8_at(s, i, &len);
        chars.emplace_back(s.substr(i, len));
        i += len;
      }
      return chars;
    }
    default: fail("'", v.type_name(), "' object is not iterable");
  }
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) fail(callee.as_undefined().hint);
  LUMEN_CHECK(callee.is_callable(), "'", callee.type_name(), "' object is not callable");
  step();
  return callee.as_callable().fn(*this, args);
}

Value Interpreter::filter(const std::string& name, const Value& input, CallArgs& args) {
  return apply_filter(*this, name, input, args);
}

bool Interpreter::test(const std::string& name, const Value& input, CallArgs& args) {
  return apply_test(*this, name, input, args);
}

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail(obj.as_undefined().hint);
  if (obj.is_namespace()) {
    for (const auto& [k, v] : obj.as_namespace().attrs)
      if (k.is_string() && k.as_string() == name) return v;
    return Value::undefined("'Namespace' object has no attribute '" + name + "'");
  }
  if (auto m = method_of(obj, name)) return *m;
  if (obj.is_dict()) {
    if (const Value* v = obj.find(Value(name))) return *v;
  }
  return Value::undefined(missing_hint(obj, "attribute '" + name + "'"));
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail(obj.as_undefined().hint);
  if (obj.is_dict()) {
    if (const Value* v = obj.find(key)) return *v;
  } else if ((obj.is_sequence() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_string()) {
      const std::u32string cs = decode_utf8(obj.as_string());
      const int64_t n = static_cast<int64_t>(cs.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(to_utf8(cs[static_cast<size_t>(i)]));
    } else {
      const List& items = obj.as_list();
      const int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
    }
    return Value::undefined(missing_hint(obj, "element " + std::to_string(key.as_int())));
  }
  // Not an item: jinja2 falls back to an attribute of that name.
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined(missing_hint(obj, "element " + py_repr(key, limits_.max_output_bytes)));
}

Value Interpreter::eval(const Expr& e, const std::shared_ptr<Frame>& frame) {
  try {
    DepthGuard guard(this);
    return eval_inner(e, frame);
  } catch (...) {
    rethrow_located(e.pos);
  }
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame) {
  CallArgs args;
  for (size_t i = first; i < e.items.size(); ++i) args.args.push_back(eval(*e.items[i], frame));
  for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, eval(*v, frame));
  return args;
}

Value Interpreter::eval_inner(const Expr& e, const std::shared_ptr<Frame>& frame) {
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.literal;
    case Expr::Kind::kName: return lookup(e.name, *frame);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      List items;
      for (const auto& item : e.items) items.push_back(eval(*item, frame));
      return e.kind == Expr::Kind::kList ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    case Expr::Kind::kDict: {
      Dict items;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], frame);
        Value v = eval(*e.items[i + 1], frame);
        LUMEN_CHECK(!k.is_dict() && !k.is_list() && !k.is_namespace() && !k.is_undefined(), "unhashable type: '",
                    k.type_name(), "'");
        bool replaced = false;
        for (auto& [ek, ev] : items)
          if (py_equal(ek, k)) {
            ev = v;
            replaced = true;
          }
        if (!replaced) items.emplace_back(std::move(k), std::move(v));
      }
      return Value::dict(std::move(items));
    }
    case Expr::Kind::kAttr: return get_attr(eval(*e.items[0], frame), e.name);
    case Expr::Kind::kItem: {
      const Value obj = eval(*e.items[0], frame);
      return get_item(obj, eval(*e.items[1], frame));
    }
    case Expr::Kind::kSlice: return eval_slice(e, frame);
    case Expr::Kind::kCall: {
      const Value callee = eval(*e.items[0], frame);
      CallArgs args = eval_args(e, 1, frame);
      return call(callee, args);
    }
    case Expr::Kind::kFilter: {
      const Value input = eval(*e.items[0], frame);
      CallArgs args = eval_args(e, 1, frame);
      step();
      return filter(e.name, input, args);
    }
    case Expr::Kind::kTest: {
      const Value input = eval(*e.items[0], frame);
      CallArgs args = eval_args(e, 1, frame);
      return Value(test(e.name, input, args) != e.negate);
    }
    case Expr::Kind::kUnary: {
      const Value v = eval(*e.items[0], frame);
      if (e.name == "not") return Value(!v.truthy());
      if (v.is_undefined()) fail(v.as_undefined().hint);
      LUMEN_CHECK(v.is_number(), "bad operand type for unary ", e.name, ": '", v.type_name(), "'");
      if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
      if (v.is_float()) return Value(-v.as_float());
      return Value(sub_checked(0, v.as_int()));
    }
    case Expr::Kind::kBinary: return eval_binary(e, frame);
    case Expr::Kind::kCompare: return eval_compare(e, frame);
    case Expr::Kind::kCondition:
      if (eval(*e.items[1], frame).truthy()) return eval(*e.items[0], frame);
      return e.items[2] ? eval(*e.items[2], frame) : Value::undefined("the inline if-expression evaluated to false");
    case Expr::Kind::kBlockValue:
      LUMEN_CHECK(!block_values_.empty(), "block value outside of a filter block");
      return block_values_.back();
  }
  fail("unknown expression");
}

Value Interpreter::eval_binary(const Expr& e, const std::shared_ptr<Frame>& frame) {
  const std::string& op = e.name;
  const Value a = eval(*e.items[0], frame);
  // `and` / `or` short-circuit and return an operand, as in Python.
  if (op == "and") return a.truthy() ? eval(*e.items[1], frame) : a;
  if (op == "or") return a.truthy() ? a : eval(*e.items[1], frame);
  const Value b = eval(*e.items[1], frame);
  if (op == "~") {
    std::string s = py_str(a, limits_.max_output_bytes);
    const std::string t = py_str(b, limits_.max_output_bytes);
    check_size(s.size() + t.size());
    return Value(s + t);
  }
  if (a.is_undefined()) fail(a.as_undefined().hint);
  if (b.is_undefined()) fail(b.as_undefined().hint);
  const bool numbers = a.is_number() && b.is_number();
  const bool floats = numbers && (a.is_float() || b.is_float());
  if (op == "+") {
    if (numbers) {
      if (floats) return Value(a.as_float() + b.as_float());
      return Value(add_checked(a.as_int(), b.as_int()));
    }
    if (a.is_string() && b.is_string()) {
      check_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_sequence() && a.kind() == b.kind()) {
      List items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return a.is_list() ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    if (a.is_string()) fail("can only concatenate str (not \"", b.type_name(), "\") to str");
    bad_operands("+", a, b);
  }
  if (op == "-") {
    if (!numbers) bad_operands("-", a, b);
    if (floats) return Value(a.as_float() - b.as_float());
    return Value(sub_checked(a.as_int(), b.as_int()));
  }
  if (op == "*") {
    if (numbers) {
      if (floats) return Value(a.as_float() * b.as_float());
      return Value(mul_checked(a.as_int(), b.as_int()));
    }
    // Repetition: str * int, list * int (either order).
    const Value& seq = a.is_number() ? b : a;
    const Value& count = a.is_number() ? a : b;
    if (!(count.is_int() || count.is_bool()) || !(seq.is_string() || seq.is_sequence())) bad_operands("*", a, b);
    const int64_t n = std::max<int64_t>(count.as_int(), 0);
    if (seq.is_string()) {
      const std::string& s = seq.as_string();
      if (!s.empty()) check_size(static_cast<size_t>(std::min<int64_t>(n, INT64_MAX / static_cast<int64_t>(s.size())) *
                                                     static_cast<int64_t>(s.size())));
      std::string out;
      for (int64_t i = 0; i < n && !s.empty(); ++i) out += s;
      return Value(std::move(out));
    }
    const List& items = seq.as_list();
    LUMEN_CHECK(items.empty() || static_cast<uint64_t>(n) <= kMaxValueNodes / items.size(), "value too large");
    List out;
    for (int64_t i = 0; i < n && !items.empty(); ++i) out.insert(out.end(), items.begin(), items.end());
    return seq.is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
  }
  if (op == "/") {
    if (!numbers) bad_operands("/", a, b);
    LUMEN_CHECK(b.as_float() != 0.0, "division by zero");
    return Value(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (!numbers) bad_operands("//", a, b);
    return python_floordiv(a, b);
  }
  if (op == "%") {
    if (a.is_string()) fail("printf-style '%' formatting of strings is not supported; use the format filter");
    if (!numbers) bad_operands("%", a, b);
    return python_mod(a, b);
  }
  if (op == "**") {
    if (!numbers) bad_operands("** or pow()", a, b);
    return python_pow(a, b);
  }
  fail("unknown operator '", op, "'");
}

Value Interpreter::eval_compare(const Expr& e, const std::shared_ptr<Frame>& frame) {
  Value left = eval(*e.items[0], frame);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.items[i + 1], frame);
    const std::string& op = e.ops[i];
    bool result;
    if (op == "==") {
      result = py_equal(left, right);
    } else if (op == "!=") {
      result = !py_equal(left, right);
    } else if (op == "in" || op == "notin") {
      CallArgs args;
      args.args.push_back(right);
      result = test("in", left, args) == (op == "in");
    } else {
      if (left.is_undefined()) fail(left.as_undefined().hint);
      if (right.is_undefined()) fail(right.as_undefined().hint);
      if (op == "<") {
        result = py_less(left, right);
      } else if (op == ">") {
        result = py_less(right, left);
      } else if (op == "<=") {
        result = !py_less(right, left);
      } else {
        result = !py_less(left, right);
      }
    }
    if (!result) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Value Interpreter::eval_slice(const Expr& e, const std::shared_ptr<Frame>& frame) {
  const Value obj = eval(*e.items[0], frame);
  if (obj.is_undefined()) fail(obj.as_undefined().hint);
  auto bound = [&](size_t i) -> std::optional<int64_t> {
    if (!e.items[i]) return std::nullopt;
    const Value v = eval(*e.items[i], frame);
    if (v.is_none()) return std::nullopt;
    LUMEN_CHECK(v.is_int() || v.is_bool(), "slice indices must be integers or None");
    return v.as_int();
  };
  const std::optional<int64_t> start_v = bound(1), stop_v = bound(2), step_v = bound(3);
  LUMEN_CHECK(obj.is_string() || obj.is_sequence(), "'", obj.type_name(), "' object is not subscriptable");
  const int64_t step = step_v.value_or(1);
  LUMEN_CHECK(step != 0, "slice step cannot be zero");
  std::u32string chars;
  if (obj.is_string()) chars = decode_utf8(obj.as_string());
  const int64_t n = obj.is_string() ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(obj.as_list().size());
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t start = adjust(start_v, step < 0 ? n - 1 : 0);
  const int64_t stop = adjust(stop_v, step < 0 ? -1 : n);
  // Stepping stops before `i + step` could overflow (a huge step visits one element).
  auto next = [step](int64_t& i) { return !__builtin_add_overflow(i, step, &i); };
  if (obj.is_string()) {
    std::u32string out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      out += chars[static_cast<size_t>(i)];
      if (!next(i)) break;
    }
    return Value(to_utf8(out));
  }
  List out;
  const List& items = obj.as_list();
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    out.push_back(items[static_cast<size_t>(i)]);
    if (!next(i)) break;
  }
  return obj.is_list() ? Value::list(std::move(out)) : Value::tuple(std::move(out));
}

}  // namespace lumen::text::jinja

// Values of the Jinja interpreter behind chat templates. Templates are written against
// Python (jinja2 runs them on Python objects), so a Value models the Python objects a chat
// template sees: None, bool, int, float, str, list, tuple, dict (insertion ordered), jinja2's
// Undefined, namespace() objects and callables. Printing, truthiness, equality and ordering
// follow Python, because the rendered prompt must match what transformers renders byte for
// byte.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lumen::text::jinja {

class Value;
using List = std::vector<Value>;
// A Python dict: keys in insertion order, looked up by Python equality.
using Dict = std::vector<std::pair<Value, Value>>;

// jinja2's default Undefined: prints as "", is falsy, iterates as empty; most other uses
// (arithmetic, attribute access, calls) raise an error carrying `hint`, e.g.
// "'foo' is undefined" or "'dict object' has no attribute 'bar'".
struct Undefined {
  std::string hint;
};
struct None {};

class Interpreter;
struct CallArgs;
// Globals, filters-as-values, bound methods (`"a".upper`) and macros.
struct Callable {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

// A namespace() object: the one mutable thing a template has (`{% set ns.x = 1 %}`). Its
// attributes may not hold namespaces, so values can never form cycles.
struct Namespace {
  Dict attrs;
};

// Containers are immutable and shared, so a template can build a DAG whose printed size
// doubles per level ([x, x]). Each container records the size of its tree (nodes counted
// with repetition) and its nesting depth; both are capped when it is built, which bounds the
// work of printing, comparing or serialising any value.
constexpr uint64_t kMaxValueNodes = 1u << 20;
constexpr int kMaxValueDepth = 256;
struct ListData {
  List items;
  uint64_t nodes = 1;
  int depth = 1;
  bool has_namespace = false;
};
struct DictData {
  Dict items;
  uint64_t nodes = 1;
  int depth = 1;
  bool has_namespace = false;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict, kNamespace, kCallable };

  Value() : v_(Undefined{}) {}
  Value(None) : v_(None{}) {}
  Value(Undefined u) : v_(std::move(u)) {}
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(double f) : v_(f) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  static Value list(List items);
  static Value tuple(List items);
  static Value dict(Dict items);
  static Value ns(Dict attrs);
  static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);
  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }  // not bool, as Python's `is integer`
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_tuple() const { return kind() == Kind::kTuple; }
  bool is_sequence() const { return is_list() || is_tuple(); }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<bool>(v_); }
  // Ints and bools as int64 (Python's bool is an int).
  int64_t as_int() const;
  // Any number as double.
  double as_float() const;
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const;  // list or tuple
  const Dict& as_dict() const { return std::get<std::shared_ptr<const DictData>>(v_)->items; }
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(v_); }
  const Undefined& as_undefined() const { return std::get<Undefined>(v_); }

  // Python bool(x); Undefined is falsy.
  bool truthy() const;
  // Python type name for messages ("dict", "str", "NoneType", ...).
  const char* type_name() const;
  // Dict lookup by Python equality; nullptr when absent.
  const Value* find(const Value& key) const;
  // Tree size, nesting depth and whether a namespace is inside (see ListData).
  uint64_t nodes() const;
  int depth() const;
  bool has_namespace() const;

 private:
  struct TupleTag {};
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const ListData>,
               std::pair<TupleTag, std::shared_ptr<const ListData>>, std::shared_ptr<const DictData>,
               std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      v_;
};

// Python ==, deep for containers; 1 == 1.0 == True. Undefined equals only Undefined.
bool py_equal(const Value& a, const Value& b);
// Python `a < b` for numbers, strings (code point order) and sequences; throws lumen::Error
// (the caller adds position) for unorderable types.
bool py_less(const Value& a, const Value& b);

// Python str(x) as jinja2 prints it: Undefined -> "", None -> "None", True -> "True",
// 1.0 -> "1.0", containers as repr.
// Throws lumen::Error once the text would pass `max_bytes`.
std::string py_str(const Value& v, size_t max_bytes = SIZE_MAX);
// Python repr(x): strings quoted the way Python picks quotes and escapes.
std::string py_repr(const Value& v, size_t max_bytes = SIZE_MAX);
// Python repr of a float: shortest round-trip digits, exponent form outside [1e-4, 1e16).
std::string py_float_repr(double f);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter
// calls it. indent < 0 means None; `indent_str` (when set) is an indent given as a string.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  int indent = -1;
  std::optional<std::string> indent_str;
  std::optional<std::pair<std::string, std::string>> separators;  // item, key
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // throws lumen::Error beyond this
};
std::string py_json_dumps(const Value& v, const JsonDumpOptions& opt);

// JSON (ordered or not) to Value: objects become dicts in the JSON's key order.
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

}  // namespace lumen::text::jinja

#include "text/jinja/value.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "text/unicode.h"

namespace lumen::text::jinja {

namespace {

template <typename Data>
void measure(Data& d, const Value& child) {
  d.nodes += child.nodes();
  d.depth = std::max(d.depth, child.depth() + 1);
  d.has_namespace = d.has_namespace || child.has_namespace();
}

template <typename Data>
void check_limits(const Data& d) {
  LUMEN_CHECK(d.depth <= kMaxValueDepth, "value nested more than ", kMaxValueDepth, " levels deep");
  LUMEN_CHECK(d.nodes <= kMaxValueNodes, "value too large (more than ", kMaxValueNodes, " elements in all)");
}

std::shared_ptr<const ListData> make_list(List items) {
  auto d = std::make_shared<ListData>();
  for (const auto& e : items) measure(*d, e);
  check_limits(*d);
  d->items = std::move(items);
  return d;
}

}  // namespace

Value Value::list(List items) {
  Value v;
  v.v_ = make_list(std::move(items));
  return v;
}
Value Value::tuple(List items) {
  Value v;
  v.v_ = std::make_pair(TupleTag{}, make_list(std::move(items)));
  return v;
}
Value Value::dict(Dict items) {
  auto d = std::make_shared<DictData>();
  for (const auto& [k, e] : items) {
    measure(*d, k);
    measure(*d, e);
  }
  check_limits(*d);
  d->items = std::move(items);
  Value v;
  v.v_ = std::move(d);
  return v;
}

uint64_t Value::nodes() const {
  switch (v_.index()) {
    case 6: return std::get<6>(v_)->nodes;
    case 7: return std::get<7>(v_).second->nodes;
    case 8: return std::get<8>(v_)->nodes;
    default: return 1;
  }
}
int Value::depth() const {
  switch (v_.index()) {
    case 6: return std::get<6>(v_)->depth;
    case 7: return std::get<7>(v_).second->depth;
    case 8: return std::get<8>(v_)->depth;
    case 9: return kMaxValueDepth / 2;  // its attributes are containers without namespaces
    default: return 0;
  }
}
bool Value::has_namespace() const {
  switch (v_.index()) {
    case 6: return std::get<6>(v_)->has_namespace;
    case 7: return std::get<7>(v_).second->has_namespace;
    case 8: return std::get<8>(v_)->has_namespace;
    case 9: return true;
    default: return false;
  }
}
Value Value::ns(Dict attrs) {
  Value v;
  v.v_ = std::make_shared<Namespace>(Namespace{std::move(attrs)});
  return v;
}
Value Value::callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  Value v;
  v.v_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

Value::Kind Value::kind() const {
  switch (v_.index()) {
    case 0: return Kind::kUndefined;
    case 1: return Kind::kNone;
    case 2: return Kind::kBool;
    case 3: return Kind::kInt;
    case 4: return Kind::kFloat;
    case 5: return Kind::kString;
    case 6: return Kind::kList;
    case 7: return Kind::kTuple;
    case 8: return Kind::kDict;
    case 9: return Kind::kNamespace;
    default: return Kind::kCallable;
  }
}

int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}
double Value::as_float() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}
const List& Value::as_list() const {
  if (is_tuple()) return std::get<7>(v_).second->items;
  return std::get<6>(v_)->items;
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int() != 0;
    case Kind::kFloat: return as_float() != 0.0;
    case Kind::kString: return !as_string().empty();
    case Kind::kList:
    case Kind::kTuple: return !as_list().empty();
    case Kind::kDict: return !as_dict().empty();
    default: return true;
  }
}

const char* Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    default: return "function";
  }
}

const Value* Value::find(const Value& key) const {
  for (const auto& [k, v] : as_dict())
    if (py_equal(k, key)) return &v;
  return nullptr;
}

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  // Lists never equal tuples in Python.
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.as_string() == b.as_string();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const List &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!py_equal(x[i], y[i])) return false;
      return true;
    }
    case Value::Kind::kDict: {
      const Dict &x = a.as_dict(), &y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = b.find(k);
        if (!other || !py_equal(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace: return &a.as_namespace() == &b.as_namespace();
    case Value::Kind::kCallable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

bool py_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  // UTF-8 byte order is code point order, which is what Python compares.
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.kind() == b.kind() && a.is_sequence()) {
    const List &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_equal(x[i], y[i])) return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '", a.type_name(), "' and '", b.type_name(), "'");
}

std::string py_float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0.0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then lay them out the way Python's float_repr_style 'short'
  // does (Python/pystrtod.c format_float_short, mode 'r'): scientific when the decimal point
  // position is below -4 or above 16.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string out;
  if (sci[0] == '-') {
    out = "-";
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits = sci.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e_pos + 1));
  const int decpt = exp10 + 1;  // value = 0.<digits> * 10^decpt
  const int n = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {
    out += digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    return out + e;
  }
  if (decpt <= 0) return out + "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  if (decpt >= n) return out + digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
  return out + digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
}

namespace {

// Python's str.isprintable() per character: everything but categories C* and Z*, space kept.
bool py_printable(char32_t c) {
  if (c == ' ') return true;
  return (category_mask(c) & (U_GC_C_MASK | U_GC_Z_MASK)) == 0;
}

std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  const bool valid = is_valid_utf8(s);
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t c = valid ? decode_utf8_at(s, i, &len) : static_cast<unsigned char>(s[i]);
    char esc[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!py_printable(c)) {
      const unsigned u = static_cast<unsigned>(c);
      std::snprintf(esc, sizeof esc, u < 0x100 ? "\\x%02x" : u < 0x10000 ? "\\u%04x" : "\\U%08x", u);
      out += esc;
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  out += quote;
  return out;
}

}  // namespace

namespace {

void check_size(const std::string& out, size_t max_bytes) {
  LUMEN_CHECK(out.size() <= max_bytes, "text too large (more than ", max_bytes, " bytes)");
}

void repr_into(std::string& out, const Value& v, size_t max_bytes);

void str_into(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: break;
    case Value::Kind::kNone: out += "None"; break;
    case Value::Kind::kBool: out += v.as_bool() ? "True" : "False"; break;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); break;
    case Value::Kind::kFloat: out += py_float_repr(v.as_float()); break;
    case Value::Kind::kString: out += v.as_string(); break;
    case Value::Kind::kCallable: out += "<function " + v.as_callable().name + ">"; break;
    default: repr_into(out, v, max_bytes);
  }
  check_size(out, max_bytes);
}

void dict_items_into(std::string& out, const Dict& items, size_t max_bytes) {
  bool first = true;
  for (const auto& [k, val] : items) {
    if (!first) out += ", ";
    first = false;
    repr_into(out, k, max_bytes);
    out += ": ";
    repr_into(out, val, max_bytes);
  }
}

void repr_into(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kString: out += repr_string(v.as_string()); break;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const List& items = v.as_list();
      out += v.is_list() ? "[" : "(";
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        repr_into(out, items[i], max_bytes);
      }
      if (v.is_tuple() && items.size() == 1) out += ",";
      out += v.is_list() ? "]" : ")";
      break;
    }
    case Value::Kind::kDict:
      out += "{";
      dict_items_into(out, v.as_dict(), max_bytes);
      out += "}";
      break;
    case Value::Kind::kNamespace:
      out += "<Namespace {";
      dict_items_into(out, v.as_namespace().attrs, max_bytes);
      out += "}>";
      break;
    default: str_into(out, v, max_bytes);
  }
  check_size(out, max_bytes);
}

}  // namespace

std::string py_repr(const Value& v, size_t max_bytes) {
  std::string out;
  repr_into(out, v, max_bytes);
  return out;
}

std::string py_str(const Value& v, size_t max_bytes) {
  if (v.is_string()) {
    check_size(v.as_string(), max_bytes);
    return v.as_string();
  }
  std::string out;
  str_into(out, v, max_bytes);
  return out;
}

namespace {

// json.encoder's string escaping: ensure_ascii=False escapes only quotes, backslashes and
// control characters; ensure_ascii=True also writes non-ASCII as \uXXXX (surrogate pairs).
void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  const bool valid = is_valid_utf8(s);
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t c = valid ? decode_utf8_at(s, i, &len) : static_cast<unsigned char>(s[i]);
    char esc[16];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7e)) {
          if (c >= 0x10000) {
            const unsigned u = static_cast<unsigned>(c) - 0x10000;
            std::snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (u >> 10), 0xDC00 + (u & 0x3FF));
          } else {
            std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          }
          out += esc;
        } else {
          out.append(s, i, len);
        }
    }
    i += len;
  }
  out += '"';
}

// json.dumps turns dict keys that are not strings into strings this way, and rejects others.
std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::kString: return k.as_string();
    case Value::Kind::kBool: return k.as_bool() ? "true" : "false";
    case Value::Kind::kNone: return "null";
    case Value::Kind::kInt: return std::to_string(k.as_int());
    case Value::Kind::kFloat: return py_float_repr(k.as_float());
    default: fail("keys must be str, int, float, bool or None, not ", k.type_name());
  }
}

void json_dump(std::string& out, const Value& v, const JsonDumpOptions& opt, int depth) {
  LUMEN_CHECK(depth < 4 * kMaxValueDepth, "tojson: nesting too deep");
  const bool pretty = opt.indent >= 0 || opt.indent_str.has_value();
  const std::string item_sep = opt.separators ? opt.separators->first : pretty ? "," : ", ";
  const std::string key_sep = opt.separators ? opt.separators->second : ": ";
  auto newline = [&](int level) {
    if (!pretty) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += opt.indent_str ? *opt.indent_str : std::string(static_cast<size_t>(opt.indent), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: {
      const double f = v.as_float();
      out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f > 0 ? "Infinity" : "-Infinity") : py_float_repr(f);
      return;
    }
    case Value::Kind::kString:
      json_string(out, v.as_string(), opt.ensure_ascii);
      check_size(out, opt.max_bytes);
      return;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const List& items = v.as_list();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_dump(out, items[i], opt, depth + 1);
        check_size(out, opt.max_bytes);
      }
      newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::kDict: {
      const Dict& items = v.as_dict();
      if (items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [k, val] : items) entries.emplace_back(json_key(k), &val);
      if (opt.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        json_string(out, entries[i].first, opt.ensure_ascii);
        out += key_sep;
        json_dump(out, *entries[i].second, opt, depth + 1);
        check_size(out, opt.max_bytes);
      }
      newline(depth);
      out += '}';
      return;
    }
    default: fail("Object of type ", v.type_name(), " is not JSON serializable");
  }
}

template <typename J>
Value from_json_impl(const J& j, int depth) {
  LUMEN_CHECK(depth < 512, "template context: JSON nesting too deep");
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value(None{});
    case nlohmann::json::value_t::boolean: return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      LUMEN_CHECK(u <= static_cast<uint64_t>(INT64_MAX), "template context: integer ", u, " does not fit in 64 bits");
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value(j.template get<double>());
    case nlohmann::json::value_t::string: return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      for (const auto& e : j) items.push_back(from_json_impl(e, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict items;
      for (auto it = j.begin(); it != j.end(); ++it) items.emplace_back(Value(it.key()), from_json_impl(it.value(), depth + 1));
      return Value::dict(std::move(items));
    }
    default: fail("template context: unsupported JSON value (binary data)");
  }
}

}  // namespace

std::string py_json_dumps(const Value& v, const JsonDumpOptions& opt) {
  std::string out;
  json_dump(out, v, opt, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_impl(j, 0); }
Value from_json(const nlohmann::json& j) { return from_json_impl(j, 0); }

}  // namespace lumen::text::jinja

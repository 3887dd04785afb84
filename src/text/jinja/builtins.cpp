#include "text/jinja/builtins.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "text/unicode.h"

namespace lumen::text::jinja {
namespace {

// ---- Python str helpers (code point based, like Python) ----

std::u32string chars_of(const std::string& s) { return decode_utf8(s); }

bool is_cased_upper(char32_t c) { return (category_mask(c) & (U_GC_LU_MASK | U_GC_LT_MASK)) != 0; }
bool is_cased_lower(char32_t c) { return (category_mask(c) & U_GC_LL_MASK) != 0; }
bool is_cased(char32_t c) { return is_cased_upper(c) || is_cased_lower(c); }

// Python's full titlecase mapping of one character (str.title, str.capitalize): ICU's simple
// titlecase plus the unconditional multi-character titlecase mappings of SpecialCasing.txt
// for Latin and Armenian (the Greek iota-subscript ones are left to the simple mapping).
void titlecase_char(char32_t c, std::u32string& out) {
  switch (c) {
    case 0x00DF: out += U"Ss"; return;
    case 0xFB00: out += U"Ff"; return;
    case 0xFB01: out += U"Fi"; return;
    case 0xFB02: out += U"Fl"; return;
    case 0xFB03: out += U"Ffi"; return;
    case 0xFB04: out += U"Ffl"; return;
    case 0xFB05:
    case 0xFB06: out += U"St"; return;
    case 0x0149: out += U"\u02BCN"; return;
    case 0x01F0: out += U"J\u030C"; return;
    case 0x0587: out += U"\u0535\u0582"; return;
    case 0xFB13: out += U"\u0544\u0576"; return;
    case 0xFB14: out += U"\u0544\u0565"; return;
    case 0xFB15: out += U"\u0544\u056B"; return;
    case 0xFB16: out += U"\u054E\u0576"; return;
    case 0xFB17: out += U"\u0544\u056D"; return;
    default: out += static_cast<char32_t>(u_totitle(static_cast<UChar32>(c)));
  }
}

std::string py_lower(const std::string& s) {
  std::u32string out;
  for (char32_t c : chars_of(s)) lowercase_char(c, out);
  return to_utf8(out);
}
std::string py_upper(const std::string& s) {
  std::u32string out;
  for (char32_t c : chars_of(s)) uppercase_char(c, out);
  return to_utf8(out);
}
// str.capitalize(): first character upper (title) case, the rest lower case.
std::string py_capitalize(const std::string& s) {
  const std::u32string cs = chars_of(s);
  std::u32string out;
  for (size_t i = 0; i < cs.size(); ++i) (i == 0 ? titlecase_char : lowercase_char)(cs[i], out);
  return to_utf8(out);
}
// str.title(): a cased character after a cased one is lowered, any other is uppered.
std::string py_title_method(const std::string& s) {
  std::u32string out;
  bool prev_cased = false;
  for (char32_t c : chars_of(s)) {
    (prev_cased ? lowercase_char : titlecase_char)(c, out);
    prev_cased = is_cased(c);
  }
  return to_utf8(out);
}
// jinja2's title filter: words start after runs of `-`, whitespace, `(`, `{`, `[`, `<`.
std::string jinja_title(const std::string& s) {
  std::u32string out;
  bool word_start = true;
  for (char32_t c : chars_of(s)) {
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_python_space(c);
    if (sep) {
      out += c;
      word_start = true;
    } else {
      (word_start ? uppercase_char : lowercase_char)(c, out);
      word_start = false;
    }
  }
  return to_utf8(out);
}

// str.strip/lstrip/rstrip: `chars` absent strips whitespace (str.isspace()).
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  const std::u32string cs = chars_of(s);
  std::u32string set;
  const bool by_set = chars && !chars->is_none() && !chars->is_undefined();
  if (by_set) {
    LUMEN_CHECK(chars->is_string(), "strip arg must be None or str");
    set = chars_of(chars->as_string());
  }
  auto strip_it = [&](char32_t c) { return by_set ? set.find(c) != std::u32string::npos : is_python_space(c); };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_it(cs[b])) ++b;
  if (right)
    while (e > b && strip_it(cs[e - 1])) --e;
  return to_utf8(cs.substr(b, e - b));
}

// str.split / str.rsplit.
std::vector<std::string> py_split(const std::string& s, const Value* sep_v, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (!sep_v || sep_v->is_none()) {
    // Runs of whitespace separate; leading/trailing whitespace gives no empty parts.
    const std::u32string cs = chars_of(s);
    std::vector<std::u32string> words;
    if (!from_right) {
      size_t i = 0;
      while (i < cs.size()) {
        while (i < cs.size() && is_python_space(cs[i])) ++i;
        if (i >= cs.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          size_t e = cs.size();
          while (e > i && is_python_space(cs[e - 1])) --e;
          words.push_back(cs.substr(i, e - i));
          break;
        }
        size_t j = i;
        while (j < cs.size() && !is_python_space(cs[j])) ++j;
        words.push_back(cs.substr(i, j - i));
        i = j;
      }
    } else {
      size_t i = cs.size();
      while (i > 0) {
        while (i > 0 && is_python_space(cs[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          size_t b = 0;
          while (b < i && is_python_space(cs[b])) ++b;
          words.push_back(cs.substr(b, i - b));
          break;
        }
        size_t j = i;
        while (j > 0 && !is_python_space(cs[j - 1])) --j;
        words.push_back(cs.substr(j, i - j));
        i = j;
      }
      std::reverse(words.begin(), words.end());
    }
    for (auto& w : words) parts.push_back(to_utf8(w));
    return parts;
  }
  LUMEN_CHECK(sep_v->is_string(), "must be str or None, not ", sep_v->type_name());
  const std::string& sep = sep_v->as_string();
  LUMEN_CHECK(!sep.empty(), "empty separator");
  if (!from_right) {
    size_t start = 0;
    while (true) {
      const size_t at = (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) ? std::string::npos
                                                                                            : s.find(sep, start);
      if (at == std::string::npos) {
        parts.push_back(s.substr(start));
        break;
      }
      parts.push_back(s.substr(start, at - start));
      start = at + sep.size();
    }
  } else {
    size_t end = s.size();
    while (true) {
      size_t at = std::string::npos;
      if (!(maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) && end >= sep.size())
        at = s.rfind(sep, end - sep.size());
      if (at == std::string::npos) {
        parts.push_back(s.substr(0, end));
        break;
      }
      parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
      end = at;
    }
    std::reverse(parts.begin(), parts.end());
  }
  return parts;
}

// str.splitlines(): Python's line boundaries, terminators dropped.
std::vector<std::string> py_splitlines(const std::string& s) {
  const std::u32string cs = chars_of(s);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    const char32_t c = cs[i];
    const bool boundary = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                          c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) continue;
    lines.push_back(to_utf8(cs.substr(start, i - start)));
    if (c == '\r' && i + 1 < cs.size() && cs[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < cs.size()) lines.push_back(to_utf8(cs.substr(start)));
  return lines;
}

// str.replace(old, new[, count]), checking the size of the result as it grows.
std::string py_replace(Interpreter& in, const std::string& s, const std::string& from, const std::string& to,
                       int64_t count) {
  std::string out;
  int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end.
    const std::u32string cs = chars_of(s);
    for (char32_t c : cs) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      append_utf8(out, c);
      in.check_size(out.size());
    }
    if (count < 0 || done < count) out += to;
    in.check_size(out.size());
    return out;
  }
  size_t start = 0;
  while (true) {
    const size_t at = (count >= 0 && done >= count) ? std::string::npos : s.find(from, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += to;
    in.check_size(out.size());
    start = at + from.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  in.check_size(out.size());
  return out;
}

int64_t count_substr(const std::string& s, const std::string& sub) {
  if (sub.empty()) return static_cast<int64_t>(count_chars(s)) + 1;
  int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
  return n;
}

// Character index (not byte) of a byte offset, for str.find.
int64_t char_index(const std::string& s, size_t byte) {
  return static_cast<int64_t>(count_chars(std::string_view(s).substr(0, byte)));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

const Value& str_arg(const CallArgs& a, size_t i, const char* name, const char* fn) {
  const Value* v = a.get(i, name);
  LUMEN_CHECK(v, fn, "() missing required argument '", name, "'");
  LUMEN_CHECK(v->is_string(), fn, "() argument '", name, "' must be str, not ", v->type_name());
  return *v;
}

int64_t int_arg(const CallArgs& a, size_t i, const char* name, int64_t fallback, const char* fn) {
  const Value* v = a.get(i, name);
  if (!v || v->is_none()) return fallback;
  LUMEN_CHECK(v->is_int() || v->is_bool(), fn, "() argument '", name, "' must be an integer, not ", v->type_name());
  return v->as_int();
}

// Python str.format with automatic or numbered or named fields and no format specs.
std::string py_format(Interpreter& in, const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      const size_t close = fmt.find('}', i);
      LUMEN_CHECK(close != std::string::npos, "str.format: single '{' encountered in format string");
      const std::string field = fmt.substr(i + 1, close - i - 1);
      LUMEN_CHECK(field.find_first_of(":!.[") == std::string::npos, "str.format: field '{", field,
                  "}' uses a conversion, format spec or lookup, which lumen does not support");
      const Value* v = nullptr;
      if (field.empty()) {
        LUMEN_CHECK(auto_index < a.args.size(), "str.format: replacement index ", auto_index, " out of range");
        v = &a.args[auto_index++];
      } else if (field.size() < 10 && std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
        const size_t k = std::strtoul(field.c_str(), nullptr, 10);
        LUMEN_CHECK(k < a.args.size(), "str.format: replacement index ", k, " out of range");
        v = &a.args[k];
      } else {
        for (const auto& [name, val] : a.kwargs)
          if (name == field) v = &val;
        LUMEN_CHECK(v, "str.format: no argument named '", field, "'");
      }
      out += py_str(*v, in.limits().max_output_bytes);
      in.check_size(out.size());
      i = close;
    } else if (c == '}') {
      fail("str.format: single '}' encountered in format string");
    } else {
      out += c;
    }
  }
  return out;
}

// printf-style formatting for the `format` filter: %s %r %d %i %f %%.
std::string percent_format(Interpreter& in, const std::string& fmt, const std::vector<Value>& args) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    LUMEN_CHECK(i + 1 < fmt.size(), "format: incomplete format");
    size_t j = i + 1;
    int precision = -1;
    if (fmt[j] == '.') {
      precision = 0;
      for (++j; j < fmt.size() && fmt[j] >= '0' && fmt[j] <= '9'; ++j) precision = std::min(precision * 10 + (fmt[j] - '0'), 100);
    }
    LUMEN_CHECK(j < fmt.size(), "format: incomplete format");
    const char conv = fmt[j];
    i = j;
    if (conv == '%') {
      out += '%';
      continue;
    }
    LUMEN_CHECK(next < args.size(), "format: not enough arguments for format string");
    const Value& v = args[next++];
    switch (conv) {
      case 's': out += py_str(v, in.limits().max_output_bytes); break;
      case 'r': out += py_repr(v, in.limits().max_output_bytes); break;
      case 'd':
      case 'i':
        LUMEN_CHECK(v.is_number(), "format: %", conv, " format: a number is required, not ", v.type_name());
        out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_float()) : v.as_int());
        break;
      case 'f': {
        LUMEN_CHECK(v.is_number(), "format: %f format: a number is required, not ", v.type_name());
        char buf[512];
        std::snprintf(buf, sizeof buf, "%.*f", precision < 0 ? 6 : precision, v.as_float());
        out += buf;
        break;
      }
      default: fail("format: conversion '%", conv, "' is not supported");
    }
    in.check_size(out.size());
  }
  LUMEN_CHECK(next == args.size(), "format: not all arguments converted during string formatting");
  return out;
}

std::string to_s(Interpreter& in, const Value& v) { return py_str(v, in.limits().max_output_bytes); }

int64_t py_len(Interpreter& in, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(count_chars(v.as_string()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.as_dict().size());
    default: fail("object of type '", v.type_name(), "' has no len()");
  }
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0, each with getitem.
Value attr_path(Interpreter& in, const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && part.size() < 19 &&
                         std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = in.get_item(v, numeric ? Value(static_cast<int64_t>(std::strtoll(part.c_str(), nullptr, 10))) : Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// Sort key: lower-cased strings unless case_sensitive (jinja2's ignore_case).
Value fold_case(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower(v.as_string()));
  return v;
}

void sort_values(std::vector<Value>& items, std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Python's sort is stable; reverse=True keeps equal items in their original order too.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? py_less(keys[b], keys[a]) : py_less(keys[a], keys[b]);
  });
  std::vector<Value> sorted;
  sorted.reserve(items.size());
  for (size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
}

// select/reject/selectattr/rejectattr: args after the attribute are a test name and its args.
Value select_impl(Interpreter& in, const Value& seq, CallArgs& a, bool by_attr, bool keep_when) {
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    LUMEN_CHECK(!a.args.empty() && a.args[0].is_string(), "selectattr/rejectattr need an attribute name");
    attr = a.args[0].as_string();
    next = 1;
  }
  std::string test_name;
  CallArgs test_args;
  if (next < a.args.size()) {
    LUMEN_CHECK(a.args[next].is_string(), "select: the test name must be a string");
    test_name = a.args[next].as_string();
    LUMEN_CHECK(has_test(test_name), "no test named '", test_name, "'");
    test_args.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(next + 1), a.args.end());
    test_args.kwargs = a.kwargs;
  }
  List out;
  for (const Value& item : in.iterate(seq)) {
    in.step();
    const Value subject = by_attr ? attr_path(in, item, attr) : item;
    const bool passed = test_name.empty() ? subject.truthy() : in.test(test_name, subject, test_args);
    if (passed == keep_when) out.push_back(item);
  }
  return Value::list(std::move(out));
}

// ---- filters ----

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);

Value f_tojson(Interpreter& in, const Value& v, CallArgs& a) {
  // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  a.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions opt;
  opt.max_bytes = in.limits().max_output_bytes;
  opt.ensure_ascii = a.get_or(0, "ensure_ascii", Value(false)).truthy();
  const Value indent = a.get_or(1, "indent", Value(None{}));
  if (indent.is_string()) {
    opt.indent_str = indent.as_string();
  } else if (!indent.is_none()) {
    LUMEN_CHECK(indent.is_int() || indent.is_bool(), "tojson: indent must be an int, a string or None");
    const int64_t n = indent.as_int();
    opt.indent = static_cast<int>(std::clamp<int64_t>(n, 0, 1 << 16));
    if (n < 0) opt.indent_str = "";  // Python indents negative values by "" (newlines only)
  }
  const Value seps = a.get_or(2, "separators", Value(None{}));
  if (!seps.is_none()) {
    LUMEN_CHECK(seps.is_sequence() && seps.as_list().size() == 2 && seps.as_list()[0].is_string() &&
                    seps.as_list()[1].is_string(),
                "tojson: separators must be a pair of strings");
    opt.separators = std::make_pair(seps.as_list()[0].as_string(), seps.as_list()[1].as_string());
  }
  opt.sort_keys = a.get_or(3, "sort_keys", Value(false)).truthy();
  return Value(py_json_dumps(v, opt));
}

Value f_trim(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("trim", 1, {"chars"});
  return Value(py_strip(to_s(in, v), a.get(0, "chars"), true, true));
}
Value f_length(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("length", 0, {});
  return Value(py_len(in, v));
}
Value f_lower(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("lower", 0, {});
  return Value(py_lower(to_s(in, v)));
}
Value f_upper(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("upper", 0, {});
  return Value(py_upper(to_s(in, v)));
}
Value f_title(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("title", 0, {});
  return Value(jinja_title(to_s(in, v)));
}
Value f_capitalize(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("capitalize", 0, {});
  return Value(py_capitalize(to_s(in, v)));
}
Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("replace", 3, {"old", "new", "count"});
  const std::string& from = str_arg(a, 0, "old", "replace").as_string();
  const std::string& to = str_arg(a, 1, "new", "replace").as_string();
  return Value(py_replace(in, to_s(in, v), from, to, int_arg(a, 2, "count", -1, "replace")));
}
Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("join", 2, {"d", "attribute"});
  const Value sep = a.get_or(0, "d", Value(""));
  const Value* attr = a.get(1, "attribute");
  const std::string sep_s = to_s(in, sep);
  std::string out;
  bool first = true;
  for (const Value& item : in.iterate(v)) {
    in.step();
    if (!first) out += sep_s;
    first = false;
    out += to_s(in, attr && !attr->is_none() ? attr_path(in, item, to_s(in, *attr)) : item);
    in.check_size(out.size());
  }
  return Value(std::move(out));
}
Value f_first(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("first", 0, {});
  if (v.is_sequence()) return v.as_list().empty() ? Value::undefined("No first item, sequence was empty.") : v.as_list()[0];
  const std::vector<Value> items = in.iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items[0];
}
Value f_last(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("last", 0, {});
  if (v.is_sequence()) return v.as_list().empty() ? Value::undefined("No last item, sequence was empty.") : v.as_list().back();
  const std::vector<Value> items = in.iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}
Value f_default(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("default", 2, {"default_value", "boolean"});
  const bool boolean = a.get_or(1, "boolean", Value(false)).truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return a.get_or(0, "default_value", Value(""));
  return v;
}
Value f_list(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("list", 0, {});
  return Value::list(in.iterate(v));
}
Value f_string(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("string", 0, {});
  return Value(to_s(in, v));
}
Value f_safe(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("safe", 0, {});
  return Value(to_s(in, v));
}
Value f_escape(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("escape", 0, {});
  return Value(html_escape(to_s(in, v)));
}

// Python int("...") after jinja2's int filter: base prefixes and underscores allowed.
std::optional<int64_t> parse_int(std::string s, int base) {
  s = py_strip(s, nullptr, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, base);
  if (errno || *end || end == s.c_str()) return std::nullopt;
  return v;
}
std::optional<double> parse_float(std::string s) {
  s = py_strip(s, nullptr, true, true);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end || end == s.c_str()) return std::nullopt;
  return v;
}

Value f_int(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("int", 2, {"default", "base"});
  const Value fallback = a.get_or(0, "default", Value(0));
  const int64_t base = int_arg(a, 1, "base", 10, "int");
  LUMEN_CHECK(base >= 2 && base <= 36, "int: base must be in 2..36");
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    const double f = v.as_float();
    if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) return fallback;
    return Value(static_cast<int64_t>(f));
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.as_string(), static_cast<int>(base))) return Value(*i);
    if (auto f = parse_float(v.as_string()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18)
      return Value(static_cast<int64_t>(*f));
  }
  return fallback;
}
Value f_float(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("float", 1, {"default"});
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string())
    if (auto f = parse_float(v.as_string())) return Value(*f);
  return a.get_or(0, "default", Value(0.0));
}
Value f_abs(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("abs", 0, {});
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  LUMEN_CHECK(v.is_int() || v.is_bool(), "bad operand type for abs(): '", v.type_name(), "'");
  LUMEN_CHECK(v.as_int() != INT64_MIN, "integer overflow in abs()");
  return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
}
Value f_round(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("round", 2, {"precision", "method"});
  const int64_t precision = std::clamp<int64_t>(int_arg(a, 0, "precision", 0, "round"), -300, 300);
  const std::string method = to_s(in, a.get_or(1, "method", Value("common")));
  LUMEN_CHECK(v.is_number(), "round: a number is required, not ", v.type_name());
  LUMEN_CHECK(method == "common" || method == "floor" || method == "ceil", "round: method must be common, ceil or floor");
  if (method == "common") {
    // Python's round(): ints stay ints; floats round half to even on their exact value.
    if (!v.is_float()) return Value(v.as_int());
    const double x = v.as_float();
    if (!std::isfinite(x)) return Value(x);
    if (precision < 0) {
      const double scale = std::pow(10.0, static_cast<double>(-precision));
      return Value(std::nearbyint(x / scale) * scale);
    }
    char buf[700];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
    return Value(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double scaled = v.as_float() * scale;
  return Value((method == "floor" ? std::floor(scaled) : std::ceil(scaled)) / scale);
}
Value f_items(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("items", 0, {});
  if (v.is_undefined()) return Value::list({});
  LUMEN_CHECK(v.is_dict(), "Can only get item pairs from a mapping.");
  List out;
  for (const auto& [k, val] : v.as_dict()) out.push_back(Value::tuple({k, val}));
  return Value::list(std::move(out));
}
Value f_dictsort(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("dictsort", 3, {"case_sensitive", "by", "reverse"});
  LUMEN_CHECK(v.is_dict(), "dictsort: a mapping is required, not ", v.type_name());
  const bool case_sensitive = a.get_or(0, "case_sensitive", Value(false)).truthy();
  const std::string by = to_s(in, a.get_or(1, "by", Value("key")));
  LUMEN_CHECK(by == "key" || by == "value", "You can only sort by either 'key' or 'value'");
  const bool reverse = a.get_or(2, "reverse", Value(false)).truthy();
  List items, keys;
  for (const auto& [k, val] : v.as_dict()) {
    items.push_back(Value::tuple({k, val}));
    keys.push_back(fold_case(by == "key" ? k : val, case_sensitive));
  }
  sort_values(items, keys, reverse);
  return Value::list(std::move(items));
}
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, false); }
Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, true); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, false); }
Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  List out;
  const Value* attribute = nullptr;
  for (const auto& [k, val] : a.kwargs)
    if (k == "attribute") attribute = &val;
  if (attribute) {
    a.check("map", 0, {"attribute", "default"});
    const Value* fallback = a.get(99, "default");
    for (const Value& item : in.iterate(v)) {
      in.step();
      Value got = attr_path(in, item, to_s(in, *attribute));
      if (got.is_undefined() && fallback) got = *fallback;
      out.push_back(std::move(got));
    }
    return Value::list(std::move(out));
  }
  LUMEN_CHECK(!a.args.empty() && a.args[0].is_string(), "map: give a filter name or attribute=");
  const std::string name = a.args[0].as_string();
  LUMEN_CHECK(has_filter(name), "no filter named '", name, "'");
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (const Value& item : in.iterate(v)) {
    in.step();
    CallArgs copy = rest;
    out.push_back(in.filter(name, item, copy));
  }
  return Value::list(std::move(out));
}
Value f_attr(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("attr", 1, {"name"});
  const std::string& name = str_arg(a, 0, "name", "attr").as_string();
  // jinja2's attr filter looks up Python attributes only, never dict items.
  if (v.is_namespace()) return in.get_attr(v, name);
  if (auto m = method_of(v, name)) return *m;
  std::string hint = "'";
  hint += v.type_name();
  hint += " object' has no attribute '" + name + "'";
  return Value::undefined(hint);
}
Value f_indent(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("indent", 3, {"width", "first", "blank"});
  const Value width = a.get_or(0, "width", Value(4));
  std::string indention;
  if (width.is_string()) {
    indention = width.as_string();
  } else {
    LUMEN_CHECK(width.is_int() || width.is_bool(), "indent: width must be an int or a string");
    const int64_t w = width.as_int();
    in.check_size(static_cast<size_t>(std::max<int64_t>(w, 0)));
    indention.assign(static_cast<size_t>(std::max<int64_t>(w, 0)), ' ');
  }
  const bool first = a.get_or(1, "first", Value(false)).truthy();
  const bool blank = a.get_or(2, "blank", Value(false)).truthy();
  // jinja2 appends a newline first so splitlines() keeps a trailing empty line.
  const std::vector<std::string> lines = py_splitlines(to_s(in, v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
    in.check_size(out.size());
  }
  if (first) out = indention + out;
  in.check_size(out.size());
  return Value(std::move(out));
}
Value f_center(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("center", 1, {"width"});
  const std::string s = to_s(in, v);
  const int64_t width = int_arg(a, 0, "width", 80, "center");
  const int64_t len = static_cast<int64_t>(count_chars(s));
  if (width <= len) return Value(s);
  in.check_size(static_cast<size_t>(width) + s.size());
  // Python's str.center puts the extra space on the left when the margin is odd and the
  // width is odd.
  const int64_t marg = width - len;
  const int64_t left = marg / 2 + (marg & width & 1);
  return Value(std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(marg - left), ' '));
}
Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("unique", 2, {"case_sensitive", "attribute"});
  const bool case_sensitive = a.get_or(0, "case_sensitive", Value(false)).truthy();
  const Value* attr = a.get(1, "attribute");
  List out, seen;
  for (const Value& item : in.iterate(v)) {
    in.step();
    const Value key = fold_case(attr && !attr->is_none() ? attr_path(in, item, to_s(in, *attr)) : item, case_sensitive);
    bool dup = false;
    for (const Value& s : seen) {
      in.step();
      if (py_equal(s, key)) {
        dup = true;
        break;
      }
    }
    if (dup) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::list(std::move(out));
}
Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("sort", 3, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a.get_or(0, "reverse", Value(false)).truthy();
  const bool case_sensitive = a.get_or(1, "case_sensitive", Value(false)).truthy();
  const Value* attr = a.get(2, "attribute");
  List items = in.iterate(v), keys;
  for (const Value& item : items)
    keys.push_back(fold_case(attr && !attr->is_none() ? attr_path(in, item, to_s(in, *attr)) : item, case_sensitive));
  sort_values(items, keys, reverse);
  return Value::list(std::move(items));
}
Value f_reverse(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("reverse", 0, {});
  if (v.is_string()) {
    std::u32string cs = chars_of(v.as_string());
    std::reverse(cs.begin(), cs.end());
    return Value(to_utf8(cs));
  }
  List items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}
Value min_max(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  a.check(want_max ? "max" : "min", 2, {"case_sensitive", "attribute"});
  const bool case_sensitive = a.get_or(0, "case_sensitive", Value(false)).truthy();
  const Value* attr = a.get(1, "attribute");
  const List items = in.iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items.size(); ++i) {
    in.step();
    Value key = fold_case(attr && !attr->is_none() ? attr_path(in, items[i], to_s(in, *attr)) : items[i], case_sensitive);
    if (i == 0 || (want_max ? py_less(best_key, key) : py_less(key, best_key))) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}
Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }
Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("sum", 2, {"attribute", "start"});
  const Value* attr = a.get(0, "attribute");
  Value total = a.get_or(1, "start", Value(0));
  for (const Value& item : in.iterate(v)) {
    in.step();
    const Value x = attr && !attr->is_none() ? attr_path(in, item, to_s(in, *attr)) : item;
    LUMEN_CHECK(total.is_number() && x.is_number(), "unsupported operand type(s) for +: '", total.type_name(), "' and '",
                x.type_name(), "'");
    if (total.is_float() || x.is_float()) {
      total = Value(total.as_float() + x.as_float());
    } else {
      int64_t r;
      LUMEN_CHECK(!__builtin_add_overflow(total.as_int(), x.as_int(), &r), "integer overflow in sum");
      total = Value(r);
    }
  }
  return total;
}
Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("batch", 2, {"linecount", "fill_with"});
  const int64_t n = int_arg(a, 0, "linecount", 0, "batch");
  LUMEN_CHECK(n > 0, "batch: linecount must be positive");
  const Value* fill = a.get(1, "fill_with");
  List out, cur;
  for (const Value& item : in.iterate(v)) {
    in.step();
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (fill && !fill->is_none())
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}
Value f_format(Interpreter& in, const Value& v, CallArgs& a) {
  LUMEN_CHECK(a.kwargs.empty(), "format: keyword arguments are not supported");
  return Value(percent_format(in, to_s(in, v), a.args));
}
Value f_wordcount(Interpreter& in, const Value& v, CallArgs& a) {
  a.check("wordcount", 0, {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : chars_of(to_s(in, v))) {
    const bool w = is_word_char(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> table = {
      {"abs", f_abs},         {"attr", f_attr},           {"batch", f_batch},       {"capitalize", f_capitalize},
      {"center", f_center},   {"count", f_length},        {"d", f_default},         {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},          {"escape", f_escape},     {"first", f_first},
      {"float", f_float},     {"format", f_format},       {"indent", f_indent},     {"int", f_int},
      {"items", f_items},     {"join", f_join},           {"last", f_last},         {"length", f_length},
      {"list", f_list},       {"lower", f_lower},         {"map", f_map},           {"max", f_max},
      {"min", f_min},         {"reject", f_reject},       {"rejectattr", f_rejectattr}, {"replace", f_replace},
      {"reverse", f_reverse}, {"round", f_round},         {"safe", f_safe},         {"select", f_select},
      {"selectattr", f_selectattr}, {"sort", f_sort},     {"string", f_string},     {"sum", f_sum},
      {"title", f_title},     {"tojson", f_tojson},       {"trim", f_trim},         {"unique", f_unique},
      {"upper", f_upper},     {"wordcount", f_wordcount},
  };
  return table;
}

// ---- tests ----

using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

const Value& test_arg(const CallArgs& a, const char* test) {
  LUMEN_CHECK(!a.args.empty(), "test '", test, "' needs an argument");
  return a.args[0];
}
bool compare_test(const Value& v, const Value& other, const std::string& op) {
  if (op == "eq") return py_equal(v, other);
  if (op == "ne") return !py_equal(v, other);
  if (op == "lt") return py_less(v, other);
  if (op == "gt") return py_less(other, v);
  if (op == "le") return !py_less(other, v);
  return !py_less(v, other);
}
bool contains(const Value& container, const Value& item);

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> table = {
      {"defined", [](Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }},
      {"none", [](Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }},
      {"boolean", [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }},
      {"true", [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }},
      {"float", [](Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }},
      {"number", [](Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }},
      {"string", [](Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }},
      {"mapping", [](Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }},
      // Python: anything with len() and __getitem__ (dicts included).
      {"sequence",
       [](Interpreter&, const Value& v, CallArgs&) { return v.is_string() || v.is_sequence() || v.is_dict(); }},
      // jinja2's Undefined defines __iter__, so it counts as iterable.
      {"iterable",
       [](Interpreter&, const Value& v, CallArgs&) {
         return v.is_string() || v.is_sequence() || v.is_dict() || v.is_undefined();
       }},
      {"callable", [](Interpreter&, const Value& v, CallArgs&) { return v.is_callable(); }},
      {"odd",
       [](Interpreter&, const Value& v, CallArgs&) {
         LUMEN_CHECK(v.is_int() || v.is_bool(), "test 'odd' needs an integer, not ", v.type_name());
         return (v.as_int() % 2) != 0;
       }},
      {"even",
       [](Interpreter&, const Value& v, CallArgs&) {
         LUMEN_CHECK(v.is_int() || v.is_bool(), "test 'even' needs an integer, not ", v.type_name());
         return (v.as_int() % 2) == 0;
       }},
      {"divisibleby",
       [](Interpreter&, const Value& v, CallArgs& a) {
         const Value& n = test_arg(a, "divisibleby");
         LUMEN_CHECK((v.is_int() || v.is_bool()) && (n.is_int() || n.is_bool()), "test 'divisibleby' needs integers");
         LUMEN_CHECK(n.as_int() != 0, "integer division or modulo by zero");
         return n.as_int() == -1 || v.as_int() % n.as_int() == 0;
       }},
      {"lower",
       [](Interpreter& in, const Value& v, CallArgs&) {
         const std::string s = to_s(in, v);
         return py_lower(s) == s && py_upper(s) != s;
       }},
      {"upper",
       [](Interpreter& in, const Value& v, CallArgs&) {
         const std::string s = to_s(in, v);
         return py_upper(s) == s && py_lower(s) != s;
       }},
      {"in", [](Interpreter&, const Value& v, CallArgs& a) { return contains(test_arg(a, "in"), v); }},
      {"sameas",
       [](Interpreter&, const Value& v, CallArgs& a) {
         const Value& o = test_arg(a, "sameas");
         if (v.kind() != o.kind()) return false;
         if (v.is_sequence() || v.is_dict())
           return v.is_dict() ? &v.as_dict() == &o.as_dict() : &v.as_list() == &o.as_list();
         return py_equal(v, o);
       }},
      {"escaped", [](Interpreter&, const Value&, CallArgs&) { return false; }},
      {"filter",
       [](Interpreter&, const Value& v, CallArgs&) { return v.is_string() && has_filter(v.as_string()); }},
      {"test", [](Interpreter&, const Value& v, CallArgs&) { return v.is_string() && has_test(v.as_string()); }},
  };
  return table;
}

// Comparison tests under all of jinja2's spellings.
const std::map<std::string, std::string>& compare_tests() {
  static const std::map<std::string, std::string> table = {
      {"eq", "eq"}, {"equalto", "eq"}, {"==", "eq"}, {"ne", "ne"},         {"!=", "ne"},
      {"lt", "lt"}, {"lessthan", "lt"}, {"<", "lt"}, {"gt", "gt"},         {"greaterthan", "gt"},
      {">", "gt"},  {"le", "le"},       {"<=", "le"}, {"ge", "ge"},        {">=", "ge"},
  };
  return table;
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      LUMEN_CHECK(item.is_string(), "'in <string>' requires string as left operand, not ", item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (const Value& e : container.as_list())
        if (py_equal(e, item)) return true;
      return false;
    case Value::Kind::kDict: return container.find(item) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: fail("argument of type '", container.type_name(), "' is not iterable");
  }
}

// ---- methods ----

Value bound(const std::string& name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  return Value::callable(name, std::move(fn));
}

std::optional<Value> str_method(const std::string& s, const std::string& name) {
  using A = CallArgs;
  using I = Interpreter;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip", right = name != "lstrip";
    return bound(name, [s, name, left, right](I&, A& a) {
      a.check(name.c_str(), 1, {"chars"});
      return Value(py_strip(s, a.get(0, "chars"), left, right));
    });
  }
  if (name == "split" || name == "rsplit") {
    return bound(name, [s, name](I&, A& a) {
      a.check(name.c_str(), 2, {"sep", "maxsplit"});
      List out;
      for (auto& p : py_split(s, a.get(0, "sep"), int_arg(a, 1, "maxsplit", -1, name.c_str()), name == "rsplit"))
        out.emplace_back(std::move(p));
      return Value::list(std::move(out));
    });
  }
  if (name == "splitlines") {
    return bound(name, [s](I&, A& a) {
      a.check("splitlines", 0, {});
      List out;
      for (auto& p : py_splitlines(s)) out.emplace_back(std::move(p));
      return Value::list(std::move(out));
    });
  }
  if (name == "startswith" || name == "endswith") {
    return bound(name, [s, name](I&, A& a) {
      a.check(name.c_str(), 1, {});
      LUMEN_CHECK(!a.args.empty(), name, "() takes at least 1 argument");
      const Value& arg = a.args[0];
      std::vector<std::string> options;
      if (arg.is_string()) {
        options.push_back(arg.as_string());
      } else {
        LUMEN_CHECK(arg.is_tuple(), name, " first arg must be str or a tuple of str, not ", arg.type_name());
        for (const Value& o : arg.as_list()) {
          LUMEN_CHECK(o.is_string(), "tuple for ", name, " must only contain str, not ", o.type_name());
          options.push_back(o.as_string());
        }
      }
      for (const auto& o : options)
        if (name == "startswith" ? s.starts_with(o) : s.ends_with(o)) return Value(true);
      return Value(false);
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "swapcase") {
    return bound(name, [s, name](I&, A& a) {
      a.check(name.c_str(), 0, {});
      if (name == "upper") return Value(py_upper(s));
      if (name == "lower") return Value(py_lower(s));
      if (name == "title") return Value(py_title_method(s));
      if (name == "capitalize") return Value(py_capitalize(s));
      std::u32string out;
      for (char32_t c : chars_of(s)) (is_cased_upper(c) ? lowercase_char : uppercase_char)(c, out);
      return Value(to_utf8(out));
    });
  }
  if (name == "replace") {
    return bound(name, [s](I& in, A& a) {
      a.check("replace", 3, {"count"});
      return Value(py_replace(in, s, str_arg(a, 0, "old", "replace").as_string(), str_arg(a, 1, "new", "replace").as_string(),
                              int_arg(a, 2, "count", -1, "replace")));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    return bound(name, [s, name](I&, A& a) {
      a.check(name.c_str(), 1, {});
      const std::string& sub = str_arg(a, 0, "sub", name.c_str()).as_string();
      if (name == "count") return Value(count_substr(s, sub));
      const size_t at = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
      if (at == std::string::npos) {
        LUMEN_CHECK(name == "find" || name == "rfind", "substring not found");
        return Value(-1);
      }
      return Value(char_index(s, at));
    });
  }
  if (name == "join") {
    return bound(name, [s](I& in, A& a) {
      a.check("join", 1, {});
      LUMEN_CHECK(!a.args.empty(), "join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const Value& item : in.iterate(a.args[0])) {
        LUMEN_CHECK(item.is_string(), "sequence item: expected str instance, ", item.type_name(), " found");
        if (!first) out += s;
        first = false;
        out += item.as_string();
        in.check_size(out.size());
      }
      return Value(std::move(out));
    });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    return bound(name, [s, name](I&, A& a) {
      a.check(name.c_str(), 0, {});
      const std::u32string cs = chars_of(s);
      if (name == "isupper" || name == "islower") {
        bool any_cased = false;
        for (char32_t c : cs) {
          if (name == "isupper" ? is_cased_lower(c) : is_cased_upper(c)) return Value(false);
          any_cased = any_cased || is_cased(c);
        }
        return Value(any_cased);
      }
      if (cs.empty()) return Value(false);
      for (char32_t c : cs) {
        const bool ok = name == "isdigit"   ? (category_mask(c) & U_GC_ND_MASK) != 0
                        : name == "isalpha" ? is_letter(c)
                        : name == "isalnum" ? is_letter(c) || is_number(c)
                                            : is_python_space(c);
        if (!ok) return Value(false);
      }
      return Value(true);
    });
  }
  if (name == "format") {
    return bound(name, [s](I& in, A& a) { return Value(py_format(in, s, a)); });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    return bound(name, [s, name](I&, A& a) {
      a.check(name.c_str(), 1, {});
      const std::string& affix = str_arg(a, 0, "affix", name.c_str()).as_string();
      if (name == "removeprefix") return Value(s.starts_with(affix) ? s.substr(affix.size()) : s);
      return Value(s.ends_with(affix) ? s.substr(0, s.size() - affix.size()) : s);
    });
  }
  return std::nullopt;
}

std::optional<Value> dict_method(const Value& d, const std::string& name) {
  using A = CallArgs;
  using I = Interpreter;
  if (name == "items" || name == "keys" || name == "values") {
    return bound(name, [d, name](I&, A& a) {
      a.check(name.c_str(), 0, {});
      List out;
      for (const auto& [k, v] : d.as_dict())
        out.push_back(name == "items" ? Value::tuple({k, v}) : name == "keys" ? k : v);
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return bound(name, [d](I&, A& a) {
      a.check("get", 2, {});
      LUMEN_CHECK(!a.args.empty(), "get expected at least 1 argument, got 0");
      const Value* v = d.find(a.args[0]);
      return v ? *v : a.get_or(1, "default", Value(None{}));
    });
  }
  if (name == "copy") {
    return bound(name, [d](I&, A& a) {
      a.check("copy", 0, {});
      return d;
    });
  }
  return std::nullopt;
}

std::optional<Value> list_method(const Value& l, const std::string& name) {
  if (name == "count" || name == "index") {
    return bound(name, [l, name](Interpreter&, CallArgs& a) {
      a.check(name.c_str(), 1, {});
      LUMEN_CHECK(!a.args.empty(), name, "() takes exactly one argument");
      int64_t n = 0;
      const List& items = l.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (!py_equal(items[i], a.args[0])) continue;
        if (name == "index") return Value(static_cast<int64_t>(i));
        ++n;
      }
      LUMEN_CHECK(name == "count", "value is not in list");
      return Value(n);
    });
  }
  return std::nullopt;
}

// The mutating methods ImmutableSandboxedEnvironment refuses (jinja2/sandbox.py _mutable_spec).
bool is_mutating_method(const Value& v, const std::string& name) {
  static const std::set<std::string> list_ops = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"};
  static const std::set<std::string> dict_ops = {"clear", "pop", "popitem", "setdefault", "update"};
  if (v.is_list()) return list_ops.count(name) > 0;
  if (v.is_dict()) return dict_ops.count(name) > 0;
  return false;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) > 0; }
bool has_test(const std::string& name) { return tests().count(name) > 0 || compare_tests().count(name) > 0; }

Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  auto it = filters().find(name);
  LUMEN_CHECK(it != filters().end(), "no filter named '", name, "'");
  return it->second(in, input, args);
}

bool apply_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  if (auto c = compare_tests().find(name); c != compare_tests().end())
    return compare_test(input, test_arg(args, name.c_str()), c->second);
  auto it = tests().find(name);
  LUMEN_CHECK(it != tests().end(), "no test named '", name, "'");
  return it->second(in, input, args);
}

std::optional<Value> method_of(const Value& obj, const std::string& name) {
  if (is_mutating_method(obj, name))
    return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.");
  if (obj.is_string()) return str_method(obj.as_string(), name);
  if (obj.is_dict()) return dict_method(obj, name);
  if (obj.is_sequence()) return list_method(obj, name);
  return std::nullopt;
}

Dict make_globals() {
  Dict g;
  g.emplace_back(Value("range"), Value::callable("range", [](Interpreter& in, CallArgs& a) {
                   a.check("range", 3, {});
                   LUMEN_CHECK(!a.args.empty(), "range expected at least 1 argument, got 0");
                   for (const Value& v : a.args)
                     LUMEN_CHECK(v.is_int() || v.is_bool(), "'", v.type_name(), "' object cannot be interpreted as an integer");
                   int64_t start = 0, stop, step = 1;
                   if (a.args.size() == 1) {
                     stop = a.args[0].as_int();
                   } else {
                     start = a.args[0].as_int();
                     stop = a.args[1].as_int();
                     if (a.args.size() == 3) step = a.args[2].as_int();
                   }
                   LUMEN_CHECK(step != 0, "range() arg 3 must not be zero");
                   // jinja2's sandbox refuses ranges over MAX_RANGE items.
                   const double n = std::max(0.0, std::ceil((static_cast<double>(stop) - static_cast<double>(start)) /
                                                            static_cast<double>(step)));
                   LUMEN_CHECK(n <= 100000, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
                   List out;
                   for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
                     in.step();
                     out.emplace_back(i);
                     if (__builtin_add_overflow(i, step, &i)) break;  // the last item was near INT64 limits
                   }
                   return Value::list(std::move(out));
                 }));
  g.emplace_back(Value("namespace"), Value::callable("namespace", [](Interpreter&, CallArgs& a) {
                   Dict attrs;
                   auto set = [&](const Value& k, const Value& v) {
                     LUMEN_CHECK(!v.has_namespace(), "a namespace cannot hold another namespace");
                     for (auto& [ek, ev] : attrs)
                       if (py_equal(ek, k)) {
                         ev = v;
                         return;
                       }
                     attrs.emplace_back(k, v);
                   };
                   LUMEN_CHECK(a.args.size() <= 1, "namespace() takes at most one positional argument");
                   if (!a.args.empty()) {
                     LUMEN_CHECK(a.args[0].is_dict(), "namespace(): the positional argument must be a dict");
                     for (const auto& [k, v] : a.args[0].as_dict()) set(k, v);
                   }
                   for (const auto& [k, v] : a.kwargs) set(Value(k), v);
                   return Value::ns(std::move(attrs));
                 }));
  g.emplace_back(Value("dict"), Value::callable("dict", [](Interpreter&, CallArgs& a) {
                   Dict items;
                   LUMEN_CHECK(a.args.size() <= 1, "dict expected at most 1 argument");
                   if (!a.args.empty()) {
                     LUMEN_CHECK(a.args[0].is_dict(), "dict(): only a mapping is supported as positional argument");
                     items = a.args[0].as_dict();
                   }
                   for (const auto& [k, v] : a.kwargs) {
                     bool replaced = false;
                     for (auto& [ek, ev] : items)
                       if (ek.is_string() && ek.as_string() == k) {
                         ev = v;
                         replaced = true;
                       }
                     if (!replaced) items.emplace_back(Value(k), v);
                   }
                   return Value::dict(std::move(items));
                 }));
  g.emplace_back(Value("raise_exception"), Value::callable("raise_exception", [](Interpreter& in, CallArgs& a) -> Value {
                   a.check("raise_exception", 1, {"message"});
                   throw TemplateRaised(to_s(in, a.get_or(0, "message", Value(""))));
                 }));
  g.emplace_back(Value("strftime_now"), Value::callable("strftime_now", [](Interpreter&, CallArgs& a) {
                   a.check("strftime_now", 1, {"format"});
                   const std::string fmt = str_arg(a, 0, "format", "strftime_now").as_string();
                   const std::time_t now = std::time(nullptr);
                   std::tm local{};
                   localtime_r(&now, &local);
                   std::string buf(256 + fmt.size() * 16, '\0');
                   const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &local);
                   // 0 means empty output or a buffer too small; both print as "".
                   buf.resize(n);
                   return Value(std::move(buf));
                 }));
  return g;
}

}  // namespace lumen::text::jinja

#include "formats/json_config.h"

#include <cmath>

#include "core/mapped_file.h"

namespace lumen {

using nlohmann::json;

namespace {

// A JSON value shown in an error: short, and never throwing (dump() throws on invalid UTF-8
// and recurses on nesting, so structured values are named, not printed).
std::string brief(const json& v) {
  if (v.is_structured()) return v.is_object() ? "object" : "array";
  std::string s = std::string(v.type_name()) + " " + v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// An int64 from an integer or an integral float; nullopt when `v` is neither or out of range.
std::optional<int64_t> to_int64(const json& v) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    // [-2^63, 2^63) converts exactly; the range check comes first so the cast is never UB.
    if (std::isfinite(d) && d == std::trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

json JsonView::parse_text(const std::string& text, const std::string& label) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(label, ": not valid JSON: ", e.what());
  }
}

json JsonView::load_file(const std::string& path) { return parse_text(read_file(path), path); }

bool JsonView::has(const std::string& key) const {
  if (!j_->is_object()) return false;
  auto it = j_->find(key);
  return it != j_->end() && !it->is_null();
}

std::string JsonView::where() const { return path_.empty() ? file_ : file_ + ": " + path_; }

std::string JsonView::field(const std::string& key) const {
  return file_ + ": " + (path_.empty() ? key : path_ + "." + key);
}

const json& JsonView::at(const std::string& key) const {
  LUMEN_CHECK(j_->is_object(), where(), ": expected a JSON object, got ", brief(*j_));
  auto it = j_->find(key);
  LUMEN_CHECK(it != j_->end() && !it->is_null(), field(key), ": required field is missing");
  return *it;
}

JsonView JsonView::child(const std::string& key) const {
  const json& c = at(key);
  LUMEN_CHECK(c.is_object(), field(key), ": expected an object, got ", brief(c));
  return JsonView(&c, file_, path_.empty() ? key : path_ + "." + key);
}

std::optional<JsonView> JsonView::child_opt(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return child(key);
}

int64_t JsonView::get_int(const std::string& key) const {
  const json& v = at(key);
  if (auto i = to_int64(v)) return *i;
  fail(field(key), ": expected an integer, got ", brief(v));
}
int64_t JsonView::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

double JsonView::get_double(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_number(), field(key), ": expected a number, got ", brief(v));
  return v.get<double>();
}
double JsonView::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool JsonView::get_bool(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_boolean(), field(key), ": expected true or false, got ", brief(v));
  return v.get<bool>();
}
bool JsonView::get_bool(const std::string& key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }

std::string JsonView::get_string(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_string(), field(key), ": expected a string, got ", brief(v));
  return v.get<std::string>();
}
std::string JsonView::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<double> JsonView::get_doubles(const std::string& key) const {
  const json& v = at(key);
  if (v.is_number()) return {v.get<double>()};
  LUMEN_CHECK(v.is_array(), field(key), ": expected a list of numbers, got ", brief(v));
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) {
    LUMEN_CHECK(v[i].is_number(), field(key), "[", i, "]: expected a number, got ", brief(v[i]));
    out.push_back(v[i].get<double>());
  }
  return out;
}
std::vector<double> JsonView::get_doubles(const std::string& key, const std::vector<double>& fallback) const {
  return has(key) ? get_doubles(key) : fallback;
}

std::vector<int64_t> JsonView::get_ints(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_array(), field(key), ": expected a list of integers, got ", brief(v));
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i) {
    auto x = to_int64(v[i]);
    LUMEN_CHECK(x.has_value(), field(key), "[", i, "]: expected an integer, got ", brief(v[i]));
    out.push_back(*x);
  }
  return out;
}
std::vector<int64_t> JsonView::get_ints(const std::string& key, const std::vector<int64_t>& fallback) const {
  return has(key) ? get_ints(key) : fallback;
}

}  // namespace lumen

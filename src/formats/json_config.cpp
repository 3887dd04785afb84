#include "formats/json_config.h"

#include "core/mapped_file.h"

namespace lumen {

using nlohmann::json;

json JsonView::parse_text(const std::string& text, const std::string& label) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(label, ": not valid JSON: ", e.what());
  }
}

json JsonView::load_file(const std::string& path) { return parse_text(read_file(path), path); }

std::string JsonView::field(const std::string& key) const {
  auto colon = where_.find(": ");
  // where_ is "file" or "file: a.b"; fields append with '.'
  if (colon == std::string::npos) return where_ + ": " + key;
  return where_ + "." + key;
}

const json& JsonView::at(const std::string& key) const {
  LUMEN_CHECK(j_->is_object(), where_, ": expected a JSON object");
  LUMEN_CHECK(j_->contains(key) && !(*j_)[key].is_null(), field(key), ": required field is missing");
  return (*j_)[key];
}

JsonView JsonView::child(const std::string& key) const {
  const json& c = at(key);
  LUMEN_CHECK(c.is_object(), field(key), ": expected an object, got ", c.type_name());
  return JsonView(&c, field(key));
}

std::optional<JsonView> JsonView::child_opt(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return child(key);
}

int64_t JsonView::get_int(const std::string& key) const {
  const json& v = at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return static_cast<int64_t>(v.get<double>());
  fail(field(key), ": expected an integer, got ", v.type_name(), " ", v.dump());
}
int64_t JsonView::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

double JsonView::get_double(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_number(), field(key), ": expected a number, got ", v.type_name(), " ", v.dump());
  return v.get<double>();
}
double JsonView::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool JsonView::get_bool(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_boolean(), field(key), ": expected true or false, got ", v.type_name(), " ", v.dump());
  return v.get<bool>();
}
bool JsonView::get_bool(const std::string& key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }

std::string JsonView::get_string(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_string(), field(key), ": expected a string, got ", v.type_name(), " ", v.dump());
  return v.get<std::string>();
}
std::string JsonView::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<double> JsonView::get_doubles(const std::string& key) const {
  const json& v = at(key);
  std::vector<double> out;
  if (v.is_number()) return {v.get<double>()};
  LUMEN_CHECK(v.is_array(), field(key), ": expected a list of numbers, got ", v.type_name());
  for (const auto& x : v) {
    LUMEN_CHECK(x.is_number(), field(key), ": expected a list of numbers, found ", x.dump());
    out.push_back(x.get<double>());
  }
  return out;
}
std::vector<double> JsonView::get_doubles(const std::string& key, const std::vector<double>& fallback) const {
  return has(key) ? get_doubles(key) : fallback;
}

std::vector<int64_t> JsonView::get_ints(const std::string& key) const {
  const json& v = at(key);
  LUMEN_CHECK(v.is_array(), field(key), ": expected a list of integers, got ", v.type_name());
  std::vector<int64_t> out;
  for (const auto& x : v) {
    LUMEN_CHECK(x.is_number_integer(), field(key), ": expected a list of integers, found ", x.dump());
    out.push_back(x.get<int64_t>());
  }
  return out;
}

}  // namespace lumen

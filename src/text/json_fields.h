// Typed reads of tokenizer.json component objects, with errors that name the component and
// field ("tokenizer.json: pre_tokenizer.pretokenizers[0].behavior: expected a string").
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace lumen::text {

using json = nlohmann::json;

class Fields {
 public:
  Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    LUMEN_CHECK(j_.is_object(), where_, ": expected an object");
  }
  const std::string& where() const { return where_; }
  // "<where>.<key>", or "<file>: <key>" for a top-level object labelled "<file>: ".
  std::string at(const std::string& key) const {
    return where_.ends_with(": ") ? where_ + key : where_ + "." + key;
  }
  const json& raw() const { return j_; }

  // Present and not null.
  bool has(const std::string& key) const {
    auto it = j_.find(key);
    return it != j_.end() && !it->is_null();
  }
  const json& get(const std::string& key) const {
    auto it = j_.find(key);
    LUMEN_CHECK(it != j_.end() && !it->is_null(), at(key), ": missing");
    return *it;
  }
  std::string type() const { return str("type"); }

  std::string str(const std::string& key) const {
    const json& v = get(key);
    LUMEN_CHECK(v.is_string(), at(key), ": expected a string");
    return v.get<std::string>();
  }
  std::string str(const std::string& key, const std::string& fallback) const { return has(key) ? str(key) : fallback; }
  std::optional<std::string> opt_str(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return str(key);
  }
  bool boolean(const std::string& key) const {
    const json& v = get(key);
    LUMEN_CHECK(v.is_boolean(), at(key), ": expected true or false");
    return v.get<bool>();
  }
  bool boolean(const std::string& key, bool fallback) const { return has(key) ? boolean(key) : fallback; }
  std::optional<bool> opt_bool(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return boolean(key);
  }
  uint64_t uint(const std::string& key) const {
    const json& v = get(key);
    LUMEN_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), at(key),
                ": expected a non-negative integer");
    return v.get<uint64_t>();
  }
  uint64_t uint(const std::string& key, uint64_t fallback) const { return has(key) ? uint(key) : fallback; }
  double number(const std::string& key) const {
    const json& v = get(key);
    LUMEN_CHECK(v.is_number(), at(key), ": expected a number");
    return v.get<double>();
  }
  const json& array(const std::string& key) const {
    const json& v = get(key);
    LUMEN_CHECK(v.is_array(), at(key), ": expected an array");
    return v;
  }
  Fields object(const std::string& key) const { return Fields(get(key), at(key)); }

 private:
  const json& j_;
  std::string where_;
};

// A single character given as a JSON string (Metaspace replacement, Strip content).
char32_t single_char(const Fields& f, const std::string& key);

}  // namespace lumen::text

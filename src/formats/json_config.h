// Typed reads from JSON config files with errors that name the file and the field path:
// "config.json: vision_config.patch_size: expected an integer, got string".
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace lumen {

class JsonView {
 public:
  JsonView(const nlohmann::json* j, std::string where) : j_(j), where_(std::move(where)) {}

  // Parses a file; errors name the path.
  static nlohmann::json load_file(const std::string& path);
  static nlohmann::json parse_text(const std::string& text, const std::string& label);

  bool has(const std::string& key) const { return j_->is_object() && j_->contains(key) && !(*j_)[key].is_null(); }
  const nlohmann::json& raw() const { return *j_; }
  const std::string& where() const { return where_; }
  std::string field(const std::string& key) const;  // "config.json: vision_config.patch_size"

  JsonView child(const std::string& key) const;  // required object
  std::optional<JsonView> child_opt(const std::string& key) const;

  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<double> get_doubles(const std::string& key) const;
  std::vector<double> get_doubles(const std::string& key, const std::vector<double>& fallback) const;
  std::vector<int64_t> get_ints(const std::string& key) const;

 private:
  const nlohmann::json& at(const std::string& key) const;
  const nlohmann::json* j_;
  std::string where_;
};

}  // namespace lumen

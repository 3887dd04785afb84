// Typed reads from JSON config files with errors that name the file and the field path:
// "config.json: vision_config.patch_size: expected an integer, got string \"16\"".
// A null value counts as absent (HF configs write `"key": null` for "use the default").
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace lumen {

class JsonView {
 public:
  // A view of `j` (kept alive by the caller) from the file `where` ("config.json").
  JsonView(const nlohmann::json* j, std::string where) : j_(j), file_(std::move(where)) {}

  // Parses a file; errors name the path.
  static nlohmann::json load_file(const std::string& path);
  static nlohmann::json parse_text(const std::string& text, const std::string& label);

  bool has(const std::string& key) const;
  const nlohmann::json& raw() const { return *j_; }
  // "config.json" at the top, "config.json: vision_config" below it.
  std::string where() const;
  std::string field(const std::string& key) const;  // "config.json: vision_config.patch_size"

  JsonView child(const std::string& key) const;  // required object
  std::optional<JsonView> child_opt(const std::string& key) const;

  // Integers also accept integral floats (224.0); values outside int64 are errors.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // A list of numbers; a single number reads as a list of one (image_mean may be either).
  std::vector<double> get_doubles(const std::string& key) const;
  std::vector<double> get_doubles(const std::string& key, const std::vector<double>& fallback) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key, const std::vector<int64_t>& fallback) const;

 private:
  JsonView(const nlohmann::json* j, std::string file, std::string path)
      : j_(j), file_(std::move(file)), path_(std::move(path)) {}
  const nlohmann::json& at(const std::string& key) const;
  const nlohmann::json* j_;
  std::string file_;  // the file (or label) the JSON came from
  std::string path_;  // dotted path of this object inside it; empty at the top
};

}  // namespace lumen

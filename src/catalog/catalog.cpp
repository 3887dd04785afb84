#include "catalog/catalog.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/json_config.h"

namespace lumen {

using nlohmann::json;

namespace {

const std::vector<std::string> kCategories = {"encoder-only", "encoder-decoder", "decoder-only"};
const std::vector<std::string> kSpecializations = {"documents", "screens"};
const std::vector<std::string> kGroundings = {"location tokens", "coordinates as text", "detection head"};
const std::set<std::string> kEntryFields = {
    "name",         "date",           "category",     "specialization",   "survey_tables", "org",
    "license",      "sizes",          "weights",      "permissive",       "grounding",     "grounding_survey",
    "architecture", "hf_model_types", "lumen_family", "fixture_verified", "notes"};
const std::set<std::string> kWeightsFields = {"open", "where", "hf_checkpoints"};
const std::set<std::string> kArchitectureFields = {"vision_encoder", "connector", "language_model", "summary"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains_ci(const std::string& haystack, const std::string& needle) {
  return lower(haystack).find(lower(needle)) != std::string::npos;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

bool one_of(const std::string& v, const std::vector<std::string>& allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

// Field readers; `where` is "models.json: [3] CLIP" so messages read
// "models.json: [3] CLIP: sizes[1]: expected a string, got number".
class EntryReader {
 public:
  EntryReader(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  const std::string& where() const { return where_; }

  std::string required_string(const std::string& key) const {
    LUMEN_CHECK(obj_.contains(key) && !obj_[key].is_null(), where_, ": required field '", key, "' is missing");
    auto v = optional_string(key);
    LUMEN_CHECK(!v->empty(), where_, ": ", key, ": must not be empty");
    return *v;
  }
  std::optional<std::string> optional_string(const std::string& key) const { return string_at(obj_, key, key); }
  std::optional<bool> optional_bool(const std::string& key) const { return bool_at(obj_, key, key); }
  std::vector<std::string> strings(const std::string& key) const { return strings_at(obj_, key, key); }

  // The same readers on a nested object ("weights.open").
  std::optional<std::string> string_at(const json& o, const std::string& key, const std::string& path) const {
    if (!o.contains(key) || o[key].is_null()) return std::nullopt;
    const json& v = o[key];
    LUMEN_CHECK(v.is_string(), where_, ": ", path, ": expected a string or null, got ", v.type_name(), " ", v.dump());
    return v.get<std::string>();
  }
  std::optional<bool> bool_at(const json& o, const std::string& key, const std::string& path) const {
    if (!o.contains(key) || o[key].is_null()) return std::nullopt;
    const json& v = o[key];
    LUMEN_CHECK(v.is_boolean(), where_, ": ", path, ": expected true, false or null, got ", v.type_name(), " ",
                v.dump());
    return v.get<bool>();
  }
  std::vector<std::string> strings_at(const json& o, const std::string& key, const std::string& path) const {
    std::vector<std::string> out;
    if (!o.contains(key) || o[key].is_null()) return out;
    const json& v = o[key];
    LUMEN_CHECK(v.is_array(), where_, ": ", path, ": expected an array of strings, got ", v.type_name());
    for (size_t i = 0; i < v.size(); ++i) {
      LUMEN_CHECK(v[i].is_string(), where_, ": ", path, "[", i, "]: expected a string, got ", v[i].type_name(), " ",
                  v[i].dump());
      out.push_back(v[i].get<std::string>());
    }
    return out;
  }
  // Nested object or null; rejects keys outside `allowed` so a misspelt field is not silently ignored.
  const json* object_at(const std::string& key, const std::set<std::string>& allowed) const {
    if (!obj_.contains(key) || obj_[key].is_null()) return nullptr;
    const json& v = obj_[key];
    LUMEN_CHECK(v.is_object(), where_, ": ", key, ": expected an object or null, got ", v.type_name());
    for (const auto& item : v.items())
      LUMEN_CHECK(allowed.count(item.key()), where_, ": ", key, ": unknown field '", item.key(), "'");
    return &v;
  }

 private:
  const json& obj_;
  std::string where_;
};

void check_enum(const std::string& where, const std::string& field, const std::string& value,
                const std::vector<std::string>& allowed) {
  LUMEN_CHECK(one_of(value, allowed), where, ": ", field, ": '", value, "' is not one of: ", join(allowed, ", "));
}

// "2021-02" or "2021".
bool valid_date(const std::string& d) {
  auto digits = [&](size_t from, size_t n) {
    return std::all_of(d.begin() + from, d.begin() + from + n, [](unsigned char c) { return std::isdigit(c); });
  };
  if (d.size() == 4) return digits(0, 4);
  if (d.size() != 7 || d[4] != '-' || !digits(0, 4) || !digits(5, 2)) return false;
  int month = std::stoi(d.substr(5, 2));
  return month >= 1 && month <= 12;
}

CatalogEntry read_entry(const json& obj, const nlohmann::ordered_json& raw, const std::string& where) {
  LUMEN_CHECK(obj.is_object(), where, ": expected an object, got ", obj.type_name());
  for (const auto& item : obj.items())
    LUMEN_CHECK(kEntryFields.count(item.key()), where, ": unknown field '", item.key(), "'");

  CatalogEntry e;
  e.raw = raw;
  {
    EntryReader r0(obj, where);
    e.name = r0.required_string("name");
  }
  EntryReader r(obj, where + " " + e.name);

  e.date = r.required_string("date");
  LUMEN_CHECK(valid_date(e.date), r.where(), ": date: '", e.date, "' is not YYYY-MM or YYYY");
  e.category = r.required_string("category");
  check_enum(r.where(), "category", e.category, kCategories);
  e.specialization = r.optional_string("specialization");
  if (e.specialization) check_enum(r.where(), "specialization", *e.specialization, kSpecializations);

  if (obj.contains("survey_tables") && !obj["survey_tables"].is_null()) {
    const json& tables = obj["survey_tables"];
    LUMEN_CHECK(tables.is_array() && !tables.empty(), r.where(), ": survey_tables: expected a non-empty array");
    for (size_t i = 0; i < tables.size(); ++i) {
      std::string path = "survey_tables[" + std::to_string(i) + "]";
      LUMEN_CHECK(tables[i].is_object(), r.where(), ": ", path, ": expected an object, got ", tables[i].type_name());
      SurveyPlacement p;
      auto cat = r.string_at(tables[i], "category", path + ".category");
      LUMEN_CHECK(cat.has_value(), r.where(), ": ", path, ": required field 'category' is missing");
      check_enum(r.where(), path + ".category", *cat, kCategories);
      p.category = *cat;
      p.specialization = r.string_at(tables[i], "specialization", path + ".specialization");
      if (p.specialization) check_enum(r.where(), path + ".specialization", *p.specialization, kSpecializations);
      e.survey_tables.push_back(std::move(p));
    }
    LUMEN_CHECK(e.survey_tables[0].category == e.category && e.survey_tables[0].specialization == e.specialization,
                r.where(), ": survey_tables[0] must repeat category and specialization");
  } else {
    e.survey_tables.push_back({e.category, e.specialization});
  }

  e.org = r.optional_string("org");
  e.license = r.optional_string("license");
  e.sizes = r.strings("sizes");
  if (const json* w = r.object_at("weights", kWeightsFields)) {
    e.weights_open = r.bool_at(*w, "open", "weights.open");
    e.weights_where = r.string_at(*w, "where", "weights.where");
    e.hf_checkpoints = r.strings_at(*w, "hf_checkpoints", "weights.hf_checkpoints");
  }
  e.permissive = r.optional_bool("permissive");
  e.grounding = r.optional_string("grounding");
  if (e.grounding) check_enum(r.where(), "grounding", *e.grounding, kGroundings);
  e.grounding_survey = r.optional_string("grounding_survey");
  if (const json* a = r.object_at("architecture", kArchitectureFields)) {
    for (const auto& key : kArchitectureFields) r.string_at(*a, key, "architecture." + key);  // type check only
  }
  e.hf_model_types = r.strings("hf_model_types");
  e.lumen_family = r.optional_string("lumen_family");
  e.fixture_verified = r.optional_bool("fixture_verified").value_or(false);
  LUMEN_CHECK(!e.fixture_verified || e.lumen_family.has_value(), r.where(),
              ": fixture_verified is true but lumen_family is null (only a lumen family can be verified)");
  e.notes = r.strings("notes");
  return e;
}

// Boolean-ish filter values: "yes/true/1", "no/false/0", and "unknown/none/null" for a missing value.
enum class Tri { kYes, kNo, kUnknown };
Tri parse_tri(const std::string& value, const std::string& expr, bool allow_unknown) {
  std::string v = lower(value);
  if (v == "yes" || v == "true" || v == "1") return Tri::kYes;
  if (v == "no" || v == "false" || v == "0") return Tri::kNo;
  if (allow_unknown && (v == "unknown" || v == "none" || v == "null")) return Tri::kUnknown;
  fail("--filter '", expr, "': expected yes or no", allow_unknown ? " (or unknown)" : "", ", got '", value, "'");
}
Tri tri_of(const std::optional<bool>& b) { return b ? (*b ? Tri::kYes : Tri::kNo) : Tri::kUnknown; }

const std::vector<std::string> kStringKeys = {"name", "org",       "category", "specialization", "license",
                                              "date", "grounding", "family",   "hf_type"};
const std::vector<std::string> kBoolKeys = {"permissive", "weights", "runs", "verified"};

// The values a string key compares against (several for multi-valued keys; empty = none).
std::vector<std::optional<std::string>> values_of(const CatalogEntry& e, const std::string& key) {
  if (key == "name") return {e.name};
  if (key == "org") return {e.org};
  if (key == "license") return {e.license};
  if (key == "date") return {e.date};
  if (key == "grounding") return {e.grounding};
  if (key == "family") return {e.lumen_family};
  if (key == "category") {
    std::vector<std::optional<std::string>> out;
    for (const auto& p : e.survey_tables) out.push_back(p.category);
    return out;
  }
  if (key == "specialization") {
    std::vector<std::optional<std::string>> out;
    for (const auto& p : e.survey_tables) out.push_back(p.specialization);
    return out;
  }
  if (key == "hf_type") {
    std::vector<std::optional<std::string>> out(e.hf_model_types.begin(), e.hf_model_types.end());
    if (out.empty()) out.push_back(std::nullopt);
    return out;
  }
  return {};
}

}  // namespace

bool CatalogEntry::in_category(const std::string& c) const {
  return std::any_of(survey_tables.begin(), survey_tables.end(),
                     [&](const SurveyPlacement& p) { return p.category == c; });
}

bool CatalogEntry::in_specialization(const std::string& s) const {
  return std::any_of(survey_tables.begin(), survey_tables.end(),
                     [&](const SurveyPlacement& p) { return p.specialization == s; });
}

bool CatalogEntry::runs_in_lumen(const std::vector<std::string>& registered_families) const {
  return lumen_family && one_of(*lumen_family, registered_families);
}

CatalogFilter CatalogFilter::parse(const std::string& expr) {
  CatalogFilter f;
  size_t op = expr.find_first_of("=~");
  if (op == std::string::npos) {
    LUMEN_CHECK(!expr.empty(), "--filter: empty expression");
    f.op = Op::kContains;
    f.value = expr;
    return f;
  }
  f.op = expr[op] == '=' ? Op::kEquals : Op::kKeyContains;
  f.key = lower(expr.substr(0, op));
  f.value = expr.substr(op + 1);
  // Trim spaces around the key so "grounding = location tokens" reads as meant.
  auto trim = [](std::string s) {
    size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  f.key = trim(f.key);
  f.value = trim(f.value);
  if (f.key == "hf_model_type" || f.key == "hf") f.key = "hf_type";
  if (f.key == "lumen_family") f.key = "family";
  if (f.key == "fixture_verified") f.key = "verified";
  bool known = one_of(f.key, kStringKeys) || one_of(f.key, kBoolKeys);
  LUMEN_CHECK(known, "--filter '", expr, "': unknown key '", f.key, "'; keys are ", join(kStringKeys, ", "), ", ",
              join(kBoolKeys, ", "));
  if (one_of(f.key, kBoolKeys)) {
    LUMEN_CHECK(f.op == Op::kEquals, "--filter '", expr, "': use ", f.key, "=yes or ", f.key, "=no");
    bool allow_unknown = f.key == "permissive" || f.key == "weights";
    parse_tri(f.value, expr, allow_unknown);  // validate now, before any matching
  }
  return f;
}

bool CatalogFilter::matches(const CatalogEntry& e, const std::vector<std::string>& registered_families) const {
  if (op == Op::kContains) {
    if (contains_ci(e.name, value) || contains_ci(e.org.value_or(""), value)) return true;
    for (const auto& p : e.survey_tables)
      if (contains_ci(p.category, value) || contains_ci(p.specialization.value_or(""), value)) return true;
    return false;
  }
  std::string expr = key + (op == Op::kEquals ? "=" : "~") + value;
  if (key == "permissive") return tri_of(e.permissive) == parse_tri(value, expr, true);
  if (key == "weights") return tri_of(e.weights_open) == parse_tri(value, expr, true);
  if (key == "runs")
    return (e.runs_in_lumen(registered_families) ? Tri::kYes : Tri::kNo) == parse_tri(value, expr, false);
  if (key == "verified") return (e.fixture_verified ? Tri::kYes : Tri::kNo) == parse_tri(value, expr, false);

  std::string want = lower(value);
  bool want_none = want == "none" || want == "null" || want.empty();
  for (const auto& v : values_of(e, key)) {
    if (!v) {
      if (op == Op::kEquals && want_none) return true;
      continue;
    }
    if (op == Op::kEquals ? lower(*v) == want : contains_ci(*v, value)) return true;
  }
  return false;
}

Catalog Catalog::parse(const std::string& json_text, const std::string& label) {
  json root = JsonView::parse_text(json_text, label);
  LUMEN_CHECK(root.is_array(), label, ": expected a JSON array of models, got ", root.type_name());
  // Parsed a second time keeping field order, only for printing the entries back as written.
  const auto ordered = nlohmann::ordered_json::parse(json_text);
  Catalog c;
  c.source_ = label;
  std::set<std::string> seen;
  for (size_t i = 0; i < root.size(); ++i) {
    CatalogEntry e = read_entry(root[i], ordered[i], label + ": [" + std::to_string(i) + "]");
    LUMEN_CHECK(seen.insert(lower(e.name)).second, label, ": [", i, "] ", e.name, ": duplicate model name");
    c.entries_.push_back(std::move(e));
  }
  return c;
}

Catalog Catalog::load(const std::string& path) { return parse(read_file(path), path); }

std::string Catalog::default_path() {
  if (const char* dir = std::getenv("LUMEN_DATA_DIR"); dir && *dir) return std::string(dir) + "/catalog/models.json";
#ifdef LUMEN_SOURCE_DIR
  return std::string(LUMEN_SOURCE_DIR) + "/data/catalog/models.json";
#else
  fail("no catalog path: pass --catalog PATH or set LUMEN_DATA_DIR to the folder holding catalog/models.json");
#endif
}

const CatalogEntry* Catalog::find(const std::string& name) const {
  std::string want = lower(name);
  for (const auto& e : entries_)
    if (lower(e.name) == want) return &e;
  return nullptr;
}

std::vector<const CatalogEntry*> Catalog::select(const std::vector<CatalogFilter>& filters,
                                                 const std::vector<std::string>& registered_families) const {
  std::vector<const CatalogEntry*> out;
  for (const auto& e : entries_) {
    bool keep = std::all_of(filters.begin(), filters.end(),
                            [&](const CatalogFilter& f) { return f.matches(e, registered_families); });
    if (keep) out.push_back(&e);
  }
  return out;
}

}  // namespace lumen

// The model catalog: every model in the survey's tables (data/catalog/models.json), with its date,
// category, license, sizes, grounding type and recipe, and whether lumen runs its family.
// The catalog knows nothing of the model registry: callers pass the family names that are registered.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace lumen {

// Where the survey places a model: one of its tables. BLIP-2 sits in two.
struct SurveyPlacement {
  std::string category;                       // "encoder-only" | "encoder-decoder" | "decoder-only"
  std::optional<std::string> specialization;  // "documents" | "screens" | none
};

struct CatalogEntry {
  std::string name;                           // "CLIP"
  std::string date;                           // "2021-02", as the survey gives it
  std::string category;                       // first placement's category
  std::optional<std::string> specialization;  // first placement's specialization
  std::vector<SurveyPlacement> survey_tables;
  std::optional<std::string> org;
  std::optional<std::string> license;  // none where the survey's table says "-"
  std::vector<std::string> sizes;      // "150M", "8x7B"
  std::optional<bool> weights_open;
  std::optional<std::string> weights_where;
  std::vector<std::string> hf_checkpoints;
  std::optional<bool> permissive;
  std::optional<std::string> grounding;         // "location tokens" | "coordinates as text" | "detection head"
  std::optional<std::string> grounding_survey;  // the survey's own words in its Grounding Models table
  std::vector<std::string> hf_model_types;      // transformers model_type strings ("clip", "blip-2")
  std::optional<std::string> lumen_family;      // lumen family that runs it ("clip"), if any
  bool fixture_verified = false;
  std::vector<std::string> notes;
  nlohmann::ordered_json raw;  // the object as read (field order kept), printed by `lumen models --json`

  bool in_category(const std::string& category) const;  // any placement
  bool in_specialization(const std::string& specialization) const;
  // True when the entry names a lumen family and that family is among `registered_families`.
  bool runs_in_lumen(const std::vector<std::string>& registered_families) const;
};

// One --filter expression:
//   "llava"              substring of name, org, category or specialization (case-insensitive)
//   "key=value"          field equals value (case-insensitive); "none" matches a missing value
//   "key~value"          field contains value (case-insensitive)
// Keys: name, org, category, specialization, license, date, grounding, family, hf_type (any of
// hf_model_types), permissive (true/false/unknown), weights (yes/no/unknown), runs (yes/no),
// verified (yes/no). Unknown keys and bad boolean values are errors naming the expression.
struct CatalogFilter {
  enum class Op { kContains, kEquals, kKeyContains };
  Op op = Op::kContains;
  std::string key;
  std::string value;

  static CatalogFilter parse(const std::string& expr);
  bool matches(const CatalogEntry& e, const std::vector<std::string>& registered_families) const;
};

class Catalog {
 public:
  // Reads and validates a catalog file; errors name the file and the entry/field at fault.
  static Catalog load(const std::string& path);
  static Catalog parse(const std::string& json_text, const std::string& label);
  // The catalog used when no path is given: $LUMEN_DATA_DIR/catalog/models.json when that
  // variable is set, else <LUMEN_SOURCE_DIR>/data/catalog/models.json.
  static std::string default_path();

  const std::vector<CatalogEntry>& entries() const { return entries_; }
  const std::string& source() const { return source_; }
  // Case-insensitive exact name lookup; nullptr when absent.
  const CatalogEntry* find(const std::string& name) const;
  // Entries matching every filter, in catalog order.
  std::vector<const CatalogEntry*> select(const std::vector<CatalogFilter>& filters,
                                          const std::vector<std::string>& registered_families) const;

 private:
  std::vector<CatalogEntry> entries_;
  std::string source_;
};

// Lists the model families lumen can run (e.g. {"clip", "siglip"}); front ends pass the model
// registry's lumen::registered_family_names (families/family.h) so the catalog never depends on it.
using FamilyLister = std::function<std::vector<std::string>()>;

}  // namespace lumen

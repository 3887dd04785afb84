// `lumen models`: the survey's model catalog, filtered, with what lumen runs today.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/cli/commands.h"
#include "catalog/catalog.h"
#include "families/family.h"

namespace lumen::cli {
namespace {

struct ModelsOptions {
  CommonFlags common;
  std::vector<std::string> filters;
  std::string catalog_path;
};

const char* kModelsFooter = R"(Filters (repeat --filter; a model must match all of them):
  WORD          name, org or category contains WORD       --filter llava
  KEY=VALUE     field equals VALUE (case-insensitive)     --filter category=decoder-only
  KEY~VALUE     field contains VALUE                      --filter org~google
  String keys:  name org category specialization license date grounding family hf_type
                (VALUE none matches a missing field: --filter license=none)
  Yes/no keys:  runs (lumen runs its family)  verified (checked against HF fixtures)
                permissive, weights (these two also take unknown)
  category is encoder-only, encoder-decoder or decoder-only; specialization is documents
  or screens; grounding is "location tokens", "coordinates as text" or "detection head".

Examples:
  lumen models                                     every model in the survey
  lumen models --filter runs=yes                   what lumen runs today
  lumen models --filter "grounding=location tokens"
  lumen models --filter category=decoder-only --filter permissive=yes
  lumen models --filter specialization=screens --json

The catalog is data/catalog/models.json, built from the survey's tables and notes
(see data/catalog/README.md); --catalog PATH or LUMEN_DATA_DIR/catalog/models.json replace it.)";

// Display width of UTF-8 text (code points), so columns line up for non-ASCII names.
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string or_dash(const std::optional<std::string>& v) { return v && !v->empty() ? *v : "-"; }

std::string category_cell(const CatalogEntry& e) {
  std::string out;
  for (const auto& p : e.survey_tables) {
    if (!out.empty()) out += ", ";
    out += p.category;
    if (p.specialization) out += "/" + *p.specialization;
  }
  return out;
}

std::string sizes_cell(const CatalogEntry& e) {
  std::string out;
  for (const auto& s : e.sizes) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "-" : out;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows.at(0).size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], display_width(r[c]));
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      line += r[c];
      if (c + 1 < r.size()) line += std::string(width[c] - display_width(r[c]) + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

int run_models(const ModelsOptions& opts, const FamilyLister& list_families) {
  apply_common_flags(opts.common);
  std::vector<CatalogFilter> filters;
  for (const auto& expr : opts.filters) filters.push_back(CatalogFilter::parse(expr));
  const std::string path = opts.catalog_path.empty() ? Catalog::default_path() : opts.catalog_path;
  const Catalog catalog = Catalog::load(path);
  const std::vector<std::string> families = list_families();
  const auto selected = catalog.select(filters, families);

  if (opts.common.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const CatalogEntry* e : selected) {
      nlohmann::ordered_json j = e->raw;
      j["runs_in_lumen"] = e->runs_in_lumen(families);
      out.push_back(std::move(j));
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  std::vector<std::vector<std::string>> rows = {
      {"NAME", "DATE", "CATEGORY", "ORG", "SIZES", "LICENSE", "GROUNDING", "RUNS", "VERIFIED"}};
  size_t running = 0;
  for (const CatalogEntry* e : selected) {
    bool runs = e->runs_in_lumen(families);
    running += runs;
    rows.push_back({e->name, e->date, category_cell(*e), or_dash(e->org), sizes_cell(*e), or_dash(e->license),
                    or_dash(e->grounding), runs ? "yes" : "no", e->fixture_verified ? "yes" : "no"});
  }
  if (selected.empty()) {
    std::printf("no model in %s matches the filters\n", path.c_str());
  } else {
    print_table(rows);
    std::printf("\n%zu of %zu models; %zu run in lumen today\n", selected.size(), catalog.entries().size(), running);
  }
  // Families lumen runs that no survey row names (e.g. SigLIP, which the survey only mentions
  // as PaLI-3's vision encoder) are still worth saying.
  std::string orphans;
  for (const auto& f : families) {
    bool named = false;
    for (const auto& e : catalog.entries()) named = named || (e.lumen_family && *e.lumen_family == f);
    if (!named) orphans += (orphans.empty() ? "" : ", ") + f;
  }
  if (!orphans.empty())
    std::printf("lumen also runs families with no row in the survey's tables: %s\n", orphans.c_str());
  return 0;
}

Register models_command({
    "models",
    "List the multimodal models of the survey: date, category, license, grounding, and whether lumen runs them",
    [](CLI::App* cmd) -> std::function<int()> {
      auto opts = std::make_shared<ModelsOptions>();
      add_common_flags(cmd, &opts->common);
      cmd->add_option("--filter,-f", opts->filters,
                      "Keep models matching EXPR (WORD, KEY=VALUE or KEY~VALUE); repeatable")
          ->type_name("EXPR")
          ->expected(1)
          ->allow_extra_args(false)  // `--filter a b` is an error, not two filters
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      cmd->add_option("--catalog", opts->catalog_path, "Catalog JSON file (default: data/catalog/models.json)")
          ->type_name("PATH");
      cmd->footer(kModelsFooter);
      return [opts] { return run_models(*opts, &lumen::registered_family_names); };
    },
});

}  // namespace
}  // namespace lumen::cli

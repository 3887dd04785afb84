// The model catalog against the survey (shared/survey/multimodal-llm-survey.txt). The expected
// numbers below were counted by hand from the survey's tables:
//   Encoder-Only 8 rows; Encoder-Decoder 8 (+ Documents 1, Screens 1); Decoder-Only 23
//   (+ Documents 3, Screens 4) = 48 rows; BLIP-2 sits in two tables, so 47 models, which is
//   also the number of per-model sections and of table-of-contents lines. The Grounding Models
//   table lists 11 models.
#include "catalog/catalog.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace lumen {
namespace {

const std::string kCatalogPath = std::string(LUMEN_SOURCE_DIR) + "/data/catalog/models.json";

const Catalog& survey_catalog() {
  static const Catalog c = Catalog::load(kCatalogPath);
  return c;
}

std::vector<std::string> names_matching(const std::vector<std::string>& exprs,
                                        const std::vector<std::string>& families = {"clip", "siglip"}) {
  std::vector<CatalogFilter> filters;
  for (const auto& e : exprs) filters.push_back(CatalogFilter::parse(e));
  std::vector<std::string> out;
  for (const CatalogEntry* e : survey_catalog().select(filters, families)) out.push_back(e->name);
  return out;
}

const CatalogEntry& entry(const std::string& name) {
  const CatalogEntry* e = survey_catalog().find(name);
  if (!e) throw std::runtime_error("catalog has no " + name);
  return *e;
}

// A scratch file in a per-test folder, removed with it.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() / ("lumen_catalog_test_" + std::to_string(::getpid()) + "_" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = (path_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Expects loading `text` to throw a lumen::Error whose message contains the file path and `what`.
void expect_load_error(const std::string& text, const std::string& what) {
  TempDir dir;
  std::string path = dir.write("models.json", text);
  try {
    Catalog::load(path);
    ADD_FAILURE() << "no error for: " << text;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

const char* kOneModel = R"([{"name": "CLIP", "date": "2021-02", "category": "encoder-only", "sizes": ["150M"]}])";

TEST(Catalog, HasEveryModelOfTheSurveyTables) {
  const auto& entries = survey_catalog().entries();
  EXPECT_EQ(entries.size(), 47u);
  size_t placements = 0;
  for (const auto& e : entries) placements += e.survey_tables.size();
  EXPECT_EQ(placements, 48u);  // table rows

  auto primary = [&](const std::string& c) {
    return std::count_if(entries.begin(), entries.end(), [&](const CatalogEntry& e) { return e.category == c; });
  };
  EXPECT_EQ(primary("encoder-only"), 8);
  EXPECT_EQ(primary("encoder-decoder"), 10);
  EXPECT_EQ(primary("decoder-only"), 29);
  EXPECT_EQ(names_matching({"specialization=documents"}),
            (std::vector<std::string>{"UDOP", "KOSMOS-2.5", "DocPedia", "TextMonkey"}));
  EXPECT_EQ(names_matching({"specialization=screens"}),
            (std::vector<std::string>{"Pix2Struct", "Pix2Act", "CogAgent", "SeeClick", "ScreenAI"}));
}

TEST(Catalog, ClipEntryMatchesTheSurvey) {
  const CatalogEntry& clip = entry("CLIP");
  EXPECT_EQ(clip.date, "2021-02");
  EXPECT_EQ(clip.category, "encoder-only");
  EXPECT_EQ(clip.org, "OpenAI");
  EXPECT_EQ(clip.license, "MIT");
  EXPECT_EQ(clip.sizes, (std::vector<std::string>{"150M", "430M"}));
  EXPECT_EQ(clip.weights_open, true);
  EXPECT_EQ(clip.permissive, true);
  EXPECT_FALSE(clip.grounding.has_value());
  EXPECT_EQ(clip.hf_model_types, std::vector<std::string>{"clip"});
  EXPECT_NE(std::find(clip.hf_checkpoints.begin(), clip.hf_checkpoints.end(), "openai/clip-vit-base-patch32"),
            clip.hf_checkpoints.end());
  EXPECT_EQ(clip.lumen_family, "clip");
  EXPECT_TRUE(clip.fixture_verified);
  EXPECT_TRUE(clip.runs_in_lumen({"clip", "siglip"}));
  EXPECT_FALSE(clip.runs_in_lumen({"siglip"}));
}

TEST(Catalog, LlavaAndGroundingEntries) {
  const CatalogEntry& llava = entry("llava");  // lookup ignores case
  EXPECT_EQ(llava.name, "LLaVA");
  EXPECT_EQ(llava.date, "2023-04");
  EXPECT_EQ(llava.category, "decoder-only");
  EXPECT_EQ(llava.license, "MIT");
  EXPECT_EQ(llava.sizes, (std::vector<std::string>{"7B", "13B"}));
  EXPECT_EQ(llava.org, "Microsoft");
  EXPECT_FALSE(llava.grounding.has_value());  // the Grounding Models table lists LLaVA-1.5, not LLaVA
  EXPECT_EQ(llava.lumen_family, "llava");  // runs (linear projector), no reference fixture for v1
  EXPECT_FALSE(llava.fixture_verified);

  const CatalogEntry& llava15 = entry("LLaVA-1.5");
  EXPECT_EQ(llava15.grounding, "coordinates as text");
  EXPECT_EQ(llava15.grounding_survey, "Direct Prediction");
  EXPECT_EQ(llava15.hf_model_types, std::vector<std::string>{"llava"});

  const CatalogEntry& kosmos2 = entry("KOSMOS-2");
  EXPECT_EQ(kosmos2.date, "2023-06");
  EXPECT_EQ(kosmos2.grounding, "location tokens");
  EXPECT_EQ(kosmos2.grounding_survey, "Patch-based Special Tokens");
  EXPECT_EQ(kosmos2.hf_model_types, std::vector<std::string>{"kosmos-2"});
  EXPECT_EQ(kosmos2.hf_checkpoints, std::vector<std::string>{"microsoft/kosmos-2-patch14-224"});
  EXPECT_EQ(kosmos2.lumen_family, "kosmos2");

  EXPECT_EQ(entry("LLaVA-Grounding").grounding, "detection head");

  const CatalogEntry& blip2 = entry("BLIP-2");
  EXPECT_TRUE(blip2.in_category("encoder-decoder"));
  EXPECT_TRUE(blip2.in_category("decoder-only"));
  EXPECT_FALSE(blip2.in_category("encoder-only"));

  // The org column is empty for Google's models; the per-model notes name it.
  EXPECT_EQ(entry("ALIGN").org, "Google");
  EXPECT_FALSE(entry("ALIGN").license.has_value());
}

TEST(Catalog, GroundingTableAndVerification) {
  EXPECT_EQ(names_matching({"grounding=location tokens"}),
            (std::vector<std::string>{"VisionLLM", "KOSMOS-2", "KOSMOS-2.5"}));
  EXPECT_EQ(names_matching({"grounding=coordinates as text"}).size(), 7u);
  EXPECT_EQ(names_matching({"grounding=detection head"}), std::vector<std::string>{"LLaVA-Grounding"});
  EXPECT_EQ(names_matching({"grounding=none"}).size(), 47u - 11u);
  // Only lumen families with a passing reference fixture may be marked verified.
  EXPECT_EQ(names_matching({"verified=yes"}),
            (std::vector<std::string>{"CLIP", "BLIP", "BLIP-2", "KOSMOS-2", "LLaVA-1.5", "LLaVA-NEXT"}));
  for (const auto& e : survey_catalog().entries())
    if (e.fixture_verified) {
      EXPECT_TRUE(e.lumen_family.has_value()) << e.name;
    }
}

TEST(Catalog, Filters) {
  EXPECT_EQ(names_matching({"llava"}),
            (std::vector<std::string>{"LLaVA", "LLaVA-1.5", "LLaVA-Grounding", "LLaVA-NEXT", "LLaVAR"}));
  EXPECT_EQ(names_matching({"runs=yes"}), std::vector<std::string>{"CLIP"});
  EXPECT_TRUE(names_matching({"runs=yes"}, {}).empty());
  EXPECT_EQ(names_matching({"runs=no"}).size(), 46u);
  EXPECT_EQ(names_matching({"permissive=true"}).size(), 30u);
  EXPECT_EQ(names_matching({"permissive=no"}).size(), 17u);
  EXPECT_EQ(names_matching({"weights=yes"}).size(), 34u);
  EXPECT_EQ(names_matching({"category=decoder-only"}).size(), 30u);  // 29 + BLIP-2's second listing
  EXPECT_EQ(names_matching({"Category=Decoder-Only", "permissive=yes"}).size(), 20u);
  EXPECT_EQ(names_matching({"org~google"}).size(), 10u);
  EXPECT_EQ(names_matching({"org=google"}).size(), 7u);  // exact: not "Google (DeepMind)"
  EXPECT_EQ(names_matching({"license=none"}).size(), 10u);
  EXPECT_EQ(names_matching({"hf_type=blip-2"}), std::vector<std::string>{"BLIP-2"});
  EXPECT_EQ(names_matching({"date~2021"}).size(), 7u);
  EXPECT_EQ(names_matching({"screens"}).size(), 5u);  // bare word also searches the specialization
  EXPECT_TRUE(names_matching({"llava", "org=Adobe", "name=LLaVAR"}) == std::vector<std::string>{"LLaVAR"});
  EXPECT_TRUE(names_matching({"no such model"}).empty());
}

TEST(Catalog, BadFiltersAreErrors) {
  EXPECT_THROW(CatalogFilter::parse("colour=red"), Error);
  EXPECT_THROW(CatalogFilter::parse("runs=maybe"), Error);
  EXPECT_THROW(CatalogFilter::parse("runs=unknown"), Error);  // runs is always known
  EXPECT_THROW(CatalogFilter::parse("runs~y"), Error);
  EXPECT_THROW(CatalogFilter::parse(""), Error);
  try {
    CatalogFilter::parse("colour=red");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("colour"), std::string::npos) << e.what();
  }
}

TEST(Catalog, MalformedFilesNameTheFile) {
  expect_load_error("[{\"name\": \"CLIP\",", "not valid JSON");
  expect_load_error("{\"models\": []}", "expected a JSON array");
  expect_load_error(R"([{"name": "CLIP", "date": "2021-02", "category": "encoder-only", "sizes": ["150M", 430]}])",
                    "CLIP: sizes[1]: expected a string");
  expect_load_error(R"([{"date": "2021-02", "category": "encoder-only"}])", "required field 'name'");
  expect_load_error(R"([{"name": "CLIP", "date": "Feb 2021", "category": "encoder-only"}])", "date");
  expect_load_error(R"([{"name": "CLIP", "date": "2021-02", "category": "fusion"}])", "category: 'fusion'");
  expect_load_error(R"([{"name": "CLIP", "date": "2021-02", "category": "encoder-only", "permisive": true}])",
                    "unknown field 'permisive'");
  expect_load_error(R"([{"name": "K", "date": "2023-06", "category": "decoder-only", "grounding": "boxes"}])",
                    "grounding: 'boxes'");
  expect_load_error(R"([{"name": "K", "date": "2023-06", "category": "decoder-only", "weights": {"open": "yes"}}])",
                    "weights.open: expected true, false or null");
  expect_load_error(R"([{"name": "K", "date": "2023-06", "category": "decoder-only", "fixture_verified": true}])",
                    "lumen_family is null");
  expect_load_error(R"([{"name": "CLIP", "date": "2021-02", "category": "encoder-only"},
                        {"name": "clip", "date": "2021-02", "category": "encoder-only"}])",
                    "duplicate model name");
}

TEST(Catalog, MissingFileIsAnError) {
  TempDir dir;
  std::string path = dir.path() + "/absent.json";
  try {
    Catalog::load(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Catalog, DefaultPathHonoursLumenDataDir) {
  const char* old = std::getenv("LUMEN_DATA_DIR");
  std::string saved = old ? old : "";
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/catalog");
  dir.write("catalog/models.json", kOneModel);
  ::setenv("LUMEN_DATA_DIR", dir.path().c_str(), 1);
  EXPECT_EQ(Catalog::default_path(), dir.path() + "/catalog/models.json");
  EXPECT_EQ(Catalog::load(Catalog::default_path()).entries().size(), 1u);
  ::unsetenv("LUMEN_DATA_DIR");
  EXPECT_EQ(Catalog::default_path(), kCatalogPath);
  if (old) ::setenv("LUMEN_DATA_DIR", saved.c_str(), 1);
}

// --- the `lumen models` command -------------------------------------------------------------

using testing_util::run_cli;
using testing_util::RunResult;

TEST(CatalogCli, JsonListsWhatLumenRuns) {
  RunResult r = run_cli("models --json --filter runs=yes --catalog " + kCatalogPath);
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 8u) << r.output;  // CLIP, BLIP, BLIP-2, KOSMOS-2 and the LLaVA line
  EXPECT_EQ(j[0]["name"], "CLIP");
  EXPECT_EQ(j[0]["runs_in_lumen"], true);
  EXPECT_EQ(j[0]["org"], "OpenAI");
}

TEST(CatalogCli, TableAndHelp) {
  RunResult table = run_cli("models --filter \"grounding=location tokens\" --filter kosmos --catalog " + kCatalogPath);
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.output.find("NAME"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("KOSMOS-2.5"), std::string::npos) << table.output;
  EXPECT_EQ(table.output.find("VisionLLM"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("2 of 47 models"), std::string::npos) << table.output;

  RunResult help = run_cli("models --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("Examples:"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--filter"), std::string::npos) << help.output;
}

TEST(CatalogCli, ErrorsAreOneLineNamingTheFile) {
  TempDir dir;
  std::string path = dir.write("broken.json", "[{\"name\": 1}]");
  RunResult r = run_cli("models --catalog " + path);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("lumen models: error: " + path), std::string::npos) << r.output;

  RunResult bad_filter = run_cli("models --filter colour=red --catalog " + kCatalogPath);
  EXPECT_EQ(bad_filter.status, 1) << bad_filter.output;
  EXPECT_NE(bad_filter.output.find("unknown key 'colour'"), std::string::npos) << bad_filter.output;
}

}  // namespace
}  // namespace lumen

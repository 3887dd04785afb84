// lumen make-tiny: writes an UNTRAINED random-weight checkpoint in the Hugging Face layout
// (config.json, model.safetensors, preprocessor_config.json, tokenizer files) for any family,
// so every command can be tried end to end without downloading real weights.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "families/family.h"
#include "formats/safetensors.h"
#include "runtime/tokenizer_files.h"

namespace lumen::cli {
namespace {

namespace fs = std::filesystem;

struct MakeTinyArgs {
  std::string family;
  std::string out;
  std::string tokenizer;
  std::string arch = "tiny";
  uint64_t seed = 0;
  bool force = false;
  CommonFlags common;
};

int run(const MakeTinyArgs& a) {
  apply_common_flags(a.common);
  const FamilySpec* fam = find_family(a.family);
  if (!fam) {
    std::string known;
    for (const auto& n : registered_family_names()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown family '", a.family, "' (lumen runs: ", known, ")");
  }
  std::error_code ec;
  if (fs::exists(a.out + "/config.json", ec) && !a.force)
    fail(a.out, ": already holds a checkpoint (config.json); pass --force to overwrite it");
  fs::create_directories(a.out, ec);
  LUMEN_CHECK(!ec, a.out, ": cannot create directory: ", ec.message());

  std::string tok_src = a.tokenizer.empty() ? default_tokenizer_dir(fam->default_tokenizer) : a.tokenizer;
  TokenizerFacts facts = install_tokenizer_files(tok_src, a.out);

  MakeTinyOptions o;
  o.out_dir = a.out;
  o.seed = a.seed;
  o.arch = a.arch;
  o.vocab_size = facts.vocab_size;
  o.token_ids = facts.special_ids;
  fam->make_tiny(o);

  int64_t params = 0;
  auto st = SafetensorsFile::open(a.out + "/model.safetensors");
  for (const auto& [n, e] : st->entries()) params += shape_numel(e.shape);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(a.out)) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  if (a.common.json) {
    nlohmann::json j = {{"family", a.family}, {"arch", a.arch}, {"out", a.out},    {"seed", a.seed},
                        {"parameters", params}, {"files", files}, {"tokenizer", tok_src},
                        {"vocab_size", facts.vocab_size}, {"trained", false}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("wrote an UNTRAINED %s checkpoint (arch %s, seed %llu, %.2fM parameters) to %s\n", a.family.c_str(),
                a.arch.c_str(), static_cast<unsigned long long>(a.seed), static_cast<double>(params) / 1e6,
                a.out.c_str());
    std::printf("  tokenizer from %s (vocab %lld)\n  files:", tok_src.c_str(), static_cast<long long>(facts.vocab_size));
    for (const auto& f : files) std::printf(" %s", f.c_str());
    std::printf("\n  random weights: outputs are meaningless, useful only to exercise the pipeline\n");
  }
  return 0;
}

Register reg({"make-tiny", "Write a random-weight (untrained) checkpoint of a family, HF layout",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<MakeTinyArgs>();
                cmd->add_option("--family,-f", a->family, "Family to write (see `lumen models --filter runs=yes`)")->required();
                cmd->add_option("--out,-o", a->out, "Output directory")->required();
                cmd->add_option("--tokenizer", a->tokenizer,
                                "tokenizer.json, or a directory with tokenizer files (default: the family's bundled one, CLIP BPE or LLaMA-2)");
                cmd->add_option("--arch", a->arch, "Size preset: tiny, or a real model's shape (see `lumen models`; e.g. clip: vit-b-32, vit-l-14-336; llava: llava-1.5-7b)")
                    ->capture_default_str();
                cmd->add_option("--seed", a->seed, "Random seed (same seed, same weights)")->capture_default_str();
                cmd->add_flag("--force", a->force, "Overwrite an existing checkpoint in --out");
                add_common_flags(cmd, &a->common);
                cmd->footer("Example: lumen make-tiny --family clip --out /tmp/tiny-clip --seed 1");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

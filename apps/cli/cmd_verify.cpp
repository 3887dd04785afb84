// lumen verify <fixture_root> [--only FILTER,...]: the fidelity contract. Prints one block per
// case and ends with "N passed, N failed, N skipped"; exit 1 on any FAIL.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "core/error.h"
#include "runtime/verify.h"

namespace lumen::cli {
namespace {

struct VerifyArgs {
  std::string root;
  std::vector<std::string> only;
  bool quiet = false;
  CommonFlags common;
};

void print_case(const CaseResult& r, bool quiet) {
  std::printf("%s %-40s %7.2fs%s%s\n", case_status_name(r.status), r.name.c_str(), r.seconds,
              r.message.empty() ? "" : "  ", r.message.c_str());
  if (quiet && r.status != CaseStatus::Fail) return;
  for (const auto& c : r.checks)
    std::printf("    %-4s %-28s max_abs %.3g  max_rel %.3g%s%s\n", c.pass ? "ok" : "BAD", c.name.c_str(), c.max_abs,
                c.max_rel, c.note.empty() ? "" : "  ", c.note.c_str());
  std::fflush(stdout);
}

int run(const VerifyArgs& a) {
  apply_common_flags(a.common);
  VerifyOptions opts;
  opts.root = a.root;
  opts.only = a.only;
  if (!a.common.json) opts.on_result = [&](const CaseResult& r) { print_case(r, a.quiet); };
  auto results = run_verify(opts);
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& r : results) {
    if (r.status == CaseStatus::Pass) ++passed;
    else if (r.status == CaseStatus::Fail) ++failed;
    else ++skipped;
  }
  if (a.common.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json checks = nlohmann::json::array();
      for (const auto& c : r.checks)
        checks.push_back({{"name", c.name}, {"pass", c.pass}, {"max_abs", c.max_abs}, {"max_rel", c.max_rel},
                          {"note", c.note}});
      out.push_back({{"name", r.name}, {"group", r.group}, {"status", case_status_name(r.status)},
                     {"message", r.message}, {"seconds", r.seconds}, {"checks", checks}});
    }
    std::printf("%s\n", nlohmann::json{{"results", out}, {"passed", passed}, {"failed", failed}, {"skipped", skipped}}
                            .dump(2)
                            .c_str());
  } else {
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  }
  if (results.empty() && !a.only.empty()) {
    std::fprintf(stderr, "lumen verify: warning: --only matched no case\n");
  }
  return failed ? 1 : 0;
}

Register reg({"verify", "Compare lumen with the reference on a golden-fixture root",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<VerifyArgs>();
                cmd->add_option("fixture_root", a->root, "Fixture root holding manifest.json (e.g. ../shared/fixtures/public)")
                    ->required();
                cmd->add_option("--only", a->only,
                                "Run only these: a family (clip), tokenizer (all) or tokenizer:NAME, preprocess (all) or preprocess:PROCESSOR")
                    ->delimiter(',');
                cmd->add_flag("--quiet,-q", a->quiet, "Print per-tensor errors only for failing cases");
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "Each case prints PASS/FAIL/SKIP with the max abs/rel error of every expected tensor\n"
                    "(SKIP = lumen does not support it yet). The last line is `N passed, N failed, N skipped`;\n"
                    "the exit code is 1 when anything failed.\n"
                    "Example: lumen verify ../shared/fixtures/public --only clip,siglip,preprocess:clip_224");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

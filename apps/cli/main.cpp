// lumen: one binary, one subcommand per job. Every error a user can cause ends as a one-line
// "lumen <cmd>: error: ..." on stderr and exit code 1; usage errors exit with 2.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include "apps/cli/commands.h"
#include "core/error.h"
#include "core/threads.h"

namespace lumen::cli {

std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

void add_common_flags(CLI::App* cmd, CommonFlags* flags) {
  cmd->add_option("--threads,-t", flags->threads, "Threads to use (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", flags->json, "Print machine-readable JSON on stdout");
}

void apply_common_flags(const CommonFlags& flags) {
  if (flags.threads > 0) set_num_threads(flags.threads);
}

}  // namespace lumen::cli

int main(int argc, char** argv) {
  using namespace lumen::cli;
  CLI::App app{
      "lumen: run multimodal LLMs (CLIP, SigLIP, ...) from their Hugging Face checkpoints.\n"
      "Try `lumen make-tiny --family clip --out /tmp/tiny-clip` and then\n"
      "`lumen classify --model /tmp/tiny-clip --image photo.jpg --labels cat,dog`."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lumen 0.1");
  auto& cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    runners.emplace_back(sub, c.setup(sub));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help/--version print and exit 0; every usage error exits 2 (CLI11 uses its own codes).
    return app.exit(e) == 0 ? 0 : 2;
  }
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const lumen::Error& e) {
      std::fprintf(stderr, "lumen %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "lumen %s: error: out of memory\n", sub->get_name().c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lumen %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    }
  }
  return 0;
}

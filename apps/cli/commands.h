// Each lumen subcommand lives in its own cmd_<name>.cpp and registers itself here.
// Shared flags (--threads, --json) are added by add_common_flags so every command has them.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace lumen::cli {

struct CommonFlags {
  int threads = 0;  // 0 = all cores
  bool json = false;
};

// Adds --threads and --json to `cmd`, storing them in `flags`.
void add_common_flags(CLI::App* cmd, CommonFlags* flags);
// Applies --threads to the kernel thread pool.
void apply_common_flags(const CommonFlags& flags);

// A registered subcommand: `setup` adds its options to `cmd` and returns the function to run.
struct Command {
  std::string name;
  std::string description;
  std::function<std::function<int()>(CLI::App* cmd)> setup;
};

// Registration happens in static initialisers of each cmd_*.cpp.
std::vector<Command>& registry();
struct Register {
  explicit Register(Command c) { registry().push_back(std::move(c)); }
};

}  // namespace lumen::cli

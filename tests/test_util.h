// Helpers shared by the test files.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "runtime/verify.h"

namespace lumen::testing_util {

inline const std::string kFixtures = std::string(LUMEN_TEST_DATA) + "/fixtures";

// A fresh, empty scratch directory unique to this process.
inline std::string temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("lumen_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Every fixture case of `family` in tests/data/fixtures passes `lumen verify`.
inline void expect_family_passes(const std::string& family) {
  VerifyOptions o;
  o.root = kFixtures;
  o.only = {family};
  auto results = run_verify(o);
  ASSERT_FALSE(results.empty()) << "no fixture case for " << family;
  for (const auto& r : results) {
    EXPECT_EQ(r.status, CaseStatus::Pass) << r.name << ": " << r.message;
    EXPECT_FALSE(r.checks.empty()) << r.name;
    for (const auto& c : r.checks)
      EXPECT_TRUE(c.pass) << r.name << "/" << c.name << " max_abs " << c.max_abs << " " << c.note;
  }
}

struct RunResult {
  int status = -1;
  std::string output;  // stdout, and stderr too unless the caller redirects it
};

// Runs the lumen binary with `args` (a shell fragment); stderr is merged unless args redirect it.
inline RunResult run_cli(const std::string& args, bool merge_stderr = true) {
  RunResult r;
  std::string cmd = std::string(LUMEN_CLI_PATH) + " " + args + (merge_stderr ? " 2>&1" : "");
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace lumen::testing_util

// Helpers shared by the test files.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

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

}  // namespace lumen::testing_util

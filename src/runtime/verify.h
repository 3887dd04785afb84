// `lumen verify`: runs a golden-fixture root (shared/fixtures/FORMAT.md) — model cases,
// tokenizer groups and preprocessing entries — and compares lumen with the reference.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lumen {

enum class CaseStatus { Pass, Fail, Skip };
const char* case_status_name(CaseStatus s);

struct TensorCheck {
  std::string name;
  double max_abs = 0, max_rel = 0;  // max |a-e| and max |a-e|/|e| (over |e| > 0)
  bool pass = false;
  std::string note;  // shape mismatch, first differing id, ...
};

struct CaseResult {
  std::string name;   // "clip_forward", "tokenizer:clip", "preprocess:clip_224/grad_37x53"
  std::string group;  // family, "tokenizer" or "preprocess"
  CaseStatus status = CaseStatus::Skip;
  std::string message;  // why skipped/failed
  std::vector<TensorCheck> checks;
  double seconds = 0;
};

struct VerifyOptions {
  std::string root;
  std::vector<std::string> only;  // family names, tokenizer:NAME, preprocess:PROCESSOR; empty = all
  std::function<void(const CaseResult&)> on_result;  // called as each case finishes
};

std::vector<CaseResult> run_verify(const VerifyOptions& opts);

// Elementwise |a - e| <= atol + rtol * |e| (floats) or equality (integers).
TensorCheck compare_tensors(const std::string& name, const Tensor& actual, const Tensor& expected, double atol,
                            double rtol);

}  // namespace lumen

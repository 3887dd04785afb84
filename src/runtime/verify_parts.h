// The tokenizer and preprocessing halves of `lumen verify`, kept apart from model cases.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/verify.h"

namespace lumen {

// One tokenizer group (FORMAT.md section 7): every string of cases.json as one case.
CaseResult run_tokenizer_group(const std::string& root, const nlohmann::json& record);
// One preprocessing entry (FORMAT.md section 8) against the `_slow` (PIL-based) tensors.
CaseResult run_preprocess_entry(const std::string& root, const nlohmann::json& entry,
                                const nlohmann::json& preprocess_section);

}  // namespace lumen

#include "runtime/verify_parts.h"

namespace lumen {

// Placeholder until the tokenizer and image-processor components land: reported as SKIP.
CaseResult run_tokenizer_group(const std::string&, const nlohmann::json& record) {
  CaseResult r;
  r.name = "tokenizer:" + record.value("name", std::string("?"));
  r.group = "tokenizer";
  r.status = CaseStatus::Skip;
  r.message = "tokenizer kind not supported yet";
  return r;
}

CaseResult run_preprocess_entry(const std::string&, const nlohmann::json& entry, const nlohmann::json&) {
  CaseResult r;
  r.name = "preprocess:" + entry.value("name", std::string("?"));
  r.group = "preprocess";
  r.status = CaseStatus::Skip;
  r.message = "processor not supported yet";
  return r;
}

}  // namespace lumen

// Fast reading of tokenizer.json and vocab files. A 150k-entry tokenizer.json is ~11 MB, and
// building a generic JSON tree for it costs more than our whole load budget, so the model's
// "vocab" and "merges" are scanned straight into flat tables; every other (small) value is
// handed to nlohmann::json.
#pragma once
#include <string>
#include <string_view>

#include "text/components.h"

namespace lumen::text {

struct TokenizerJson {
  json top = json::object();  // every top-level field except "model"
  ModelData model;
  bool has_model = false;
};

// Errors name `label` (usually the file path) and the field at fault.
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& label);

// vocab.json: {"token": id, ...}
Vocab parse_vocab_json(std::string_view text, const std::string& label);

}  // namespace lumen::text

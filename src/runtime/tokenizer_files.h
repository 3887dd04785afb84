// Tokenizer files of a checkpoint directory: copying them into a new checkpoint (make-tiny)
// and reading the facts a config needs from them (vocabulary size, special ids).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lumen {

struct TokenizerFacts {
  int64_t vocab_size = 0;
  nlohmann::json special_ids = nlohmann::json::object();  // {"bos": id, "eos": id, "pad": id}
};

// A bundled tokenizer: data/tokenizers/<name> (clip, llama2), or $LUMEN_DATA_DIR/tokenizers/<name>.
std::string default_tokenizer_dir(const std::string& name = "clip");
// Copies a tokenizer (a tokenizer.json file, or a directory of tokenizer files) into `out_dir`
// and loads it to report its facts. Errors name the source.
TokenizerFacts install_tokenizer_files(const std::string& source, const std::string& out_dir);

}  // namespace lumen

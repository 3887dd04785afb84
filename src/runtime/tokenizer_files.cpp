#include "runtime/tokenizer_files.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "text/tokenizer.h"

namespace lumen {

namespace fs = std::filesystem;

std::string default_tokenizer_dir(const std::string& name) {
  const char* env = std::getenv("LUMEN_DATA_DIR");
  std::string base = env && *env ? env : std::string(LUMEN_SOURCE_DIR) + "/data";
  return base + "/tokenizers/" + name;
}

TokenizerFacts install_tokenizer_files(const std::string& source, const std::string& out_dir) {
  static const char* kFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "vocab.json",     "merges.txt",            "vocab.txt",
                                 "tokenizer.model", "spiece.model",         "sentencepiece.bpe.model",
                                 "added_tokens.json"};
  std::error_code ec;
  if (fs::is_regular_file(source, ec)) {
    fs::copy_file(source, out_dir + "/tokenizer.json", fs::copy_options::overwrite_existing, ec);
    LUMEN_CHECK(!ec, source, ": cannot copy to ", out_dir, ": ", ec.message());
  } else {
    LUMEN_CHECK(fs::is_directory(source, ec), source, ": no such tokenizer file or directory");
    int copied = 0;
    for (const char* name : kFiles) {
      fs::path p = fs::path(source) / name;
      if (!fs::exists(p, ec)) continue;
      fs::copy_file(p, fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
      LUMEN_CHECK(!ec, p.string(), ": cannot copy to ", out_dir, ": ", ec.message());
      ++copied;
    }
    LUMEN_CHECK(copied > 0, source, ": no tokenizer files (tokenizer.json, vocab.json+merges.txt, vocab.txt, *.model)");
  }
  Tokenizer tok = with_context("tokenizer " + source, [&] { return Tokenizer::from_dir(out_dir); });
  TokenizerFacts f;
  f.vocab_size = static_cast<int64_t>(tok.vocab_size());
  if (auto id = tok.bos_id()) f.special_ids["bos"] = *id;
  if (auto id = tok.eos_id()) f.special_ids["eos"] = *id;
  if (auto id = tok.pad_id()) f.special_ids["pad"] = *id;
  return f;
}

}  // namespace lumen

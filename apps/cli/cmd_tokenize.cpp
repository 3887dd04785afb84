// lumen tokenize: token ids and pieces of a text, as the model's tokenizer produces them.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace lumen::cli {
namespace {

struct TokenizeArgs {
  std::string model, tokenizer;
  std::vector<std::string> texts;
  std::string jsonl;  // file of JSON strings, one a line ("-": stdin)
  bool no_special = false;
  bool decode = false;
  CommonFlags common;
};

// Batch mode for scripts (the differential test): each input line is a JSON string; each
// output line is the JSON array of its ids, in the same order.
int run_jsonl(const TokenizeArgs& a, const Tokenizer& tok) {
  std::ifstream file;
  if (a.jsonl != "-") {
    file.open(a.jsonl, std::ios::binary);
    LUMEN_CHECK(file, a.jsonl, ": cannot open");
  }
  std::istream& in = a.jsonl == "-" ? std::cin : file;
  std::string line, out;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::string text;
    try {
      text = nlohmann::json::parse(line).get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      fail(a.jsonl, ": line ", line_no, ": expected a JSON string: ", e.what());
    }
    const Encoding e = tok.encode(text, !a.no_special);
    out = "[";
    for (size_t i = 0; i < e.ids.size(); ++i) {
      if (i) out += ',';
      out += std::to_string(e.ids[i]);
    }
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

int run(const TokenizeArgs& a) {
  apply_common_flags(a.common);
  LUMEN_CHECK(a.model.empty() != a.tokenizer.empty(), "give either --model DIR or --tokenizer FILE");
  LUMEN_CHECK(!a.texts.empty() || !a.jsonl.empty(), "give texts to tokenize, or --jsonl FILE");
  Tokenizer tok = a.model.empty() ? Tokenizer::from_file(a.tokenizer) : Tokenizer::from_dir(a.model);
  if (!a.jsonl.empty()) return run_jsonl(a, tok);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& text : a.texts) {
    Encoding e = tok.encode(text, !a.no_special);
    std::vector<int64_t> ids(e.ids.begin(), e.ids.end());
    if (a.common.json) {
      nlohmann::json row = {{"text", text}, {"ids", ids}, {"tokens", e.tokens}};
      if (a.decode) row["decoded"] = tok.decode(ids, false);
      out.push_back(row);
      continue;
    }
    std::printf("%s\n  %zu tokens\n", text.c_str(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      std::printf("  %8lld  %s\n", static_cast<long long>(ids[i]), nlohmann::json(e.tokens[i]).dump().c_str());
    if (a.decode) std::printf("  decoded: %s\n", nlohmann::json(tok.decode(ids, false)).dump().c_str());
  }
  if (a.common.json) std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

Register reg({"tokenize", "Show the token ids and pieces of texts",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<TokenizeArgs>();
                cmd->add_option("texts", a->texts, "Texts to tokenize");
                cmd->add_option("--jsonl", a->jsonl,
                                "Read texts from this file (one JSON string a line, - for stdin); print one "
                                "JSON array of ids a line");
                cmd->add_option("--model,-m", a->model, "Checkpoint directory with tokenizer files");
                cmd->add_option("--tokenizer", a->tokenizer, "A tokenizer.json or SentencePiece .model file");
                cmd->add_flag("--no-special", a->no_special, "Do not add special tokens (BOS/EOS, [CLS]...)");
                cmd->add_flag("--decode", a->decode, "Also decode the ids back to text");
                add_common_flags(cmd, &a->common);
                cmd->footer("Example: lumen tokenize --model clip-vit-base-patch32 \"a photo of a cat\" --json");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

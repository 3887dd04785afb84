// lumen tokenize: token ids and pieces of a text, as the model's tokenizer produces them.
#include <sys/stat.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace lumen::cli {
namespace {

struct TokenizeArgs {
  std::string model, tokenizer;
  std::vector<std::string> texts;
  bool no_special = false;
  bool decode = false;
  CommonFlags common;
};

int run(const TokenizeArgs& a) {
  apply_common_flags(a.common);
  LUMEN_CHECK(a.model.empty() != a.tokenizer.empty(), "give either --model DIR or --tokenizer FILE");
  Tokenizer tok = a.model.empty() ? Tokenizer::from_file(a.tokenizer) : Tokenizer::from_dir(a.model);
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
                cmd->add_option("texts", a->texts, "Texts to tokenize")->required();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory with tokenizer files");
                cmd->add_option("--tokenizer", a->tokenizer, "A tokenizer.json file");
                cmd->add_flag("--no-special", a->no_special, "Do not add special tokens (BOS/EOS, [CLS]...)");
                cmd->add_flag("--decode", a->decode, "Also decode the ids back to text");
                add_common_flags(cmd, &a->common);
                cmd->footer("Example: lumen tokenize --model clip-vit-base-patch32 \"a photo of a cat\" --json");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

// lumen template: render a chat template on a conversation and print the prompt text, the
// way transformers' apply_chat_template(..., tokenize=False) would. For debugging templates.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "apps/cli/commands.h"
#include "core/error.h"
#include "text/chat_template.h"

namespace lumen::cli {
namespace {

struct TemplateArgs {
  std::string model, template_file, builtin, messages_file, tools_file;
  bool add_generation_prompt = false;
  CommonFlags common;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LUMEN_CHECK(f, path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::ordered_json read_json(const std::string& path) {
  try {
    return nlohmann::ordered_json::parse(slurp(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

int run(const TemplateArgs& a) {
  apply_common_flags(a.common);
  const int sources = !a.model.empty() + !a.template_file.empty() + !a.builtin.empty();
  LUMEN_CHECK(sources == 1, "give one of --model DIR, --template FILE or --builtin NAME");
  std::optional<text::ChatTemplate> tmpl;
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
  if (!a.model.empty()) {
    tmpl = text::ChatTemplate::from_dir(a.model);
    LUMEN_CHECK(tmpl, a.model, ": no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json)");
    special_tokens = text::chat_context_from_tokenizer_config(a.model);
  } else if (!a.template_file.empty()) {
    tmpl = with_context(a.template_file, [&] { return text::ChatTemplate::parse(slurp(a.template_file)); });
  } else {
    tmpl = text::ChatTemplate::parse(text::builtin_chat_template(a.builtin));
  }

  // --messages holds either the list of messages or a whole context object (rendered as is,
  // with the model's special tokens filled in where it has none).
  const nlohmann::ordered_json input = read_json(a.messages_file);
  nlohmann::ordered_json context;
  if (input.is_array()) {
    const nlohmann::ordered_json tools = a.tools_file.empty() ? nlohmann::ordered_json(nullptr) : read_json(a.tools_file);
    context = text::make_chat_context(input, a.add_generation_prompt, special_tokens, tools);
  } else {
    LUMEN_CHECK(input.is_object(), a.messages_file, ": expected a list of messages or a context object");
    context = input;
    for (auto it = special_tokens.begin(); it != special_tokens.end(); ++it)
      if (!context.contains(it.key())) context[it.key()] = it.value();
    if (a.add_generation_prompt) context["add_generation_prompt"] = true;
  }
  const std::string prompt = tmpl->render(context);
  if (a.common.json) {
    nlohmann::ordered_json out = {{"prompt", prompt}};
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    if (prompt.empty() || prompt.back() != '\n') std::printf("\n");
  }
  return 0;
}

Register reg({"template", "Render a chat template on a conversation and print the prompt",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<TemplateArgs>();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory (its chat template and special tokens)");
                cmd->add_option("--template", a->template_file, "A Jinja chat template file");
                cmd->add_option("--builtin", a->builtin, "A built-in template: llava, llava_next_mistral, vicuna, llama2");
                cmd->add_option("--messages", a->messages_file, "JSON file: a list of messages, or a full context object")
                    ->required();
                cmd->add_option("--tools", a->tools_file, "JSON file with a list of tool schemas");
                cmd->add_flag("--add-generation-prompt", a->add_generation_prompt,
                              "End with the assistant turn opener (add_generation_prompt=True)");
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "The printed text ends with a newline only for display; --json shows the exact prompt.\n"
                    "Example: lumen template --model llava-1.5-7b-hf --messages chat.json --add-generation-prompt");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

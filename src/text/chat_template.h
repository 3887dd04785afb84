// Chat templates: the Jinja programs HF checkpoints ship (tokenizer_config.json
// "chat_template", chat_template.json, chat_template.jinja) that turn a list of messages into
// the model's prompt text. Rendering follows transformers' apply_chat_template environment
// (jinja2 ImmutableSandboxedEnvironment, trim_blocks and lstrip_blocks on, loopcontrols,
// the tojson / raise_exception / strftime_now additions), so prompts match it byte for byte.
// The interpreter lives in text/jinja/; see parser.h for the supported syntax.
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "text/jinja/template_error.h"

namespace lumen::text {

namespace jinja {
struct Program;
struct RenderLimits;
}  // namespace jinja

class ChatTemplate {
 public:
  // Parses Jinja source; throws TemplateError "chat template line L:C: ..." on syntax errors,
  // unknown filters/tests and unsupported tags.
  static ChatTemplate parse(std::string source);
  // The checkpoint's template: chat_template.jinja, else chat_template.json
  // {"chat_template": ...}, else tokenizer_config.json "chat_template" (a string, or a list
  // of {"name", "template"} of which "default" is used). nullopt when there is none.
  static std::optional<ChatTemplate> from_dir(const std::filesystem::path& dir);

  // Renders with `context` as the template's variables: {"messages": [...],
  // "add_generation_prompt": bool, "bos_token": ..., "tools": ...}. Object keys keep their
  // order (tojson prints them in that order, as Python dicts do). Throws TemplateError on
  // runtime errors, including the template's own raise_exception('...').
  std::string render(const nlohmann::ordered_json& context) const;
  std::string render(const nlohmann::ordered_json& context, const jinja::RenderLimits& limits) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Program> program_;
};

// The variables transformers passes to every chat template besides the conversation: the
// special tokens of tokenizer_config.json / special_tokens_map.json (bos_token, eos_token,
// unk_token, pad_token, sep_token, cls_token, mask_token, additional_special_tokens) as
// strings, taking the "content" of AddedToken objects and leaving out tokens that are null.
// Missing files give an empty object.
nlohmann::ordered_json chat_context_from_tokenizer_config(const std::filesystem::path& dir);

// The full context apply_chat_template renders with: `special_tokens` (as above) plus
// messages, tools (null when none), documents (null) and add_generation_prompt.
nlohmann::ordered_json make_chat_context(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                         const nlohmann::ordered_json& special_tokens,
                                         const nlohmann::ordered_json& tools = nullptr);

// Fallback templates for checkpoints that ship none, written after the templates HF ships
// for the same prompt formats. Names: "llava" (LLaVA-1.5: "USER: <image>\n... ASSISTANT:"),
// "llava_next_mistral" ("[INST] <image>\n... [/INST]"), "vicuna" (LLaVA-NeXT-Vicuna /
// Vicuna v1.1 with its system line), "llama2" (Llama-2-chat [INST] <<SYS>>). Message content
// may be a string or a list of {"type": "image"} / {"type": "text", "text": ...} parts.
// Throws lumen::Error for an unknown name.
const std::string& builtin_chat_template(const std::string& name);

}  // namespace lumen::text

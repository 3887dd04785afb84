#include "text/chat_template.h"

#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "text/jinja/interpreter.h"
#include "text/jinja/parser.h"

namespace lumen::text {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  LUMEN_CHECK(f, path.string(), ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::ordered_json read_json(const fs::path& path) {
  try {
    return nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": invalid JSON: ", e.what());
  }
}

// tokenizer_config.json "chat_template": a string, or named templates of which transformers
// uses "default" when no name is asked for.
std::string template_from_config_value(const nlohmann::ordered_json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  LUMEN_CHECK(v.is_array(), where, ": chat_template must be a string or a list of {name, template}");
  std::string names;
  for (const auto& entry : v) {
    LUMEN_CHECK(entry.is_object() && entry.contains("name") && entry.contains("template") && entry["name"].is_string() &&
                    entry["template"].is_string(),
                where, ": chat_template list entries need string \"name\" and \"template\"");
    if (entry["name"] == "default") return entry["template"].get<std::string>();
    names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  }
  fail(where, ": no chat template named \"default\" (has: ", names, ")");
}

}  // namespace

ChatTemplate ChatTemplate::parse(std::string source) {
  ChatTemplate t;
  t.program_ = jinja::parse_template(source);
  t.source_ = std::move(source);
  return t;
}

std::optional<ChatTemplate> ChatTemplate::from_dir(const fs::path& dir) {
  if (fs::exists(dir / "chat_template.jinja")) {
    return with_context((dir / "chat_template.jinja").string(), [&] { return parse(read_file(dir / "chat_template.jinja")); });
  }
  if (fs::exists(dir / "chat_template.json")) {
    const fs::path path = dir / "chat_template.json";
    const auto j = read_json(path);
    LUMEN_CHECK(j.is_object() && j.contains("chat_template"), path.string(), ": no \"chat_template\" field");
    const std::string source = template_from_config_value(j["chat_template"], path.string());
    return with_context(path.string(), [&] { return parse(source); });
  }
  if (fs::exists(dir / "tokenizer_config.json")) {
    const fs::path path = dir / "tokenizer_config.json";
    const auto j = read_json(path);
    if (!j.is_object() || !j.contains("chat_template") || j["chat_template"].is_null()) return std::nullopt;
    const std::string source = template_from_config_value(j["chat_template"], path.string());
    return with_context(path.string(), [&] { return parse(source); });
  }
  return std::nullopt;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const { return render(context, jinja::RenderLimits{}); }

std::string ChatTemplate::render(const nlohmann::ordered_json& context, const jinja::RenderLimits& limits) const {
  LUMEN_CHECK(program_, "chat template: render() on an empty template");
  jinja::Interpreter interpreter(*program_, limits);
  return interpreter.render(jinja::from_json(context));
}

nlohmann::ordered_json chat_context_from_tokenizer_config(const fs::path& dir) {
  static const char* kTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                  "pad_token", "cls_token", "mask_token"};
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  // A token is "..." or an AddedToken object {"content": "...", ...}.
  auto token_text = [](const nlohmann::ordered_json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  auto take = [&](const fs::path& path) {
    if (!fs::exists(path)) return;
    const auto j = read_json(path);
    if (!j.is_object()) return;
    for (const char* key : kTokens) {
      if (out.contains(key) || !j.contains(key)) continue;
      if (auto text = token_text(j[key])) out[key] = *text;
    }
    if (!out.contains("additional_special_tokens") && j.contains("additional_special_tokens") &&
        j["additional_special_tokens"].is_array()) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const auto& t : j["additional_special_tokens"])
        if (auto text = token_text(t)) list.push_back(*text);
      out["additional_special_tokens"] = list;
    }
  };
  take(dir / "tokenizer_config.json");
  take(dir / "special_tokens_map.json");
  return out;
}

nlohmann::ordered_json make_chat_context(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                         const nlohmann::ordered_json& special_tokens,
                                         const nlohmann::ordered_json& tools) {
  // Same keyword order as transformers' render call: messages, tools, documents,
  // add_generation_prompt, then the special tokens.
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  if (special_tokens.is_object())
    for (auto it = special_tokens.begin(); it != special_tokens.end(); ++it) ctx[it.key()] = it.value();
  return ctx;
}

namespace {

// Shared by the LLaVA-style templates: message content is either a string or a list of
// parts; images render first (one "<image>\n" each), then the text parts, which is how the
// llava-hf chat_template.json files lay them out.
constexpr const char* kContentMacros = R"JINJA(
{%- macro images_of(content) -%}
  {%- if content is not string -%}
    {%- for part in content | selectattr('type', 'equalto', 'image') -%}{{ '<image>\n' }}{%- endfor -%}
  {%- endif -%}
{%- endmacro -%}
{%- macro text_of(content, sep) -%}
  {%- if content is string -%}{{ content }}
  {%- else -%}
    {%- for part in content | selectattr('type', 'equalto', 'text') -%}
      {{ part['text'] }}{%- if not loop.last -%}{{ sep }}{%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro -%}
)JINJA";

// LLaVA-1.5 (llava-hf/llava-1.5-7b-hf chat_template.json): "USER: <image>\n<text> ASSISTANT:".
// Each text part is followed by a space; system text has no role prefix.
constexpr const char* kLlava = R"JINJA(
{%- for message in messages -%}
  {%- if message['role'] != 'system' -%}{{ message['role'].upper() + ': ' }}{%- endif -%}
  {{- images_of(message['content']) -}}
  {%- if message['content'] is string -%}{{ message['content'] + ' ' }}
  {%- else -%}
    {%- for part in message['content'] | selectattr('type', 'equalto', 'text') -%}{{ part['text'] + ' ' }}{%- endfor -%}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}
)JINJA";

// LLaVA-NeXT on Mistral (llava-hf/llava-v1.6-mistral-7b-hf chat_template.json):
// "[INST] <image>\n<text> [/INST] <answer></s> [INST] ...".
constexpr const char* kLlavaNextMistral = R"JINJA(
{%- for message in messages -%}
  {%- if message['role'] == 'system' -%}
    {{- '<<SYS>>\n' + text_of(message['content'], '') + '\n<</SYS>>\n\n' -}}
  {%- elif message['role'] == 'user' -%}
    {{- '[INST] ' + images_of(message['content']) + text_of(message['content'], '') + ' [/INST]' -}}
  {%- elif message['role'] == 'assistant' -%}
    {{- ' ' + text_of(message['content'], '') + '</s> ' -}}
  {%- else -%}
    {{- raise_exception('Only system, user and assistant roles are supported!') -}}
  {%- endif -%}
{%- endfor -%}
)JINJA";

// Vicuna v1.1 as LLaVA-NeXT-Vicuna was trained on (LLaVA's conv_vicuna_v1): a system line,
// then "USER: <image>\n<text> ASSISTANT: <answer></s>".
constexpr const char* kVicuna = R"JINJA(
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set system_message = text_of(messages[0]['content'], ' ') -%}
  {%- set loop_messages = messages[1:] -%}
{%- else -%}
  {%- set system_message = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions." -%}
  {%- set loop_messages = messages -%}
{%- endif -%}
{{- system_message + ' ' -}}
{%- for message in loop_messages -%}
  {%- if message['role'] == 'user' -%}
    {{- 'USER: ' + images_of(message['content']) + text_of(message['content'], ' ') + ' ' -}}
  {%- elif message['role'] == 'assistant' -%}
    {{- 'ASSISTANT: ' + text_of(message['content'], ' ') + '</s>' -}}
  {%- else -%}
    {{- raise_exception('Only user and assistant roles are supported after the system message!') -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}
)JINJA";

// Llama-2-chat (meta-llama/Llama-2-7b-chat-hf tokenizer_config.json), with image parts
// placed before the text as in LLaVA's llama_2 conversation style.
constexpr const char* kLlama2 = R"JINJA(
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set loop_messages = messages[1:] -%}
  {%- set system_message = text_of(messages[0]['content'], ' ') -%}
{%- else -%}
  {%- set loop_messages = messages -%}
  {%- set system_message = false -%}
{%- endif -%}
{%- for message in loop_messages -%}
  {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
    {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
  {%- endif -%}
  {%- set content = images_of(message['content']) + text_of(message['content'], ' ') -%}
  {%- if loop.index0 == 0 and system_message != false -%}
    {%- set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + content -%}
  {%- endif -%}
  {%- if message['role'] == 'user' -%}
    {{- bos_token + '[INST] ' + content.strip() + ' [/INST]' -}}
  {%- elif message['role'] == 'assistant' -%}
    {{- ' ' + content.strip() + ' ' + eos_token -}}
  {%- endif -%}
{%- endfor -%}
)JINJA";

}  // namespace

const std::string& builtin_chat_template(const std::string& name) {
  static const std::map<std::string, std::string> templates = {
      {"llava", std::string(kContentMacros) + kLlava},
      {"llava_next_mistral", std::string(kContentMacros) + kLlavaNextMistral},
      {"vicuna", std::string(kContentMacros) + kVicuna},
      {"llama2", std::string(kContentMacros) + kLlama2},
  };
  auto it = templates.find(name);
  if (it == templates.end()) {
    std::string names;
    for (const auto& [n, t] : templates) names += (names.empty() ? "" : ", ") + n;
    fail("no built-in chat template named '", name, "' (have: ", names, ")");
  }
  return it->second;
}

}  // namespace lumen::text

// libFuzzer target: ChatTemplate::parse and render on arbitrary template text with a fixed
// conversation. Bad templates must end in a lumen::Error (syntax error, runtime error, or a
// RenderLimits stop); a crash, a hang, a sanitizer report or any other exception is a bug.
// Limits are tighter than the defaults so that each input stays fast.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "text/chat_template.h"
#include "text/jinja/interpreter.h"
#include "text/unicode.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this? ünï 🦙"}]},
      {"role": "assistant", "content": "A cat.", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1.5}}}]},
      {"role": "user", "content": "  and now?  "}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "documents": null,
    "add_generation_prompt": true,
    "bos_token": "<s>", "eos_token": "</s>"
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  // Templates are text: make the bytes valid UTF-8 so the fuzzer explores the grammar
  // rather than the encoding check (which has its own unit coverage).
  const std::string source = lumen::text::sanitize_utf8(std::string(reinterpret_cast<const char*>(data), size));
  try {
    const lumen::text::ChatTemplate t = lumen::text::ChatTemplate::parse(source);
    lumen::text::jinja::RenderLimits limits;
    limits.max_steps = 200'000;
    limits.max_output_bytes = 1 << 20;
    limits.max_call_depth = 32;
    (void)t.render(context(), limits);
  } catch (const lumen::Error&) {
  }
  return 0;
}

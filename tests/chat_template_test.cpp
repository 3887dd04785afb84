// Chat templates against jinja2: tests/data/chat_templates/cases.json holds, for real
// checkpoint templates (Llama-3, Qwen3, llava-hf LLaVA-1.5 and LLaVA-NeXT-Mistral), lumen's
// built-in fallbacks and a bank of one-feature templates, the text jinja2 3.1 renders with
// transformers' environment settings (scripts/make_chat_template_cases.py), or the error it
// raises. Rendering must match byte for byte; errors must be errors. Further tests cover what
// the reference cannot: error positions, loading from checkpoint directories, and limits.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "text/chat_template.h"
#include "text/jinja/interpreter.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using text::ChatTemplate;
using text::TemplateError;

const fs::path kData = fs::path(LUMEN_TEST_DATA) / "chat_templates";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const ordered_json& cases() {
  static const ordered_json j = ordered_json::parse(slurp(kData / "cases.json"));
  return j;
}

std::string render(const std::string& source, const ordered_json& ctx) { return ChatTemplate::parse(source).render(ctx); }

// Every case of cases.json, rendered and compared. One test walks them all so a failure
// report names each failing case; the counts guard against an empty or truncated file.
TEST(ChatTemplate, MatchesJinja2OnAllReferenceCases) {
  const ordered_json& all = cases();
  ASSERT_GE(all["cases"].size(), 200u);
  int rendered = 0, errored = 0;
  for (const auto& c : all["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    std::string source;
    if (c.contains("builtin")) {
      source = all["builtins"][c["builtin"].get<std::string>()];
    } else if (c.contains("template_file")) {
      source = slurp(kData / c["template_file"].get<std::string>());
    } else {
      source = c["template"];
    }
    const ordered_json& ctx = all["contexts"][c["context"].get<size_t>()];
    if (c.contains("expected")) {
      try {
        EXPECT_EQ(render(source, ctx), c["expected"].get<std::string>());
        ++rendered;
      } catch (const Error& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
      continue;
    }
    const ordered_json& err = c["error"];
    const std::string kind = err["kind"];
    try {
      ChatTemplate t = ChatTemplate::parse(source);
      EXPECT_NE(kind, "syntax") << "jinja2 rejects this template while parsing: " << err["message"];
      const std::string out = t.render(ctx);
      ADD_FAILURE() << "rendered " << nlohmann::json(out).dump() << " but jinja2 raised " << err["message"];
    } catch (const TemplateError& e) {
      ++errored;
      EXPECT_NE(std::string(e.what()).find("chat template line "), std::string::npos) << e.what();
      if (kind == "raised") {
        EXPECT_TRUE(e.raised_by_template()) << e.what();
        EXPECT_EQ(e.message(), err["message"].get<std::string>());
      }
    }
  }
  EXPECT_GE(rendered, 170);
  EXPECT_GE(errored, 20);
}

// The built-in templates in cases.json were read out of chat_template.cpp when the cases
// were made; if the C++ changes, the reference outputs must be regenerated.
TEST(ChatTemplate, BuiltinsAreTheOnesTheCasesWereMadeFrom) {
  for (const auto& [name, source] : cases()["builtins"].items()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(text::builtin_chat_template(name), source.get<std::string>())
        << "rerun scripts/make_chat_template_cases.py";
  }
  EXPECT_THROW(text::builtin_chat_template("no-such-template"), Error);
}

// Errors name the line and column of the construct at fault.
TEST(ChatTemplate, ErrorsNameLineAndColumn) {
  auto parse_error = [](const std::string& src) -> std::string {
    try {
      ChatTemplate::parse(src);
    } catch (const TemplateError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(parse_error("{{ s|frobnicate }}"), "chat template line 1:6: no filter named 'frobnicate'");
  EXPECT_EQ(parse_error("a\nb\n  {{ x is frob }}"), "chat template line 3:11: no test named 'frob'");
  EXPECT_EQ(parse_error("{% if x %}\n{% for y in z %}\n"),
            "chat template line 2:17: unexpected end of template, expected 'endfor' or 'else'");
  EXPECT_EQ(parse_error("\n\n{% extends 'base.html' %}"),
            "chat template line 3:4: the 'extends' tag is not supported by lumen's chat template engine");
  EXPECT_EQ(parse_error("{% call foo() %}{% endcall %}"),
            "chat template line 1:4: the 'call' tag is not supported by lumen's chat template engine");
  EXPECT_EQ(parse_error("{% frob %}"), "chat template line 1:4: unknown tag 'frob'");
  EXPECT_EQ(parse_error("{{ 'abc }}"), "chat template line 1:4: unterminated string");
  EXPECT_EQ(parse_error("x {# open"), "chat template line 1:3: missing end of comment tag '#}'");
  EXPECT_EQ(parse_error("{{ 1 + }}"), "chat template line 1:8: expected an expression, got '}}'");
  EXPECT_EQ(parse_error("{{ a ! b }}"), "chat template line 1:6: unexpected character '!' in tag");
  EXPECT_EQ(parse_error("{% for x in y recursive %}{% endfor %}"),
            "chat template line 1:15: recursive for loops are not supported");
  EXPECT_EQ(parse_error("{{ f(*args) }}"), "chat template line 1:6: *args and **kwargs in calls are not supported");

  try {
    render("line one\n  {{ messages[0].content.nope.deeper }}", {{"messages", ordered_json::array({{{"content", "x"}}})}});
    FAIL() << "no error";
  } catch (const TemplateError& e) {
    EXPECT_EQ(std::string(e.what()), "chat template line 2:30: 'str object' has no attribute 'nope'");
    EXPECT_FALSE(e.raised_by_template());
  }
}

TEST(ChatTemplate, RaiseExceptionCarriesTheTemplatesMessage) {
  const std::string& llama2 = text::builtin_chat_template("llama2");
  const ordered_json msgs = ordered_json::array({{{"role", "assistant"}, {"content", "hi"}}});
  try {
    ChatTemplate::parse(llama2).render(text::make_chat_context(msgs, true, {{"bos_token", "<s>"}, {"eos_token", "</s>"}}));
    FAIL() << "no error";
  } catch (const TemplateError& e) {
    EXPECT_TRUE(e.raised_by_template());
    EXPECT_EQ(e.message(), "Conversation roles must alternate user/assistant/user/assistant/...");
    EXPECT_NE(std::string(e.what()).find("chat template line "), std::string::npos);
  }
}

// Loading from a checkpoint directory, in transformers' order of preference.
class ChatTemplateDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lumen_chat_template_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name, std::ios::binary) << text; }
  std::string render_dir() {
    auto t = ChatTemplate::from_dir(dir_);
    if (!t) return "(none)";
    return t->render({{"messages", ordered_json::array({{{"role", "user"}, {"content", "hi"}}})}});
  }
  fs::path dir_;
};

TEST_F(ChatTemplateDir, PrefersJinjaThenJsonThenTokenizerConfig) {
  EXPECT_EQ(render_dir(), "(none)");
  write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  EXPECT_EQ(render_dir(), "(none)");
  write("tokenizer_config.json", R"({"chat_template": "config:{{ messages[0].content }}"})");
  EXPECT_EQ(render_dir(), "config:hi");
  write("chat_template.json", R"({"chat_template": "json:{{ messages[0].content }}"})");
  EXPECT_EQ(render_dir(), "json:hi");
  write("chat_template.jinja", "jinja:{{ messages[0].content }}\n");
  EXPECT_EQ(render_dir(), "jinja:hi");
}

TEST_F(ChatTemplateDir, NamedTemplatesUseDefault) {
  write("tokenizer_config.json",
        R"({"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "plain"}]})");
  EXPECT_EQ(render_dir(), "plain");
  write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "tools"}]})");
  try {
    ChatTemplate::from_dir(dir_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template named \"default\" (has: tool_use)"), std::string::npos);
  }
}

TEST_F(ChatTemplateDir, SyntaxErrorsNameTheFile) {
  write("chat_template.jinja", "{% if %}");
  try {
    ChatTemplate::from_dir(dir_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template.jinja: chat template line 1:7"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, SpecialTokensFromTokenizerConfig) {
  // llama2: AddedToken objects, and pad_token null (left out, as in transformers).
  EXPECT_EQ(text::chat_context_from_tokenizer_config(kData / "llama2"),
            ordered_json({{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}));
  const ordered_json qwen = text::chat_context_from_tokenizer_config(kData / "qwen");
  EXPECT_FALSE(qwen.contains("bos_token"));
  EXPECT_EQ(qwen["eos_token"], "<|im_end|>");
  EXPECT_EQ(qwen["additional_special_tokens"][0], "<|im_start|>");
  EXPECT_EQ(text::chat_context_from_tokenizer_config(kData / "no-such-dir"), ordered_json::object());
}

// The Llama-3 template with the context the CLI builds for a checkpoint directory.
TEST(ChatTemplate, Llama3EndToEnd) {
  const ChatTemplate t = ChatTemplate::parse(slurp(kData / "llama3.jinja"));
  const ordered_json msgs = ordered_json::array({{{"role", "user"}, {"content", " Hi "}}});
  const std::string out =
      t.render(text::make_chat_context(msgs, true, text::chat_context_from_tokenizer_config(kData / "llama3")));
  EXPECT_EQ(out,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Plain nlohmann::json contexts convert (their keys are sorted, which only matters to tojson).
TEST(ChatTemplate, AcceptsPlainJsonContext) {
  const nlohmann::json ctx = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"add_generation_prompt", true}};
  EXPECT_EQ(ChatTemplate::parse(text::builtin_chat_template("llava")).render(ctx), "USER: hi ASSISTANT:");
}

TEST(ChatTemplate, StrftimeNowIsTodayInLocalTime) {
  std::array<char, 64> buf{};
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::strftime(buf.data(), buf.size(), "%d %b %Y", &local);
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}", ordered_json::object()), buf.data());
}

// Runaway templates end in an error, not a hang or an exhausted machine.
TEST(ChatTemplate, LimitsStopRunawayTemplates) {
  auto error_of = [](const std::string& src) -> std::string {
    try {
      text::jinja::RenderLimits limits;
      limits.max_steps = 1'000'000;
      limits.max_output_bytes = 1 << 20;
      ChatTemplate::parse(src).render(ordered_json::object(), limits);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}").find("ran too long"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .find("too large"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000 }}").find("too large"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(l=[1]) %}{% for i in range(80) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}")
                .find("too large"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("nested more than"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}").find("nested too deeply"),
            std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_NE(error_of(chain + " }}").find("nested too deeply"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = ns %}").find("cannot hold another namespace"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 2 ** 64 }}").find("integer overflow"), std::string::npos);
}

// `lumen template` prints what render() gives.
TEST(ChatTemplate, CliRendersBuiltinTemplate) {
  const fs::path msgs = fs::temp_directory_path() / ("lumen_cli_template_" + std::to_string(::getpid()) + ".json");
  std::ofstream(msgs) << R"([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}])";
  const std::string cmd =
      std::string(LUMEN_CLI_PATH) + " template --builtin llava --messages " + msgs.string() + " --add-generation-prompt --json";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  EXPECT_EQ(::pclose(p), 0) << out;
  fs::remove(msgs);
  EXPECT_EQ(nlohmann::json::parse(out)["prompt"], "USER: <image>\nWhat is this? ASSISTANT:");
}

}  // namespace
}  // namespace lumen

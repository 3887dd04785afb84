// lumen chat: a multi-turn conversation in the terminal. Lines starting with "/" are
// commands: /image PATH attaches an image to the next message, /reset starts over, /quit ends.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/generation_flags.h"
#include "apps/cli/image_flags.h"
#include "runtime/vlm_session.h"

namespace lumen::cli {
namespace {

struct ChatArgs {
  std::string model, system;
  GenerationFlags gen;
  std::string quant = "stored";
  DecodeOptions decode;
  CommonFlags common;
};

const char* kHelp =
    "commands: /image PATH (attach to your next message), /reset (forget the conversation), /quit\n";

int run(const ChatArgs& a) {
  apply_common_flags(a.common);
  VlmSession s = VlmSession::open(a.model, load_options_from(a.quant));
  const GenerationParams params = apply_generation_flags(s.default_params(), a.gen);
  const bool interactive = ::isatty(STDIN_FILENO) && !a.common.json;
  if (!a.common.json)
    std::fprintf(stderr, "lumen chat: %s (%s, template: %s)\n%s", a.model.c_str(), s.model().family().c_str(),
                 s.template_source().c_str(), kHelp);
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  std::vector<Image> history_images;  // every image of the conversation, in prompt order
  std::vector<Image> pending;         // attached to the next message
  std::string line;
  int turn = 0;
  while (true) {
    if (interactive) std::fprintf(stderr, "\n> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/help") {
      std::fprintf(stderr, "%s", kHelp);
      continue;
    }
    if (line == "/reset") {
      history = nlohmann::ordered_json::array();
      history_images.clear();
      pending.clear();
      std::fprintf(stderr, "(conversation reset)\n");
      continue;
    }
    if (line.rfind("/image", 0) == 0) {
      std::string path = line.size() > 7 ? line.substr(7) : "";
      while (!path.empty() && path.front() == ' ') path.erase(0, 1);
      if (path.empty()) {
        std::fprintf(stderr, "usage: /image PATH\n");
        continue;
      }
      try {
        pending.push_back(decode_image_file(path, a.decode));
        std::fprintf(stderr, "(image %s attached to your next message)\n", path.c_str());
      } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
      }
      continue;
    }
    if (line[0] == '/') {
      std::fprintf(stderr, "unknown command %s; %s", line.c_str(), kHelp);
      continue;
    }
    nlohmann::ordered_json parts = nlohmann::ordered_json::array();
    for (size_t i = 0; i < pending.size(); ++i) parts.push_back({{"type", "image"}});
    parts.push_back({{"type", "text"}, {"text", line}});
    nlohmann::ordered_json msgs = history;
    if (!a.system.empty() && msgs.empty()) msgs.push_back({{"role", "system"}, {"content", a.system}});
    msgs.push_back({{"role", "user"}, {"content", parts}});
    std::vector<Image> images = history_images;
    images.insert(images.end(), pending.begin(), pending.end());
    GenerationResult r;
    try {
      PreparedPrompt p = s.prepare(s.render_chat(msgs, true), images);
      r = s.generate(p, params, [&](std::string_view piece) {
        if (!a.common.json) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return true;
      });
    } catch (const Error& e) {
      // A failed turn (context overflow, a bad image) leaves the conversation as it was.
      std::fprintf(stderr, "error: %s\n", e.what());
      continue;
    }
    ++turn;
    if (a.common.json) {
      nlohmann::ordered_json j = {{"turn", turn}, {"text", r.text}, {"finish_reason", r.finish_reason},
                                  {"usage", {{"prompt_tokens", r.prompt_tokens},
                                             {"completion_tokens", static_cast<int64_t>(r.tokens.size())}}}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("\n");
    }
    std::fflush(stdout);
    if (msgs.size() > history.size() + 1) history.push_back(msgs[history.size()]);  // the system message
    history.push_back(msgs.back());
    history.push_back({{"role", "assistant"}, {"content", {{{"type", "text"}, {"text", r.text}}}}});
    history_images = images;
    pending.clear();
  }
  return 0;
}

Register reg({"chat", "Chat with a model in the terminal (multi-turn, /image to attach images)",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<ChatArgs>();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory (HF layout)")->required();
                cmd->add_option("--system", a->system, "System message for the conversation");
                add_generation_flags(cmd, &a->gen);
                add_quant_flag(cmd, &a->quant);
                add_image_flags(cmd, &a->decode);
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "Reads one message per line from stdin. /image PATH attaches an image to the next message,\n"
                    "/reset starts a new conversation, /quit (or end of input) leaves. With --json each answer\n"
                    "is printed as one JSON line, so scripts can pipe a conversation through.\n\n"
                    "Example:\n  lumen chat -m llava-1.5-7b-hf\n  > /image cat.jpg\n  > What is the cat doing?");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

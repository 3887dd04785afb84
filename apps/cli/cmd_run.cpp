// lumen run: one prompt (with images) through a model that writes text, picked by what the
// checkpoint can do: a chat VLM (LLaVA line, ...) gets the prompt through its chat template and
// streams the answer; an image-to-text model (BLIP captioning / VQA, BLIP-2) gets it as its
// reference places a prompt (caption prefix, question, LM prompt) and decodes greedily or by
// beam search; a grounding model (KOSMOS-2) continues the prompt about the image and its
// entities come back with boxes in image pixels.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/cli/commands.h"
#include "apps/cli/generation_flags.h"
#include "apps/cli/image_flags.h"
#include "runtime/grounding_session.h"
#include "runtime/image_text_session.h"
#include "runtime/vlm_session.h"
#include "vision/image_processor.h"

namespace lumen::cli {
namespace {

struct RunArgs {
  std::string model, prompt, system;
  std::vector<std::string> images;
  bool raw = false;
  GenerationFlags gen;
  std::optional<int64_t> beams;
  std::string quant = "stored";
  std::string box_format, box_geometry = "processor";
  DecodeOptions decode;
  CommonFlags common;
};

// User turn content: one image part per image, then the text (as HF's processors document).
nlohmann::ordered_json user_content(size_t images, const std::string& text) {
  nlohmann::ordered_json parts = nlohmann::ordered_json::array();
  for (size_t i = 0; i < images; ++i) parts.push_back({{"type", "image"}});
  parts.push_back({{"type", "text"}, {"text", text}});
  return parts;
}

// The head every path's --json shares: {model, text, finish_reason, usage}, then its own fields.
nlohmann::ordered_json answer_json(const RunArgs& a, const std::string& text, const std::string& finish_reason,
                                   int64_t prompt_tokens, int64_t completion_tokens, int64_t images) {
  return {{"model", a.model},
          {"text", text},
          {"finish_reason", finish_reason},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"images", images}}}};
}

int run_chat(const RunArgs& a, const VlmSession& s) {
  LUMEN_CHECK(!a.beams, "--beams: beam search is for BLIP / BLIP-2 checkpoints; a ", s.model().family(),
              " chat model samples or decodes greedily (see --temperature)");
  std::vector<Image> images;
  for (const auto& path : a.images) images.push_back(decode_image_file(path, a.decode));
  std::string prompt;
  if (a.raw) {
    prompt = a.prompt;
  } else {
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    if (!a.system.empty()) msgs.push_back({{"role", "system"}, {"content", a.system}});
    msgs.push_back({{"role", "user"}, {"content", user_content(images.size(), a.prompt)}});
    prompt = s.render_chat(msgs, true);
  }
  PreparedPrompt p = s.prepare(prompt, images);
  GenerationParams params = apply_generation_flags(s.default_params(), a.gen);
  const bool stream = !a.common.json;
  GenerationResult r = s.generate(p, params, [&](std::string_view piece) {
    if (stream) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  const int64_t n = static_cast<int64_t>(r.tokens.size());
  const double prefill_tps = r.prefill_seconds > 0 ? static_cast<double>(r.prompt_tokens) / r.prefill_seconds : 0;
  const double decode_tps = r.decode_seconds > 0 ? static_cast<double>(n) / r.decode_seconds : 0;
  if (a.common.json) {
    nlohmann::ordered_json j = answer_json(a, r.text, r.finish_reason, r.prompt_tokens, n, p.images);
    j["tokens"] = r.tokens;
    j["timings"] = {{"prefill_seconds", r.prefill_seconds}, {"decode_seconds", r.decode_seconds},
                    {"prefill_tokens_per_second", prefill_tps}, {"decode_tokens_per_second", decode_tps}};
    // The documented extra field: entities (boxes in image pixels) parsed from the answer in
    // the family's box format (LLaVA: [x0, y0, x1, y1] in [0, 1]) or --box-format's.
    std::optional<grounding::Format> fmt;
    if (!a.box_format.empty()) {
      fmt = grounding::format_from_name(a.box_format);
      LUMEN_CHECK(fmt, "--box-format: unknown box format '", a.box_format, "'");
    } else if (s.model().family() == "llava" || s.model().family() == "llava_next") {
      fmt = grounding::Format::Llava15;
    }
    if (fmt && !images.empty()) {
      auto mode = geometry_mode_from_name(a.box_geometry);
      LUMEN_CHECK(mode, "--box-geometry: '", a.box_geometry, "' (expected processor, identity or pad-square)");
      std::optional<ImageProcessor> proc;
      if (std::FILE* f = std::fopen((a.model + "/preprocessor_config.json").c_str(), "r")) {
        std::fclose(f);
        proc = ImageProcessor::from_file(a.model + "/preprocessor_config.json");
      }
      const auto geometry = geometry_for(*mode, proc ? &*proc : nullptr, images[0].width, images[0].height);
      j["grounding"] = grounded_json(grounding::parse(*fmt, r.text, geometry));
      j["grounding"]["format"] = grounding::format_name(*fmt);
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("\n");
    std::fprintf(stderr, "[%s] prompt %lld tokens (%lld image%s) in %.2f s (%.1f tok/s); %lld new tokens in %.2f s (%.2f tok/s)\n",
                 r.finish_reason.c_str(), static_cast<long long>(r.prompt_tokens),
                 static_cast<long long>(p.images), p.images == 1 ? "" : "s", r.prefill_seconds, prefill_tps, static_cast<long long>(n),
                 r.decode_seconds, decode_tps);
  }
  return 0;
}

// BLIP / BLIP-2: one image, the prompt placed as the model's reference does, greedy or beam
// search; the JSON has the chat path's fields where they mean the same.
int run_image_text(const RunArgs& a, const ImageTextSession& s) {
  LUMEN_CHECK(a.images.size() == 1, a.model, ": a ", s.model().family(), " ", s.task(),
              " model needs exactly one image (-i IMG), got ", a.images.size());
  LUMEN_CHECK(!a.raw && a.system.empty(), "--raw and --system are for chat models; a ", s.model().family(),
              " model takes the prompt as it is");
  LUMEN_CHECK(a.box_format.empty(), "--box-format is for chat models' answers (try `lumen ground --output`)");
  const GenerationFlags& g = a.gen;
  LUMEN_CHECK(
      !g.temperature && !g.top_k && !g.top_p && !g.min_p && !g.repeat_penalty && !g.seed && g.stop.empty() &&
          !g.ignore_eos,
      "a ", s.model().family(), " model decodes greedily or by beam search (--beams N): the sampling flags ",
      "(--temperature, --top-k, --top-p, --min-p, --repeat-penalty, --seed, --stop, --ignore-eos) do not apply");
  ImageTextOptions o;
  o.num_beams = a.beams.value_or(1);  // transformers' generate() default
  o.max_new_tokens = g.max_tokens.value_or(20);
  LUMEN_CHECK(o.num_beams >= 1 && o.max_new_tokens >= 1, "--beams and --max-tokens must be at least 1");
  ImageTextResult r = s.generate(decode_image_file(a.images[0], a.decode), a.prompt, o);
  const double tps = r.seconds > 0 ? static_cast<double>(r.new_tokens) / r.seconds : 0;
  if (a.common.json) {
    nlohmann::ordered_json j = answer_json(a, r.text, r.finish_reason, r.prompt_tokens, r.new_tokens, 1);
    j["tokens"] = r.tokens;
    j["timings"] = {{"total_seconds", r.seconds}, {"tokens_per_second", tps}};
    j["task"] = s.task();
    j["beams"] = o.num_beams;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", r.text.c_str());
    std::fprintf(stderr, "[%s] %s, %lld beam%s: %lld new tokens in %.2f s (%.2f tok/s)\n", r.finish_reason.c_str(),
                 s.task().c_str(), static_cast<long long>(o.num_beams), o.num_beams == 1 ? "" : "s",
                 static_cast<long long>(r.new_tokens), r.seconds, tps);
  }
  return 0;
}

// KOSMOS-2: the prompt continued about one image ("<grounding>" added), the answer as
// post_process_generation gives it (markup removed; it starts with the prompt's words) and its
// entities in the JSON's "grounding" field, as `lumen ground --json` writes them.
int run_grounding(const RunArgs& a, std::shared_ptr<const Model> model) {
  LUMEN_CHECK(a.images.size() == 1, a.model, ": a ", model->family(), " model needs exactly one image (-i IMG), got ",
              a.images.size());
  LUMEN_CHECK(!a.raw && a.system.empty() && !a.beams && a.box_format.empty(), "--raw, --system, --beams and ",
              "--box-format are not for a ", model->family(), " model: it writes its own grounding markup");
  const GenerationFlags& g = a.gen;
  LUMEN_CHECK(g.stop.empty() && !g.ignore_eos, "--stop and --ignore-eos are not supported for ", model->family());
  GroundingOptions go;
  const auto geometry = geometry_mode_from_name(a.box_geometry);
  LUMEN_CHECK(geometry, "--box-geometry: unknown frame '", a.box_geometry, "' (processor, identity, pad-square)");
  go.geometry = *geometry;
  GroundingSession s = GroundingSession::from_model(a.model, std::move(model), go);
  GroundingRun run;
  run.max_new_tokens = g.max_tokens;
  if (g.temperature || g.top_k || g.top_p || g.min_p || g.repeat_penalty || g.seed)
    run.sampling = apply_generation_flags(GenerationParams{}, g).sampling;
  GroundingResult r = s.ground(decode_image_file(a.images[0], a.decode), a.prompt, run);
  const double tps = r.seconds > 0 ? static_cast<double>(r.new_tokens) / r.seconds : 0;
  if (a.common.json) {
    nlohmann::ordered_json j = answer_json(a, r.grounded.text, r.finish_reason, r.prompt_tokens, r.new_tokens, 1);
    j["timings"] = {{"total_seconds", r.seconds}, {"tokens_per_second", tps}};
    j["raw"] = r.raw;
    j["grounding"] = grounded_json(r.grounded);
    j["grounding"]["format"] = grounding::format_name(r.format);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", r.grounded.text.c_str());
    for (const auto& e : r.grounded.entities)
      for (const auto& b : e.boxes)
        std::printf("  %s: (%.1f, %.1f, %.1f, %.1f)\n", e.phrase.c_str(), b.x0, b.y0, b.x1, b.y1);
    std::fprintf(stderr, "[%s] %lld new tokens in %.2f s (%.2f tok/s)\n", r.finish_reason.c_str(),
                 static_cast<long long>(r.new_tokens), r.seconds, tps);
  }
  return 0;
}

// Picks the path by what the loaded model can do.
int run(const RunArgs& a) {
  apply_common_flags(a.common);
  std::shared_ptr<const Model> model = load_model(a.model, load_options_from(a.quant));
  if (dynamic_cast<const VisionLanguageModel*>(model.get()))
    return run_chat(a, VlmSession::from_model(a.model, std::move(model)));
  if (GroundingSession::serves_model(*model)) return run_grounding(a, std::move(model));
  const std::string why = ImageTextSession::unsupported_reason(*model);
  LUMEN_CHECK(why.empty(), a.model, ": ", why, "; lumen run takes chat models (LLaVA line, ...), KOSMOS-2, and ",
              "BLIP / BLIP-2 captioning and question-answering checkpoints");
  return run_image_text(a, ImageTextSession::from_model(a.model, std::move(model)));
}

Register reg({"run", "Answer one prompt (with images): chat models streamed, BLIP / BLIP-2 by greedy or beam search, "
                     "KOSMOS-2 with grounded boxes",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<RunArgs>();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory (HF layout)")->required();
                cmd->add_option("--prompt,-p", a->prompt, "The user's message")->required();
                cmd->add_option("--image,-i", a->images, "Image file (JPEG/PNG/WebP); repeat for several, in order");
                cmd->add_option("--system", a->system, "System message (when the chat template supports one)");
                cmd->add_flag("--raw", a->raw,
                              "Use --prompt as the exact model input, no chat template; write one <image> per image");
                cmd->add_option("--box-format", a->box_format,
                                "With --json: parse boxes in the answer in this format into a \"grounding\" field "
                                "(default for LLaVA: llava_1_5; see `lumen ground --help`)");
                cmd->add_option("--box-geometry", a->box_geometry,
                                "Frame of those boxes: processor, identity or pad-square")
                    ->capture_default_str();
                add_generation_flags(cmd, &a->gen);
                cmd->add_option("--beams", a->beams,
                                "BLIP / BLIP-2: beam search with N beams (default 1 = greedy; up to 20 new tokens "
                                "unless --max-tokens)");
                add_quant_flag(cmd, &a->quant);
                add_image_flags(cmd, &a->decode);
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "The prompt goes through the checkpoint's chat template (its own, else a built-in one for the\n"
                    "family), images first. Sampling follows generation_config.json unless flags say otherwise.\n\n"
                    "Examples:\n"
                    "  lumen run -m llava-1.5-7b-hf -i cat.jpg -p \"What is in this picture?\"\n"
                    "  lumen run -m llava-1.5-7b-hf -i a.png -i b.png -p \"Compare the two images.\" --temperature 0.7 "
                    "--seed 1\n"
                    "  lumen run -m llava-1.5-7b-hf --raw -i cat.jpg -p \"USER: <image>\\nCaption it. ASSISTANT:\" "
                    "--json\n\n"
                    "BLIP and BLIP-2 take the prompt as their reference does: a VQA checkpoint answers it as a\n"
                    "question, a captioning checkpoint continues it, BLIP-2 gives it to its language model:\n"
                    "  lumen run -m blip-vqa-base -i cat.jpg -p \"what is the cat doing?\" --beams 3\n\n"
                    "KOSMOS-2 continues the prompt about the image; --json adds its entities with boxes:\n"
                    "  lumen run -m kosmos-2-patch14-224 -i snowman.jpg -p \"An image of\" --json");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

// lumen ground: what a model points at in an image -- entities with boxes in image pixels,
// optionally drawn on the image. Runs KOSMOS-2 (or a chat VLM whose answers carry boxes), or
// parses given model output (--output) without a model.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "grounding/draw.h"
#include "runtime/grounding_session.h"
#include "vision/image_processor.h"

namespace lumen::cli {
namespace {

struct GroundArgs {
  std::string model, image, prompt, draw, format, geometry = "processor", output, processor;
  int64_t max_new_tokens = 128;
  CommonFlags common;
};

GroundingOptions options_from(const GroundArgs& a) {
  GroundingOptions o;
  if (!a.format.empty()) {
    o.format = grounding::format_from_name(a.format);
    std::string known;
    for (auto f : grounding::all_formats()) known += (known.empty() ? "" : ", ") + std::string(grounding::format_name(f));
    LUMEN_CHECK(o.format, "--format: unknown box format '", a.format, "' (", known, ")");
  }
  auto g = geometry_mode_from_name(a.geometry);
  LUMEN_CHECK(g, "--geometry: '", a.geometry, "' (expected processor, identity or pad-square)");
  o.geometry = *g;
  o.max_new_tokens = a.max_new_tokens;
  return o;
}

void print_entities(const grounding::GroundedText& g) {
  std::printf("%s\n", g.text.c_str());
  for (size_t i = 0; i < g.entities.size(); ++i) {
    const auto& e = g.entities[i];
    std::printf("  [%zu] %s%s%s  chars [%lld, %lld)", i + 1, e.label.empty() ? "" : (e.label + " ").c_str(),
                e.phrase.empty() ? "(no phrase)" : ("\"" + e.phrase + "\"").c_str(), "",
                static_cast<long long>(e.start), static_cast<long long>(e.end));
    for (const auto& b : e.boxes) std::printf("  box (%.1f, %.1f, %.1f, %.1f)", b.x0, b.y0, b.x1, b.y1);
    for (const auto& p : e.points) std::printf("  point (%.1f, %.1f)", p.x, p.y);
    std::printf("\n");
  }
  for (const auto& w : g.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
}

int run(const GroundArgs& a) {
  apply_common_flags(a.common);
  const Image img = decode_image_file(a.image);
  GroundingResult r;
  if (!a.output.empty()) {
    // Parse-only: the text a model wrote, mapped through the checkpoint's (or a given)
    // processor geometry when one is named.
    GroundingOptions o = options_from(a);
    if (!a.model.empty()) {
      GroundingSession s = GroundingSession::open(a.model, o);
      r.grounded = s.parse(a.output, img.width, img.height);
      r.format = s.format();
    } else {
      LUMEN_CHECK(o.format, "--output without --model needs --format");
      std::optional<ImageProcessor> p;
      if (!a.processor.empty()) p = ImageProcessor::from_file(a.processor);
      r.format = *o.format;
      r.grounded = grounding::parse(*o.format, a.output, geometry_for(o.geometry, p ? &*p : nullptr, img.width, img.height));
    }
    r.raw = a.output;
  } else {
    LUMEN_CHECK(!a.model.empty(), "ground needs --model (or --output with the text to parse)");
    GroundingSession s = GroundingSession::open(a.model, options_from(a));
    r = s.ground(img, a.prompt);
  }
  std::vector<grounding::LabelBox> labels;
  if (!a.draw.empty()) grounding::write_png(a.draw, grounding::draw_entities(img, r.grounded.entities, {}, &labels));
  if (a.common.json) {
    nlohmann::ordered_json j = {{"model", a.model}, {"image", a.image}, {"width", img.width}, {"height", img.height},
                                {"format", grounding::format_name(r.format)}, {"raw", r.raw},
                                {"grounding", grounded_json(r.grounded)}, {"new_tokens", r.new_tokens},
                                {"seconds", r.seconds}};
    if (!a.draw.empty()) j["drawn"] = a.draw;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_entities(r.grounded);
    std::fflush(stdout);
    if (!a.draw.empty()) std::fprintf(stderr, "drew %zu entities on %s\n", r.grounded.entities.size(), a.draw.c_str());
  }
  return 0;
}

Register reg({"ground", "Find what a model refers to in an image: entities with boxes, optionally drawn",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<GroundArgs>();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory (KOSMOS-2, or a chat VLM with --format)");
                cmd->add_option("--image,-i", a->image, "Image file (JPEG/PNG/WebP)")->required();
                cmd->add_option("--prompt,-p", a->prompt,
                                "Text to continue (KOSMOS-2: \"<grounding>\" is prepended; a referring expression is "
                                "\"<phrase>the cat</phrase>\")");
                cmd->add_option("--draw", a->draw, "Write the image with boxes and labels to this PNG");
                cmd->add_option("--format", a->format,
                                "Box format of the output: kosmos2, paligemma, pix2seq, kosmos2_5, shikra, qwen_vl, "
                                "cogvlm, llava_1_5, seeclick, screenai (default: the family's)");
                cmd->add_option("--geometry", a->geometry,
                                "Frame of the model's coordinates: processor (as resized/cropped), identity (whole "
                                "image), pad-square (LLaVA-1.5 training)")
                    ->capture_default_str();
                cmd->add_option("--output", a->output, "Parse this model output instead of running a model");
                cmd->add_option("--processor", a->processor,
                                "preprocessor_config.json for --output without --model (geometry processor)");
                cmd->add_option("--max-new-tokens", a->max_new_tokens, "Longest answer")->capture_default_str();
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "Examples:\n"
                    "  lumen ground -m kosmos-2-patch14-224 -i snowman.jpg -p \"An image of\" --draw boxes.png\n"
                    "  lumen ground -m kosmos-2-patch14-224 -i snowman.jpg -p \"<phrase> the fire</phrase>\" --json\n"
                    "  lumen ground -i shot.png --format qwen_vl --geometry identity \\\n"
                    "      --output \"<ref>the button</ref><box>(100,200),(300,400)</box>\" --draw out.png");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

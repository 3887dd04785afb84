// Grounded generation for any checkpoint: KOSMOS-2 runs with the "<grounding>" prefix as its
// processor documents and its output goes through post_process_generation; chat VLMs (LLaVA
// and relatives) answer through VlmSession and their text is parsed in a box format
// (grounding/grounding.h). Boxes come back in original-image pixels.
//
//   GroundingSession s = GroundingSession::open("kosmos-2-patch14-224");
//   GroundingResult r = s.ground(decode_image_file("snowman.jpg"), "An image of");
//   for (const auto& e : r.grounded.entities) ...
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "grounding/grounding.h"
#include "runtime/generate.h"
#include "vision/image.h"

namespace lumen {

class Kosmos2Model;
class Model;
class Tokenizer;
class ImageProcessor;
class VlmSession;

// Which frame the model's normalised coordinates refer to.
enum class GeometryMode {
  Processor,   // the image as the processor resized/cropped it (default)
  Identity,    // the whole original image
  PadSquare,   // LLaVA-1.5 training: padded to a centered square
};
std::optional<GeometryMode> geometry_mode_from_name(const std::string& name);  // processor, identity, pad-square

struct GroundingOptions {
  std::optional<grounding::Format> format;  // default: the family's (kosmos2; llava -> llava_1_5)
  GeometryMode geometry = GeometryMode::Processor;
  int64_t max_new_tokens = 128;
};

struct GroundingResult {
  std::string raw;                  // decoded model output (markup kept)
  grounding::GroundedText grounded;  // markup removed, entities in original pixels
  grounding::Format format = grounding::Format::Kosmos2;
  int64_t new_tokens = 0;
  int64_t prompt_tokens = 0;          // prompt length in tokens, image positions included
  std::string finish_reason = "stop";  // "stop" (EOS) or "length" (max_new_tokens reached)
  double seconds = 0;
};

// Per-call settings of ground() for front ends that serve requests (lumen serve): the answer's
// length and sampling, and a hook asked after every new token whether to go on (a client that
// left, a deadline passed); it stops the generation when it returns false.
struct GroundingRun {
  std::optional<int64_t> max_new_tokens;  // default: GroundingOptions::max_new_tokens
  std::optional<SamplingParams> sampling;  // default: greedy (KOSMOS-2), generation_config (chat VLMs)
  std::function<bool()> keep_going;
};

class GroundingSession {
 public:
  static GroundingSession open(const std::string& dir, const GroundingOptions& options = {});
  // The same around a KOSMOS-2 model already loaded from `dir` (a server loads once with its
  // own LoadOptions, then picks the session by the model's capabilities). Chat VLMs go through
  // open() or, in a server, through VlmSession and grounding::parse directly.
  static GroundingSession from_model(const std::string& dir, std::shared_ptr<const Model> model,
                                     const GroundingOptions& options = {});
  // True when from_model() can take this model (a KOSMOS-2 model).
  static bool serves_model(const Model& model);
  ~GroundingSession();
  GroundingSession(GroundingSession&&) noexcept;
  GroundingSession& operator=(GroundingSession&&) noexcept;

  // Runs the model on one image and prompt. KOSMOS-2: "<grounding>" is prepended unless the
  // prompt starts with it; a referring expression is written "<phrase>cat</phrase>".
  GroundingResult ground(const Image& image, const std::string& prompt) const;
  GroundingResult ground(const Image& image, const std::string& prompt, const GroundingRun& run) const;
  // Parses text the model wrote (no model run): the same post-processing as ground().
  grounding::GroundedText parse(const std::string& raw, int width, int height) const;
  grounding::Format format() const { return format_; }
  grounding::ImageGeometry geometry_for(int width, int height) const;
  std::string family() const { return family_; }
  // KOSMOS-2's tokenizer (with the processor's markup tokens); null for chat VLMs.
  const Tokenizer* kosmos2_tokenizer() const { return tok_.get(); }

 private:
  GroundingSession() = default;
  std::string dir_, family_;
  grounding::Format format_ = grounding::Format::Kosmos2;
  GroundingOptions options_;
  std::shared_ptr<const Kosmos2Model> kosmos_;
  std::shared_ptr<const Tokenizer> tok_;
  std::shared_ptr<const ImageProcessor> processor_;
  std::shared_ptr<const VlmSession> vlm_;
};

// The box format a family's answers are parsed in when nobody names one: kosmos2 for KOSMOS-2,
// llava_1_5 for LLaVA-1.5 and LLaVA-NeXT (trained to write [x0, y0, x1, y1] in [0, 1]); none
// for other families (their grounding, if any, needs a format named explicitly).
std::optional<grounding::Format> default_box_format(const std::string& family);

// Parse-only geometry (no checkpoint): the image as given, or as a processor config sees it.
grounding::ImageGeometry geometry_for(GeometryMode mode, const ImageProcessor* processor, int width, int height);

// {"text", "entities": [{"phrase", "span": [s, e], "byte_span", "label"?, "boxes": [[x0,y0,x1,y1]],
// "points": [[x,y]], "norm_boxes", "norm_points"}], "warnings"}: the documented "grounding"
// field of `lumen ground --json` and `lumen run --json`.
nlohmann::ordered_json grounded_json(const grounding::GroundedText& g);

}  // namespace lumen

// Text from one image and an optional prompt with the encoder-decoder captioners (what `lumen
// caption` and `lumen run` use for them), each prompt placed as its reference does:
//   BLIP captioning  (BlipForConditionalGeneration)  the prompt starts the caption: [DEC] prompt ...
//   BLIP VQA         (BlipForQuestionAnswering)      the prompt is the question, encoded against the
//                                                    image; the answer decoder starts from [DEC]
//   BLIP-2 (OPT, T5) (Blip2ForConditionalGeneration) the prompt goes to the language model after
//                                                    the image's query tokens
// Decoding is greedy or beam search (no sampling), as these models' generate() is used.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "families/family.h"
#include "runtime/beam_search.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/image_processor.h"

namespace lumen {

// How the caption or answer is searched for. eos_ids is not read: each model stops at its own
// EOS (BLIP's [SEP], the tokenizer's EOS for BLIP-2's language model).
using ImageTextOptions = BeamSearchParams;

struct ImageTextResult {
  std::string text;             // decoded, special tokens skipped (a BLIP caption keeps its prompt)
  std::vector<int64_t> tokens;  // the ids `text` decodes: for BLIP captioning the prompt's too
  int64_t prompt_tokens = 0;    // what the decoder or language model was given before generating
  int64_t new_tokens = 0;       // what it generated (EOS included when it ended on one)
  std::string finish_reason;    // "stop" (ended on EOS) or "length"
  double seconds = 0;           // image encoding and generation
};

class ImageTextSession {
 public:
  // Errors say why a model cannot be used: not BLIP / BLIP-2, or a BLIP retrieval checkpoint.
  static ImageTextSession open(const std::string& dir, const LoadOptions& options = {});
  static ImageTextSession from_model(const std::string& dir, std::shared_ptr<const Model> model);
  // Whether `model` is one of the generators above (from_model would accept it).
  static bool handles(const Model& model);
  // Why from_model would refuse `model` ("" when it would not).
  static std::string unsupported_reason(const Model& model);

  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  // "captioning", "question answering" (BLIP VQA: a prompt is required) or "prompted generation" (BLIP-2).
  const std::string& task() const { return task_; }
  bool needs_prompt() const { return task_ == "question answering"; }

  ImageTextResult generate(const Image& image, const std::string& prompt, const ImageTextOptions& o) const;

 private:
  std::string dir_, task_;
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Tokenizer> tok_;
  std::shared_ptr<const ImageProcessor> processor_;
};

}  // namespace lumen

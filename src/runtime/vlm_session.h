// Everything a front end needs to chat with a decoder-only VLM checkpoint directory: the model,
// its tokenizer, image processor, chat template and generation defaults, and the steps from
// messages with images to streamed text.
//
//   VlmSession s = VlmSession::open("llava-1.5-7b-hf");
//   nlohmann::ordered_json msgs = {{{"role", "user"}, {"content", {{{"type", "image"}},
//                                   {{"type", "text"}, {"text", "What is this?"}}}}}};
//   PreparedPrompt p = s.prepare(s.render_chat(msgs, true), {decode_image_file("cat.jpg")});
//   GenerationResult r = s.generate(p, s.default_params(), print_piece);
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "families/family.h"
#include "runtime/generate.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/image_processor.h"

namespace lumen {

struct PreparedPrompt {
  std::vector<int64_t> ids;  // image markers expanded to the image-token positions
  Tensor embeds;             // [ids.size(), D] with image features in place
  int64_t images = 0;
};

class VlmSession {
 public:
  // Loads the checkpoint directory; errors name the file that is missing or wrong.
  // options.linear picks the weight format of the linear layers (default: as stored).
  static VlmSession open(const std::string& dir, const LoadOptions& options = stored_weights());
  // The same around a model already loaded from `dir` (a server loads once, then picks the
  // session by the model's capabilities).
  static VlmSession from_model(const std::string& dir, std::shared_ptr<const Model> model);
  static LoadOptions stored_weights() {
    LoadOptions o;
    o.linear = LinearFormat::Stored;
    return o;
  }

  const VisionLanguageModel& model() const { return *vlm_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  const std::string& dir() const { return dir_; }
  // Where the chat template came from: "chat_template.json", "builtin llava", ...
  const std::string& template_source() const { return template_source_; }

  // The prompt text for a conversation (OpenAI/HF message list; content a string or a list
  // of {"type": "image"} / {"type": "text", "text": ...} parts).
  std::string render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;
  // Tokenizes a prompt whose images appear as the model's marker ("<image>"), one marker per
  // image in order, and builds its embeddings. Errors when markers and images disagree.
  PreparedPrompt prepare(const std::string& prompt_text, const std::vector<Image>& images) const;
  // The processor's tiles for one image.
  ImageInput process_image(const Image& image) const;
  // One image's features [positions, D]: what prepare places at its marker. A server caches
  // these by image content so a multi-turn chat does not re-encode its image every turn.
  Tensor encode_image(const Image& image) const;
  // As prepare, with each image's features already computed by encode_image, in marker order.
  PreparedPrompt prepare_encoded(const std::string& prompt_text, const std::vector<Tensor>& image_features) const;

  // Defaults from generation_config.json (greedy when it does not sample), EOS ids from it,
  // config.json and the tokenizer.
  GenerationParams default_params() const { return defaults_; }
  GenerationResult generate(const PreparedPrompt& prompt, const GenerationParams& params,
                            const std::function<bool(std::string_view)>& on_text = {}) const;

 private:
  // Prompt ids with each image marker still one id; checks markers against `images`.
  std::vector<int64_t> tokenize_prompt(const std::string& prompt_text, size_t images) const;

  std::string dir_;
  std::shared_ptr<const Model> model_;
  const VisionLanguageModel* vlm_ = nullptr;
  std::shared_ptr<const Tokenizer> tok_;
  std::shared_ptr<const ImageProcessor> processor_;
  std::shared_ptr<const text::ChatTemplate> template_;
  std::string template_source_;
  nlohmann::ordered_json special_tokens_;
  GenerationParams defaults_;
};

}  // namespace lumen

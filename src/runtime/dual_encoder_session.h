// A loaded dual encoder with its image processor and tokenizer: what `embed`, `classify` and
// `search` (and later the server) use. Texts and images go in, normalised embeddings and
// scores come out, each done the way the family's reference processor and paper do.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "families/family.h"
#include "text/tokenizer.h"
#include "vision/image_processor.h"

namespace lumen {

class DualEncoderSession {
 public:
  // dir holds config.json, model.safetensors, preprocessor_config.json and tokenizer files.
  static DualEncoderSession open(const std::string& dir);
  // The same around a model already loaded from `dir`.
  static DualEncoderSession from_model(const std::string& dir, std::unique_ptr<Model> model);

  const DualEncoder& model() const { return *model_; }
  // P: the width of every embedding this session returns.
  int64_t embedding_dim() const { return model_->embedding_dim(); }
  const ImageProcessor& processor() const { return processor_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }

  // Images decoded with `decode` and preprocessed; embedded `batch` at a time. `progress` (may
  // be empty) is told (done, total) after each batch. Returns [N, P], rows L2-normalised.
  Tensor embed_image_files(const std::vector<std::string>& paths, const DecodeOptions& decode, int batch = 8,
                           const std::function<void(size_t, size_t)>& progress = {}) const;
  Tensor embed_images(const std::vector<Image>& images) const;
  // Tokenised with the family's padding; texts longer than the model's limit are truncated.
  Tensor embed_texts(const std::vector<std::string>& texts) const;

  // Models with an image-text matching head (BLIP's ITM) re-score candidates with it:
  // [images.size()] probabilities that each image matches `text`.
  bool can_match() const { return model_->has_match_head(); }
  Tensor match_probabilities(const std::vector<Image>& images, const std::string& text) const;

  // Raw logits [I, T] = scale * cos + bias, and probabilities as the family's paper uses them:
  // CLIP a softmax over the T labels of each image; SigLIP an independent sigmoid per pair.
  Tensor logits(const Tensor& image_embeds, const Tensor& text_embeds) const;
  Tensor probabilities(const Tensor& logits) const;

 private:
  // [N, 3, S, S] pixel values of images run through the processor.
  Tensor pixel_batch(const std::vector<Image>& images) const;
  // ids [B, L] and attention mask (undefined when the family attends pad tokens), truncated.
  std::pair<Tensor, Tensor> tokenize(const std::vector<std::string>& texts) const;

  std::unique_ptr<Model> owner_;
  const DualEncoder* model_ = nullptr;
  ImageProcessor processor_;
  Tokenizer tokenizer_;
  DualEncoderSession(std::unique_ptr<Model> m, ImageProcessor p, Tokenizer t);
};

}  // namespace lumen

#include "runtime/dual_encoder_session.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/ops.h"

namespace lumen {

DualEncoderSession::DualEncoderSession(std::unique_ptr<Model> m, ImageProcessor p, Tokenizer t)
    : owner_(std::move(m)), processor_(std::move(p)), tokenizer_(std::move(t)) {
  model_ = owner_->dual_encoder();
}

DualEncoderSession DualEncoderSession::open(const std::string& dir) { return from_model(dir, load_model(dir)); }

DualEncoderSession DualEncoderSession::from_model(const std::string& dir, std::unique_ptr<Model> model) {
  LUMEN_CHECK(model->dual_encoder(), dir, ": a ", model->family(),
              " model has no contrastive image/text embeddings (CLIP, SigLIP and BLIP retrieval checkpoints, ",
              "BlipForImageTextRetrieval, have them)");
  std::string pre = dir + "/preprocessor_config.json";
  LUMEN_CHECK(std::filesystem::exists(pre), dir, ": no preprocessor_config.json (needed to prepare images)");
  ImageProcessor proc = ImageProcessor::from_file(pre);
  LUMEN_CHECK(proc.supported(), pre, ": ", proc.unsupported_reason());
  Tokenizer tok = with_context(dir + " (tokenizer)", [&] { return Tokenizer::from_dir(dir); });
  return DualEncoderSession(std::move(model), std::move(proc), std::move(tok));
}

Tensor DualEncoderSession::embed_images(const std::vector<Image>& images) const {
  LUMEN_CHECK(!images.empty(), "no images to embed");
  return model_->image_embeds(pixel_batch(images));
}

Tensor DualEncoderSession::pixel_batch(const std::vector<Image>& images) const {
  std::vector<Tensor> pv;
  for (const auto& img : images) pv.push_back(processor_.preprocess(img));  // [1, 3, H, W] each
  Shape s = pv[0].shape();
  s[0] = static_cast<int64_t>(pv.size());
  Tensor batch = Tensor::zeros(s);
  const size_t one = pv[0].nbytes();
  for (size_t i = 0; i < pv.size(); ++i) {
    LUMEN_CHECK(pv[i].shape() == pv[0].shape(), "image processor produced differing sizes");
    std::memcpy(static_cast<char*>(batch.raw()) + i * one, pv[i].raw(), one);
  }
  return batch;
}

Tensor DualEncoderSession::embed_image_files(const std::vector<std::string>& paths, const DecodeOptions& decode,
                                             int batch, const std::function<void(size_t, size_t)>& progress) const {
  LUMEN_CHECK(!paths.empty(), "no images to embed");
  batch = std::max(1, batch);
  Tensor out;
  for (size_t start = 0; start < paths.size(); start += static_cast<size_t>(batch)) {
    size_t end = std::min(paths.size(), start + static_cast<size_t>(batch));
    std::vector<Image> imgs;
    for (size_t i = start; i < end; ++i) imgs.push_back(decode_image_file(paths[i], decode));
    Tensor e = embed_images(imgs);
    if (!out.defined()) out = Tensor::zeros({static_cast<int64_t>(paths.size()), e.dim(1)});
    std::memcpy(out.data<float>() + static_cast<int64_t>(start) * e.dim(1), e.data<float>(), e.nbytes());
    if (progress) progress(end, paths.size());
  }
  return out;
}

Tensor DualEncoderSession::embed_texts(const std::vector<std::string>& texts) const {
  LUMEN_CHECK(!texts.empty(), "no texts to embed");
  auto [ids, mask] = tokenize(texts);
  return model_->text_embeds(ids, mask);
}

std::pair<Tensor, Tensor> DualEncoderSession::tokenize(const std::vector<std::string>& texts) const {
  const int64_t pad_to = model_->text_pad_to();
  const int64_t pad_id = tokenizer_.pad_id().value_or(model_->text_pad_id());
  BatchEncoding b = tokenizer_.encode_batch(texts, true, static_cast<size_t>(pad_to), pad_id, true);
  if (b.length > model_->max_text_length()) {  // truncate as the processor's max_length would
    const int64_t L = model_->max_text_length();
    BatchEncoding t;
    t.batch = b.batch;
    t.length = L;
    for (int64_t r = 0; r < b.batch; ++r) {
      t.ids.insert(t.ids.end(), b.ids.begin() + r * b.length, b.ids.begin() + r * b.length + L);
      t.attention_mask.insert(t.attention_mask.end(), b.attention_mask.begin() + r * b.length,
                              b.attention_mask.begin() + r * b.length + L);
    }
    b = std::move(t);
  }
  Tensor ids = Tensor::from_ids(b.ids, {b.batch, b.length});
  Tensor mask = model_->text_uses_mask() ? Tensor::from_ids(b.attention_mask, {b.batch, b.length}) : Tensor();
  return {ids, mask};
}

Tensor DualEncoderSession::match_probabilities(const std::vector<Image>& images, const std::string& text) const {
  LUMEN_CHECK(model_->has_match_head(), "a ", model_->family(),
              " model has no image-text matching head to re-rank with");
  LUMEN_CHECK(!images.empty(), "no images to match");
  auto [ids, mask] = tokenize({text});
  return model_->match_probabilities(pixel_batch(images), ids, mask);
}

Tensor DualEncoderSession::logits(const Tensor& image_embeds, const Tensor& text_embeds) const {
  const int64_t I = image_embeds.dim(0), T = text_embeds.dim(0), P = image_embeds.dim(1);
  LUMEN_CHECK(text_embeds.dim(1) == P, "image and text embeddings differ in size");
  Tensor out = Tensor::zeros({I, T});
  ops::gemm(false, true, I, T, P, model_->logit_scale(), image_embeds.data<float>(), P, text_embeds.data<float>(), P,
            0.f, out.data<float>(), T);
  const float bias = model_->logit_bias();
  for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] += bias;
  return out;
}

Tensor DualEncoderSession::probabilities(const Tensor& logits) const {
  Tensor p = logits.clone();
  if (model_->scoring() == DualEncoder::Scoring::Softmax) {
    ops::softmax_rows(p.data<float>(), p.dim(0), p.dim(1));
  } else {
    for (int64_t i = 0; i < p.numel(); ++i) p.data<float>()[i] = 1.f / (1.f + std::exp(-p.data<float>()[i]));
  }
  return p;
}

}  // namespace lumen

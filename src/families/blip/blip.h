// BLIP (Li et al. 2022): a ViT and BERT-style text transformers that cross-attend to its
// tokens. One config (model_type "blip") serves three checkpoints, told apart by what they hold:
//   captioning  BlipForConditionalGeneration: text_decoder (causal, cross-attends to the image)
//   retrieval   BlipForImageTextRetrieval:    text_encoder + itm_head (matching) and
//                                              vision_proj / text_proj (contrastive similarity)
//   VQA         BlipForQuestionAnswering:     text_encoder encodes the question against the
//                                              image, text_decoder answers against the question
// Reference: transformers/models/blip/modeling_blip.py, modeling_blip_text.py.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "blocks/bert.h"
#include "blocks/blip_vision.h"
#include "families/family.h"
#include "runtime/beam_search.h"

namespace lumen {

struct BlipConfig {
  BlipVisionConfig vision;
  BertConfig text;
  int64_t bos_id = 30522;  // text_config.bos_token_id: the [DEC] token decoders start from
  int64_t sep_id = 102;    // text_config.sep_token_id: the decoders' EOS
  int64_t pad_id = 0;
  int64_t embed_dim = 256;  // image_text_hidden_size (contrastive projections)
  std::string architecture;  // architectures[0]: which heads the checkpoint has
  static BlipConfig from_hf(const nlohmann::json& j, const std::string& path);
};

// How BLIP decodes: greedy (num_beams 1) or beam search. search.eos_ids is not read: the
// decoders' EOS is the config's [SEP] (sep_id), unless stop_at_eos is off.
struct BlipDecodeOptions {
  BeamSearchParams search;
  // Decode over a KV cache (self-attention keys/values kept, the image's cross-attention
  // keys/values computed once). false re-runs the decoder over the whole prefix every step: the
  // reference the cached path is tested against.
  bool use_cache = true;
  // Whether the decoder's EOS ([SEP]) ends the caption; benchmarks turn it off to decode a fixed
  // number of tokens.
  bool stop_at_eos = true;
};

class BlipModel;

// The contrastive half of a BLIP retrieval checkpoint as a DualEncoder, so the embedding front
// ends (`lumen search`, `embed`, `classify`) take it like CLIP: normalize(vision_proj(image
// [CLS])) and normalize(text_proj(text-only encoder [CLS])), as BlipForImageTextRetrieval with
// use_itm_head=False computes them; its ITM head re-scores candidates (match_probabilities).
// The score is the plain cosine: the HF checkpoint keeps no contrastive temperature.
class BlipContrastiveEncoder : public DualEncoder {
 public:
  explicit BlipContrastiveEncoder(const BlipModel& m) : m_(m) {}
  std::string family() const override { return "blip"; }
  Tensor image_embeds(const Tensor& pixel_values) const override;
  Tensor text_embeds(const Tensor& input_ids, const Tensor& attention_mask) const override;
  int64_t text_pad_to() const override { return 0; }  // BlipProcessor pads to the longest
  int64_t text_pad_id() const override;
  bool text_uses_mask() const override { return true; }
  int64_t max_text_length() const override;
  Scoring scoring() const override { return Scoring::Softmax; }
  float logit_scale() const override { return 1.f; }
  float logit_bias() const override { return 0.f; }
  int64_t embedding_dim() const override;
  bool has_match_head() const override { return true; }
  Tensor match_probabilities(const Tensor& pixel_values, const Tensor& input_ids,
                             const Tensor& attention_mask) const override;
  TensorMap forward_all(const Tensor& pixel_values, const Tensor& input_ids,
                        const Tensor& attention_mask) const override;

 private:
  const BlipModel& m_;
};

class BlipModel : public Model {
 public:
  BlipModel() : contrastive_(std::make_unique<BlipContrastiveEncoder>(*this)) {}
  BlipModel(const BlipModel&) = delete;  // contrastive_ points back at this object
  BlipModel& operator=(const BlipModel&) = delete;

  BlipConfig cfg;
  BlipVisionModel vision;
  std::unique_ptr<BertTextModel> text_encoder;  // retrieval, VQA
  std::unique_ptr<BertTextModel> text_decoder;  // captioning, VQA
  BertLmHead lm_head;                           // text_decoder.cls.predictions
  Linear itm_head, vision_proj, text_proj;      // retrieval

  void visit(ParamVisitor& v);
  std::string family() const override { return "blip"; }
  bool can_caption() const { return text_decoder && !text_encoder; }
  bool can_answer() const { return text_decoder && text_encoder; }
  bool can_match() const { return text_encoder && !itm_head.weight.empty(); }
  std::string kind() const;  // "captioning", "retrieval", "question answering"
  // Retrieval checkpoints: the contrastive part (null for captioning and VQA).
  const DualEncoder* dual_encoder() const override { return can_match() ? contrastive_.get() : nullptr; }

  // pixel_values [B, 3, S, S] -> vision last_hidden_state [B, 1+N, Dv] (post-LN).
  Tensor image_embeds(const Tensor& pixel_values) const;
  // Decoder logits [B*L, V] for ids [B, L] that cross-attend to `memory` [B*Lm, Dm] (all kept).
  Tensor decoder_logits(const int64_t* ids, int64_t B, int64_t L, const Tensor& memory, int64_t Lm) const;
  // The text encoder over ids/mask [B, L], cross-attending to `image` rows [B*T, Dv] when given
  // (matching, VQA question) or not (contrastive text features): [B*L, Dt].
  Tensor encode_text(const Tensor& input_ids, const Tensor& attention_mask, const Tensor* image) const;
  // ITM logits [B, 2] (index 1 = match) of text row i against image i.
  Tensor itm_logits(const Tensor& image_embeds, const Tensor& input_ids, const Tensor& attention_mask,
                    Tensor* question_embeds = nullptr) const;
  // Contrastive embeddings: vision last_hidden_state [I, T, Dv] -> normalize(vision_proj(CLS))
  // [I, P]; ids/mask [B, L] through the text encoder without the image -> normalize(text_proj(CLS))
  // [B, P] (text_hidden, when given, receives the encoder output [B, L, Dt]).
  Tensor contrastive_image_embeds(const Tensor& image_embeds) const;
  Tensor contrastive_text_embeds(const Tensor& input_ids, const Tensor& attention_mask,
                                 Tensor* text_hidden = nullptr) const;
  // Cosine similarities [I, T] of normalize(vision_proj(image CLS)) and normalize(text_proj(text CLS)).
  Tensor itc_scores(const Tensor& image_embeds, const Tensor& input_ids, const Tensor& attention_mask,
                    Tensor* text_embeds = nullptr) const;
  // Decoder prompt + generated ids for one image. Captioning: `prompt` = the decoder prompt
  // ([bos] + prompt tokens). VQA: `question_ids`/`mask` [1, Lq] is encoded against the image and
  // the decoder starts from [bos].
  std::vector<int64_t> caption(const Tensor& pixel_values, const std::vector<int64_t>& prompt,
                               const BlipDecodeOptions& o, std::vector<std::vector<float>>* step_logits = nullptr) const;
  // caption() from image_embeds [1, T, Dv] already computed (benchmarks time the two apart).
  std::vector<int64_t> caption_image(const Tensor& image_embeds, const std::vector<int64_t>& prompt,
                                     const BlipDecodeOptions& o,
                                     std::vector<std::vector<float>>* step_logits = nullptr) const;
  std::vector<int64_t> answer(const Tensor& pixel_values, const Tensor& question_ids, const Tensor& question_mask,
                              const BlipDecodeOptions& o, std::vector<std::vector<float>>* step_logits = nullptr,
                              Tensor* question_embeds = nullptr) const;

 private:
  std::unique_ptr<BlipContrastiveEncoder> contrastive_;
  std::vector<int64_t> decode(const Tensor& memory, int64_t Lm, const std::vector<int64_t>& prompt,
                              const BlipDecodeOptions& o, std::vector<std::vector<float>>* step_logits) const;
};

// Writes a random-weight BLIP checkpoint (make-tiny): o.arch "tiny" / "blip-base" captioner,
// "tiny-retrieval" / "blip-base-retrieval", "tiny-vqa".
void make_tiny_blip(const MakeTinyOptions& o);

}  // namespace lumen

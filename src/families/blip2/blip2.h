// BLIP-2 (Li et al. 2023): a frozen ViT, the Q-Former that condenses its tokens into
// num_query_tokens vectors, a linear language_projection, and a frozen LM: OPT (decoder-only)
// or Flan-T5 (encoder-decoder). The projected queries replace the embeddings of the prompt's
// image-token positions (transformers 5 processors write num_query_tokens image tokens first).
// Reference: transformers/models/blip_2/modeling_blip_2.py (Blip2ForConditionalGeneration).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "blocks/blip_vision.h"
#include "blocks/opt.h"
#include "blocks/qformer.h"
#include "blocks/t5.h"
#include "families/family.h"
#include "runtime/beam_search.h"

namespace lumen {

struct Blip2Config {
  BlipVisionConfig vision;
  QFormerConfig qformer;
  std::string lm_type;  // "opt" or "t5"
  OptConfig opt;
  T5Config t5;
  int64_t num_query_tokens = 32;
  int64_t image_token_id = -1;  // image_token_index; -1: queries are prepended (older configs)
  int64_t text_dim() const { return lm_type == "opt" ? opt.word_embed_proj_dim : t5.dim; }
  static Blip2Config from_hf(const nlohmann::json& j, const std::string& path);
};


class Blip2Model : public Model {
 public:
  Blip2Config cfg;
  BlipVisionModel vision;
  Tensor query_tokens;  // [1, Q, Dq]
  QFormer qformer;
  Linear language_projection;  // Dq -> Dt
  std::unique_ptr<OptDecoder> opt;
  std::unique_ptr<T5Model> t5;

  void visit(ParamVisitor& v);
  std::string family() const override { return cfg.lm_type == "opt" ? "blip2_opt" : "blip2_t5"; }

  // One image [1, 3, S, S] -> language-model inputs [Q, Dt]; debug receives the intermediates
  // vision_last_hidden_state, qformer_last_hidden_state, language_model_inputs.
  Tensor image_queries(const Tensor& pixel_values, TensorMap* debug = nullptr) const;
  // Prompt embeddings [L, Dt]: token embeddings with the queries at the image-token positions.
  Tensor prompt_embeddings(const std::vector<int64_t>& ids, const Tensor& queries) const;
  // Logits [L, V] of a decoder-only prompt (OPT), or of decoder_ids given the prompt as the
  // encoder input (T5).
  Tensor forward_logits(const std::vector<int64_t>& ids, const Tensor& queries,
                        const std::vector<int64_t>& decoder_ids = {}) const;
  // Generated sequence: OPT returns prompt + new tokens, T5 [decoder_start] + new tokens.
  std::vector<int64_t> generate(const std::vector<int64_t>& ids, const Tensor& queries, const BeamSearchParams& g,
                                std::vector<std::vector<float>>* step_logits = nullptr) const;
  // The prompt ids with num_query_tokens image tokens in front (what Blip2Processor writes).
  std::vector<int64_t> with_image_tokens(const std::vector<int64_t>& text_ids) const;
};

void make_tiny_blip2(const MakeTinyOptions& o, const std::string& lm);

}  // namespace lumen

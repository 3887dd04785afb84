// Text tower as CLIP and SigLIP lay it out (CLIPTextTransformer, SiglipTextTransformer):
// token + learned absolute position embeddings, a pre-LN encoder (causal for CLIP),
// final_layer_norm. Pooling differs per family and lives there.
#pragma once
#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

struct TextTransformerConfig {
  int64_t vocab_size = 0, max_positions = 77;
  TransformerEncoderConfig encoder;
  bool causal = true;
  static TextTransformerConfig from_hf(const JsonView& text_config);
};

struct TextTransformer {
  TextTransformerConfig cfg;
  Tensor token_embedding;     // [V, D]
  Tensor position_embedding;  // [P, D]
  TransformerEncoder encoder;
  LayerNorm final_layer_norm;

  void visit(const ParamScope& s, const TextTransformerConfig& c);
  // input_ids [B, L] (I64); attention_mask [B, L] (I64, 1 = real) or undefined.
  // Returns final_layer_norm(encoder(...)) [B, L, D].
  Tensor forward(const Tensor& input_ids, const Tensor& attention_mask) const;
};

}  // namespace lumen

#include "blocks/text_transformer.h"

namespace lumen {

TextTransformerConfig TextTransformerConfig::from_hf(const JsonView& t) {
  TextTransformerConfig c;
  c.vocab_size = t.get_int("vocab_size");
  c.max_positions = t.get_int("max_position_embeddings");
  c.encoder = TransformerEncoderConfig::from_hf(t);
  LUMEN_CHECK(c.vocab_size > 0 && c.max_positions > 0, t.where(),
              ": vocab_size and max_position_embeddings must be positive");
  return c;
}

void TextTransformer::visit(const ParamScope& s, const TextTransformerConfig& c) {
  cfg = c;
  const int64_t D = c.encoder.dim;
  ParamScope emb = s.sub("embeddings");
  emb("token_embedding.weight", {c.vocab_size, D}, Init::Matrix, &token_embedding);
  emb("position_embedding.weight", {c.max_positions, D}, Init::Matrix, &position_embedding);
  encoder.visit(s.sub("encoder"), c.encoder);
  final_layer_norm.visit(s.sub("final_layer_norm"), D, c.encoder.eps);
}

Tensor TextTransformer::forward(const Tensor& input_ids, const Tensor& attention_mask) const {
  LUMEN_CHECK(input_ids.ndim() == 2 && input_ids.dtype() == DType::I64, "text tower expects input_ids I64[B, L], got ",
              input_ids.describe());
  const int64_t B = input_ids.dim(0), L = input_ids.dim(1), D = cfg.encoder.dim;
  LUMEN_CHECK(L <= cfg.max_positions, "text of ", L, " tokens is longer than the model's ", cfg.max_positions,
              " positions");
  if (attention_mask.defined() && attention_mask.numel())
    LUMEN_CHECK(attention_mask.shape() == input_ids.shape() && attention_mask.dtype() == DType::I64,
                "attention_mask ", attention_mask.describe(), " does not match input_ids ", input_ids.describe());
  Tensor h = Tensor::zeros({B * L, D});  // [B*L, D]
  ops::embedding(token_embedding, input_ids.data<int64_t>(), B * L, h.data<float>());
  for (int64_t b = 0; b < B; ++b)
    ops::add_inplace(h.data<float>() + b * L * D, position_embedding.data<float>(), L * D);
  const int64_t* keep = attention_mask.defined() && attention_mask.numel() ? attention_mask.data<int64_t>() : nullptr;
  encoder.forward(h, B, L, cfg.causal, keep);
  final_layer_norm.forward(h.data<float>(), B * L, h.data<float>());
  return h.reshape({B, L, D});
}

}  // namespace lumen

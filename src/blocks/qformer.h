// BLIP-2's Querying Transformer (Blip2QFormerModel, transformers/models/blip_2/modeling_blip_2.py):
// learned query embeddings, LayerNorm'd, run through BERT-style post-LN layers whose
// self-attention mixes the queries and whose cross-attention (on layers i with
// i % cross_attention_frequency == 0) reads the frozen image encoder's tokens. Only the query
// path is built (use_qformer_text_input is false in the captioning/VQA models): the layers'
// feed-forward is intermediate_query / output_query.
#pragma once
#include <vector>

#include "blocks/bert.h"

namespace lumen {

struct QFormerConfig {
  int64_t dim = 768, heads = 12, mlp_dim = 3072, layers = 12, encoder_dim = 1408;
  int64_t cross_attention_frequency = 2;
  Activation act = Activation::GeluErf;
  float eps = 1e-12f;
  static QFormerConfig from_hf(const JsonView& qformer_config);
};

struct QFormer {
  QFormerConfig cfg;
  LayerNorm layernorm;
  std::vector<BertLayer> layers;
  void visit(const ParamScope& s, const QFormerConfig& c);  // s = "qformer."
  // queries [B*Q, D] (before layernorm), image [B*T, Dv] -> last hidden state [B*Q, D].
  Tensor forward(const Tensor& queries, int64_t B, int64_t Q, const Tensor& image, int64_t T) const;
};

}  // namespace lumen

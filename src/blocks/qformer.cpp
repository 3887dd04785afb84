#include "blocks/qformer.h"

namespace lumen {

QFormerConfig QFormerConfig::from_hf(const JsonView& v) {
  QFormerConfig c;
  c.dim = v.get_int("hidden_size", 768);
  c.heads = v.get_int("num_attention_heads", 12);
  c.mlp_dim = v.get_int("intermediate_size", 3072);
  c.layers = v.get_int("num_hidden_layers", 12);
  c.encoder_dim = v.get_int("encoder_hidden_size", 1408);
  c.cross_attention_frequency = v.get_int("cross_attention_frequency", 2);
  c.act = parse_activation(v.get_string("hidden_act", "gelu"), v.field("hidden_act"));
  c.eps = static_cast<float>(v.get_double("layer_norm_eps", 1e-12));
  LUMEN_CHECK(c.cross_attention_frequency > 0, v.field("cross_attention_frequency"), ": must be positive, got ",
              c.cross_attention_frequency);
  return c;
}

void QFormer::visit(const ParamScope& s, const QFormerConfig& c) {
  cfg = c;
  layernorm.visit(s.sub("layernorm"), c.dim, c.eps);
  layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) {
    ParamScope l = s.sub("encoder.layer." + std::to_string(i));
    BertLayer& layer = layers[static_cast<size_t>(i)];
    layer.attention.visit(l.sub("attention"), "attention", c.dim, c.dim, c.heads, c.eps);
    layer.has_cross = i % c.cross_attention_frequency == 0;
    if (layer.has_cross)
      layer.crossattention.visit(l.sub("crossattention"), "attention", c.dim, c.encoder_dim, c.heads, c.eps);
    layer.ffn.visit(l, "intermediate_query", "output_query", c.dim, c.mlp_dim, c.act, c.eps);
  }
}

Tensor QFormer::forward(const Tensor& queries, int64_t B, int64_t Q, const Tensor& image, int64_t T) const {
  Tensor h = layernorm.forward(queries);  // [B*Q, D]
  const AttentionSource src{&image, T, nullptr};
  for (const auto& layer : layers) {
    h = layer.attention.forward(h, B, Q, false, nullptr, AttentionSource{});
    if (layer.has_cross) h = layer.crossattention.forward(h, B, Q, false, nullptr, src);
    h = layer.ffn.forward(h);
  }
  return h;
}

}  // namespace lumen

#include "blocks/blip_vision.h"

#include <cmath>
#include <cstring>

#include "blocks/vit.h"

namespace lumen {

BlipVisionConfig BlipVisionConfig::from_hf(const JsonView& v) {
  BlipVisionConfig c;
  c.image_size = v.get_int("image_size", 384);
  c.patch_size = v.get_int("patch_size", 16);
  c.channels = v.get_int("num_channels", 3);
  c.encoder = TransformerEncoderConfig::from_hf(v);
  if (!v.has("hidden_act")) c.encoder.act = Activation::GeluErf;  // BlipVisionConfig default "gelu"
  LUMEN_CHECK(c.patch_size > 0 && c.image_size >= c.patch_size, v.field("patch_size"), ": patch size ", c.patch_size,
              " does not fit image size ", c.image_size);
  return c;
}

void BlipAttention::visit(const ParamScope& s, int64_t d, int64_t num_heads) {
  LUMEN_CHECK(num_heads > 0 && d % num_heads == 0, s.prefix(), ": hidden size ", d,
              " is not divisible by num_attention_heads ", num_heads);
  dim = d;
  heads = num_heads;
  head_dim = d / num_heads;
  // BLIP and transformers 5 BLIP-2 store qkv.bias; older BLIP-2 checkpoints have q_bias and
  // v_bias (the key has no bias), which is the same bias with zeros in the middle.
  ParamScope q = s.sub("qkv");
  if (!q.has("bias") && s.has("q_bias")) {
    qkv.visit(q, d, 3 * d, /*has_bias=*/false);
    Tensor qb, vb;
    s("q_bias", {d}, Init::Bias, &qb);
    s("v_bias", {d}, Init::Bias, &vb);
    qkv.bias = Tensor::zeros({3 * d});
    std::memcpy(qkv.bias.data<float>(), qb.data<float>(), static_cast<size_t>(d) * sizeof(float));
    std::memcpy(qkv.bias.data<float>() + 2 * d, vb.data<float>(), static_cast<size_t>(d) * sizeof(float));
  } else {
    qkv.visit(q, d, 3 * d);
  }
  projection.visit(s.sub("projection"), d, d);
}

Tensor BlipAttention::forward(const Tensor& x, int64_t B, int64_t L) const {
  Tensor qkv_out = qkv.forward(x);  // [B*L, 3D]: q | k | v per row
  Tensor ctx = Tensor::zeros({B * L, dim});
  const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  const float* p = qkv_out.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const float* rows = p + b * L * 3 * dim;
    ops::attention(rows, 3 * dim, rows + dim, 3 * dim, rows + 2 * dim, 3 * dim, L, L, heads, head_dim, scale,
                   AttentionMask{}, ctx.data<float>() + b * L * dim, dim);
  }
  return projection.forward(ctx);
}

void BlipVisionLayer::visit(const ParamScope& s, const TransformerEncoderConfig& c) {
  self_attn.visit(s.sub("self_attn"), c.dim, c.heads);
  layer_norm1.visit(s.sub("layer_norm1"), c.dim, c.eps);
  mlp.visit(s.sub("mlp"), c.dim, c.mlp_dim, c.act);
  layer_norm2.visit(s.sub("layer_norm2"), c.dim, c.eps);
}

void BlipVisionLayer::forward(Tensor& h, int64_t B, int64_t L) const {
  Tensor a = self_attn.forward(layer_norm1.forward(h), B, L);
  ops::add_inplace(h.data<float>(), a.data<float>(), h.numel());
  Tensor m = mlp.forward(layer_norm2.forward(h));
  ops::add_inplace(h.data<float>(), m.data<float>(), h.numel());
}

void BlipVisionModel::visit(const ParamScope& s, const BlipVisionConfig& c) {
  cfg = c;
  const int64_t D = c.encoder.dim, p = c.patch_size;
  ParamScope emb = s.sub("embeddings");
  emb("class_embedding", {1, 1, D}, Init::Vector, &class_embedding);
  emb("patch_embedding.weight", {D, c.channels, p, p}, Init::Matrix, &patch_weight);
  emb("patch_embedding.bias", {D}, Init::Bias, &patch_bias);
  emb("position_embedding", {1, c.num_positions(), D}, Init::Vector, &position_embedding);
  layers.resize(static_cast<size_t>(c.encoder.layers));
  for (int64_t i = 0; i < c.encoder.layers; ++i)
    layers[static_cast<size_t>(i)].visit(s.sub("encoder.layers." + std::to_string(i)), c.encoder);
  post_layernorm.visit(s.sub("post_layernorm"), D, c.encoder.eps);
}

Tensor BlipVisionModel::forward(const Tensor& pixel_values) const {
  const int64_t C = cfg.channels, S = cfg.image_size, D = cfg.encoder.dim;
  LUMEN_CHECK(pixel_values.ndim() == 4 && pixel_values.dim(1) == C && pixel_values.dim(2) == S &&
                  pixel_values.dim(3) == S,
              "BLIP vision tower expects pixel_values [B, ", C, ", ", S, ", ", S, "], got ", pixel_values.describe());
  const int64_t B = pixel_values.dim(0), N = cfg.grid() * cfg.grid(), T = N + 1;
  Tensor patches = patchify(pixel_values, cfg.patch_size);  // [B*N, C*p*p]
  Tensor patch_out = Tensor::zeros({B * N, D});
  ops::linear(patches.data<float>(), B * N, patches.dim(1), patch_weight.data<float>(), D, patch_bias.data<float>(),
              patch_out.data<float>());
  Tensor h = Tensor::zeros({B * T, D});  // [B*T, D]: class token, then patches; + positions
  for (int64_t b = 0; b < B; ++b) {
    float* hb = h.data<float>() + b * T * D;
    std::memcpy(hb, class_embedding.data<float>(), static_cast<size_t>(D) * sizeof(float));
    std::memcpy(hb + D, patch_out.data<float>() + b * N * D, static_cast<size_t>(N * D) * sizeof(float));
    ops::add_inplace(hb, position_embedding.data<float>(), T * D);
  }
  for (const auto& layer : layers) layer.forward(h, B, T);
  post_layernorm.forward(h.data<float>(), B * T, h.data<float>());
  return h.reshape({B, T, D});
}

}  // namespace lumen

// The vision tower of BLIP and BLIP-2 (BlipVisionModel, Blip2VisionModel): a conv patch
// embedding with bias, a learned class token and positions, pre-LN encoder layers whose
// attention has one fused qkv projection, and a post-LN applied to every token (the tower's
// last_hidden_state). Reference: transformers/models/blip/modeling_blip.py (BlipVisionModel,
// BlipAttention), blip_2/modeling_blip_2.py (Blip2Attention: qkv without bias plus separate
// q_bias / v_bias in older checkpoints).
#pragma once
#include <vector>

#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

struct BlipVisionConfig {
  int64_t image_size = 384, patch_size = 16, channels = 3;
  TransformerEncoderConfig encoder;  // layer_norm_eps: 1e-5 (BLIP), 1e-6 (BLIP-2)
  int64_t grid() const { return image_size / patch_size; }
  int64_t num_positions() const { return grid() * grid() + 1; }
  static BlipVisionConfig from_hf(const JsonView& vision_config);
};

// Multi-head self-attention with a fused qkv Linear [3D, D] (rows: q, then k, then v) and an
// output `projection`.
struct BlipAttention {
  int64_t dim = 0, heads = 0, head_dim = 0;
  Linear qkv, projection;
  void visit(const ParamScope& s, int64_t d, int64_t num_heads);
  Tensor forward(const Tensor& x, int64_t B, int64_t L) const;  // [B*L, D] -> [B*L, D]
};

struct BlipVisionLayer {
  LayerNorm layer_norm1, layer_norm2;
  BlipAttention self_attn;
  Mlp mlp;
  void visit(const ParamScope& s, const TransformerEncoderConfig& c);
  void forward(Tensor& h, int64_t B, int64_t L) const;  // h [B*L, D], pre-LN residual layer
};

struct BlipVisionModel {
  BlipVisionConfig cfg;
  Tensor patch_weight, patch_bias;  // [D, C, p, p], [D]
  Tensor class_embedding;           // [1, 1, D]
  Tensor position_embedding;        // [1, 1+N, D]
  std::vector<BlipVisionLayer> layers;
  LayerNorm post_layernorm;

  void visit(const ParamScope& s, const BlipVisionConfig& c);  // s = "vision_model."
  // pixel_values [B, C, S, S] -> last_hidden_state [B, 1+N, D], post_layernorm applied.
  Tensor forward(const Tensor& pixel_values) const;
};

}  // namespace lumen

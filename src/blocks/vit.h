// Vision transformer tower as CLIP and SigLIP lay it out (CLIPVisionTransformer,
// SiglipVisionTransformer): conv patch embedding, optional class token, learned positions,
// optional pre-LN, a pre-LN encoder, and a post-LN the family applies as it needs.
#pragma once
#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

struct VitConfig {
  int64_t image_size = 224, patch_size = 16, channels = 3;
  TransformerEncoderConfig encoder;
  bool class_token = true;    // CLIP: a learned [CLS] first; SigLIP: none
  bool patch_bias = false;    // SigLIP's conv has a bias, CLIP's has none
  bool pre_layernorm = true;  // CLIP's "pre_layrnorm"

  int64_t grid() const { return image_size / patch_size; }
  int64_t num_patches() const { return grid() * grid(); }
  int64_t num_positions() const { return num_patches() + (class_token ? 1 : 0); }
  // Reads an HF vision_config (hidden_size, num_hidden_layers, ...).
  static VitConfig from_hf(const JsonView& vision_config);
};

// pixel_values [B, C, S, S] -> non-overlapping p x p patches [B*(S/p)^2, C*p*p], rows (b, py, px),
// columns (c, ky, kx): a stride-p conv is then one GEMM with its weight viewed as [D, C*p*p].
Tensor patchify(const Tensor& pixel_values, int64_t patch);

struct VisionTransformer {
  VitConfig cfg;
  Tensor patch_weight;  // [D, C, p, p]
  Tensor patch_bias;    // [D] (SigLIP)
  Tensor class_embedding;     // [D] (CLIP)
  Tensor position_embedding;  // [T, D]
  LayerNorm pre_layrnorm, post_layernorm;
  TransformerEncoder encoder;

  // Scope: the tower's own prefix, e.g. "vision_model." in CLIPModel.
  void visit(const ParamScope& s, const VitConfig& c);

  // pixel_values [B, C, S, S] -> embeddings (+ pre-LN) [B*T, D]
  Tensor embed(const Tensor& pixel_values) const;
  // Runs embeddings and the first `n_layers` encoder layers (all when < 0): [B, T, D], no post-LN.
  Tensor forward(const Tensor& pixel_values, int n_layers = -1) const;
};

}  // namespace lumen

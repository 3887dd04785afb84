// LLaVA (Liu et al. 2023) and its relatives: a CLIP vision tower, a projector into the LM's
// embedding space, and a LLaMA/Mistral decoder. The image's features replace the prompt's
// image-token positions. Reference: transformers/models/llava/modeling_llava.py.
//
// LLaVA-NeXT is the same model with AnyRes tiling and feature packing (image_grid_pinpoints).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "blocks/decoder_lm.h"
#include "blocks/vit.h"
#include "families/family.h"
#include "vision/anyres.h"

namespace lumen {

struct LlavaConfig {
  VitConfig vision;
  DecoderLmConfig text;
  Activation projector_act = Activation::GeluErf;
  bool projector_bias = true;
  bool linear_projector = false;  // LLaVA v1: one linear layer (projector_type "linear")
  // Indices into the tower's hidden_states (0 = embeddings, i = after layer i; negative counts
  // from the end); several are concatenated along features.
  std::vector<int64_t> feature_layers{-2};
  bool select_full = false;  // vision_feature_select_strategy "full" keeps the CLS token
  int64_t image_token_id = 32000;
  std::vector<ImageSize> grid_pinpoints;  // LLaVA-NeXT AnyRes resolutions
  std::string model_type = "llava";

  static LlavaConfig from_hf(const nlohmann::json& j, const std::string& path);
  // hidden_states index -> number of encoder layers to run.
  int64_t layers_for(int64_t feature_layer) const;
};

class LlavaModel : public VisionLanguageModel {
 public:
  LlavaConfig cfg;
  VisionTransformer vision;
  Linear linear_1, linear_2;  // multi_modal_projector
  DecoderLm text;
  Tensor image_newline;  // [Dt], LLaVA-NeXT only

  void visit(ParamVisitor& v);

  std::string family() const override { return cfg.model_type; }
  const DecoderLm& lm() const override { return text; }
  int64_t image_token_id() const override { return cfg.image_token_id; }
  int64_t max_context() const override { return text.cfg.max_positions; }
  int64_t image_token_count(const ImageInput& image) const override;
  Tensor encode_image(const ImageInput& image) const override;

  // Projected features of every tile: pixel_values [T, 3, S, S] -> [T, n, Dt] (n = patches, +1
  // with the "full" strategy).
  Tensor tile_features(const Tensor& pixel_values) const;
  // Features per tile before projection, [T, n, Dv * feature_layers].
  Tensor vision_features(const Tensor& pixel_values) const;
  int64_t tokens_per_tile() const { return cfg.vision.num_patches() + (cfg.select_full ? 1 : 0); }

 protected:
  bool anyres() const { return !cfg.grid_pinpoints.empty(); }
};

// config.json of a make-tiny preset (o.arch: tiny, llava-1.5-7b, llava-v1.6-mistral-7b).
nlohmann::json llava_preset_config(const MakeTinyOptions& o, bool next, int64_t vocab, int64_t image_token_id);
// Writes a LLaVA / LLaVA-NeXT checkpoint with random weights (make-tiny).
void make_tiny_llava(const MakeTinyOptions& o, bool next);
// Fixture tasks of decoder-only VLMs: causal_lm_forward and greedy_generate (FORMAT.md 5.3, 6).
TensorMap vlm_fixture(const Model& m, const std::string& task, const TensorMap& inputs, const nlohmann::json& meta);

}  // namespace lumen

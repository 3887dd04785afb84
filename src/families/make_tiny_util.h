// Shared helpers for families: writing a checkpoint directory and contrastive logits.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "families/family.h"

namespace lumen {

// Writes config.json, model.safetensors and (when non-null) preprocessor_config.json into dir
// (created if missing). Files are replaced atomically.
void write_checkpoint(const std::string& dir, const nlohmann::json& config, const nlohmann::json& preprocessor,
                      const std::vector<std::pair<std::string, Tensor>>& tensors);

// logits_per_text [T, I] = scale * text @ image^T + bias; logits_per_image its transpose.
void add_contrastive_logits(TensorMap& out, const Tensor& image_embeds, const Tensor& text_embeds, float scale,
                            float bias);

}  // namespace lumen

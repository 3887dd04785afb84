// Meta's OPT decoder (transformers/models/opt/modeling_opt.py, OPTDecoder + OPTForCausalLM):
// token embeddings (optionally projected from word_embed_proj_dim), learned positions read at
// index position + 2 (OPTLearnedPositionalEmbedding's offset), layers with LayerNorm before
// (do_layer_norm_before, all sizes but 350m) or after each block, multi-head attention with
// biases, a ReLU fc1/fc2 feed-forward, a final LayerNorm and an LM head tied to the embeddings.
#pragma once
#include <vector>

#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

struct OptConfig {
  int64_t vocab_size = 0, dim = 0, layers = 0, heads = 0, ffn_dim = 0, max_positions = 2048;
  int64_t word_embed_proj_dim = 0;  // = dim unless the model projects embeddings (350m)
  bool layer_norm_before = true, final_layer_norm = true, bias = true, tie_word_embeddings = true;
  Activation act = Activation::Relu;
  static constexpr int64_t kPositionOffset = 2;
  static OptConfig from_hf(const JsonView& text_config);
};

struct OptLayer {
  LayerNorm self_attn_layer_norm, final_layer_norm;
  Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  void visit(const ParamScope& s, const OptConfig& c);
};

// Keys/values of one sequence, [capacity, D] per layer.
struct OptCache {
  int64_t capacity = 0, length = 0;
  std::vector<Tensor> k, v;
};

struct OptDecoder {
  OptConfig cfg;
  Tensor embed_tokens, embed_positions;  // [V, Dw], [max_positions + 2, D]
  Linear project_in, project_out;        // only when word_embed_proj_dim != hidden_size
  std::vector<OptLayer> layers;
  LayerNorm final_layer_norm;
  Linear lm_head;  // [V, Dw]

  // decoder = "language_model.model.decoder.", head = scope holding lm_head ("language_model.").
  void visit(const ParamScope& decoder, const ParamScope& head, const OptConfig& c);
  OptCache new_cache(int64_t capacity) const;
  Tensor embed(const int64_t* ids, int64_t n) const;  // [n, Dw]
  // embeds [L, Dw] at positions cache.length.. (all attended) -> final hidden states [L, Dw].
  Tensor forward(const Tensor& embeds, OptCache& cache) const;
  Tensor logits(const float* hidden, int64_t rows) const;  // [rows, V]
};

}  // namespace lumen

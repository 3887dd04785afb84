// The decoder-only language model of the LLaMA line (LLaMA/LLaMA-2/Vicuna/Yi, Mistral, and the
// text half of LLaVA): token embedding, pre-RMSNorm layers with rotary grouped-query attention
// and a SwiGLU MLP, a final RMSNorm and an LM head (tied to the embedding or not).
// Reference: transformers/models/llama/modeling_llama.py, mistral/modeling_mistral.py.
//
// A sequence is run in chunks against its KV cache: prefill feeds the whole prompt (text and
// image embeddings) at once, decode feeds one token at a time.
#pragma once
#include <string>
#include <vector>

#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

// How rotary frequencies are derived (HF `rope_scaling` / transformers 5 `rope_parameters`).
struct RopeConfig {
  enum class Kind { Default, Linear, Llama3 };
  Kind kind = Kind::Default;
  double theta = 10000.0;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_positions = 8192;
  // Reads rope_parameters (transformers >= 5), else rope_theta + rope_scaling.
  static RopeConfig from_hf(const JsonView& text_config, int64_t max_positions);
};

struct DecoderLmConfig {
  int64_t vocab_size = 0, dim = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, mlp_dim = 0;
  int64_t max_positions = 2048;
  int64_t sliding_window = 0;  // Mistral: a key is visible if it is within this many positions; 0 = off
  float rms_eps = 1e-6f;
  Activation act = Activation::Silu;
  bool attention_bias = false, mlp_bias = false;
  bool tie_word_embeddings = false;
  RopeConfig rope;
  std::string model_type = "llama";
  // Reads a LLaMA/Mistral config (a checkpoint's config.json or LLaVA's text_config).
  // `tie_default` is the outer config's tie_word_embeddings when the text config has none.
  static DecoderLmConfig from_hf(const JsonView& text_config, bool tie_default = false);
};

struct RmsNorm {
  int64_t dim = 0;
  float eps = 1e-6f;
  Tensor weight;  // [dim]
  void visit(const ParamScope& s, int64_t d, float epsilon);
  // y = x / sqrt(mean(x^2) + eps) * weight, per row; y may alias x.
  void forward(const float* x, int64_t rows, float* y) const;
};

// Per-sequence keys and values of every layer, [capacity, kv_heads * head_dim] each.
struct KvCache {
  int64_t capacity = 0, length = 0, kv_dim = 0;
  std::vector<Tensor> k, v;  // one per layer
  void reset() { length = 0; }
};

// cos/sin tables of the rotary embedding for positions [0, max_positions).
struct RotaryTable {
  int64_t half = 0;  // head_dim / 2
  std::vector<float> cos, sin;  // [capacity, half]
  float attention_scaling = 1.f;
};

struct DecoderLayer {
  RmsNorm input_layernorm, post_attention_layernorm;
  Linear q_proj, k_proj, v_proj, o_proj;
  Linear gate_proj, up_proj, down_proj;
  void visit(const ParamScope& s, const DecoderLmConfig& c);
};

struct DecoderLm {
  DecoderLmConfig cfg;
  Tensor embed_tokens;  // [V, D]
  std::vector<DecoderLayer> layers;
  RmsNorm norm;
  Linear lm_head;  // [V, D]; packed from embed_tokens when tied

  // `model` holds embed_tokens/layers/norm (e.g. "model." or LLaVA's "language_model.model.");
  // `head` holds lm_head ("lm_head." / "language_model.lm_head.").
  void visit(const ParamScope& model, const ParamScope& head, const DecoderLmConfig& c);

  KvCache new_cache(int64_t capacity) const;
  // Token embeddings [n, D] of ids (checked against the vocabulary).
  Tensor embed(const int64_t* ids, int64_t n) const;
  // Runs embeds [L, D] as positions cache.length .. cache.length + L - 1, appends their keys
  // and values to the cache and returns the final-normed hidden states [L, D].
  Tensor forward(const Tensor& embeds, KvCache& cache) const;
  // Several sequences in one pass (continuous batching): embeds [sum(rows), D] holds each
  // chunk's rows in order; chunk i continues its own cache. Decode steps of n sequences are n
  // chunks of one row: every weight is read once for all of them.
  struct SequenceChunk {
    KvCache* cache;
    int64_t rows;
  };
  Tensor forward_batch(const Tensor& embeds, const std::vector<SequenceChunk>& chunks) const;
  // logits [rows, V] of hidden states [rows, D].
  Tensor logits(const float* hidden, int64_t rows) const;

  RotaryTable rope;  // positions [0, max_positions), built by visit
};

}  // namespace lumen

// T5 / Flan-T5 encoder-decoder (transformers/models/t5/modeling_t5.py): RMS-style T5LayerNorm
// (no mean, no bias), unscaled attention with a learned relative-position bias (bucketed,
// owned by each stack's first layer and shared by the rest; bidirectional in the encoder,
// causal in the decoder), a ReLU or gated-GELU feed-forward, and a decoder that cross-attends
// to the encoder output. The decoder keeps its own KV cache; cross-attention keys/values are
// computed once per encoder output.
#pragma once
#include <vector>

#include "blocks/decoder_lm.h"
#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

struct T5Config {
  int64_t vocab_size = 0, dim = 0, d_kv = 64, d_ff = 0, heads = 0, encoder_layers = 0, decoder_layers = 0;
  int64_t num_buckets = 32, max_distance = 128;
  float eps = 1e-6f;
  bool gated = false;  // feed_forward_proj "gated-*": wo(act(wi_0 x) * wi_1 x)
  Activation act = Activation::Relu;
  // Decoder output times d_model^-0.5 before the LM head: transformers 5's scale_decoder_outputs,
  // earlier versions' tie_word_embeddings.
  bool scale_decoder_outputs = true;
  int64_t decoder_start_token_id = 0;
  int64_t inner() const { return heads * d_kv; }
  static T5Config from_hf(const JsonView& text_config);
};

// T5's bucket of a relative position (key - query), as _relative_position_bucket computes it.
int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets,
                                    int64_t max_distance);

struct T5Attention {
  Linear q, k, v, o;
  Tensor relative_attention_bias;  // [buckets, heads], first layer of a stack only
  void visit(const ParamScope& s, const T5Config& c, bool has_bias);
};

struct T5Block {
  RmsNorm self_norm, cross_norm, ff_norm;
  T5Attention self_attn, cross_attn;
  Linear wi_0, wi_1, wo;  // wi_0 is `wi` when not gated
};

// Decoder state of one sequence: self-attention K/V per layer, cross K/V of the encoder output.
struct T5DecoderCache {
  int64_t capacity = 0, length = 0, encoder_length = 0;
  std::vector<Tensor> k, v, cross_k, cross_v;
};

struct T5Model {
  T5Config cfg;
  Tensor shared;  // [V, D]
  std::vector<T5Block> encoder, decoder;
  RmsNorm encoder_norm, decoder_norm;
  Linear lm_head;

  void visit(const ParamScope& s, const T5Config& c);  // s = "language_model."
  Tensor embed(const int64_t* ids, int64_t n) const;  // [n, D]
  // embeds [L, D] (all attended) -> encoder last hidden state [L, D].
  Tensor encode(const Tensor& embeds) const;
  T5DecoderCache new_cache(const Tensor& encoder_out, int64_t capacity) const;
  // Decoder ids at positions cache.length.. -> logits [n, V].
  Tensor decode(const int64_t* ids, int64_t n, T5DecoderCache& cache) const;
};

}  // namespace lumen

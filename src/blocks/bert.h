// BERT-style post-LN transformer parts as BLIP's text encoder/decoder and BLIP-2's Q-Former
// lay them out: attention = LayerNorm(x + dense(MHA(query(x), key(src), value(src)))), an
// optional cross-attention of the same shape whose keys/values come from image (or question)
// features, and a feed-forward LayerNorm(x + down(act(up(x)))).
// Reference: transformers/models/blip/modeling_blip_text.py (BlipTextSelfAttention,
// BlipTextLayer, BlipTextEmbeddings, BlipTextLMPredictionHead) and
// blip_2/modeling_blip_2.py (Blip2QFormerLayer).
#pragma once
#include <string>
#include <vector>

#include "blocks/layers.h"
#include "formats/json_config.h"

namespace lumen {

// Keys and values an attention reads: rows [B*Lk, Dkv] with an optional keep mask [B, Lk].
struct AttentionSource {
  const Tensor* x = nullptr;  // null = self-attention on the queries
  int64_t L = 0;              // Lk per batch row
  const int64_t* key_keep = nullptr;
};

// `<s>.<inner>.{query,key,value}` + `<s>.output.{dense,LayerNorm}`; inner is "self" (BLIP text)
// or "attention" (Q-Former).
struct BertAttention {
  int64_t dim = 0, heads = 0, head_dim = 0;
  Linear query, key, value, dense;
  LayerNorm layer_norm;
  void visit(const ParamScope& s, const std::string& inner, int64_t d, int64_t kv_dim, int64_t num_heads, float eps);
  // x [B*Lq, D] -> LayerNorm(x + attention output) [B*Lq, D].
  Tensor forward(const Tensor& x, int64_t B, int64_t Lq, bool causal, const int64_t* self_keep,
                 const AttentionSource& src) const;
  // Keys and values of `src` rows [N, Dkv] -> k, v [N, D] (cross-attention computed once).
  void project_kv(const Tensor& src, Tensor* k, Tensor* v) const;
  // Causal self-attention of B sequences' Lq new rows x [B*Lq, D] at positions past..: their
  // keys/values are written into the caches first. Sequence b's cache is the [capacity, D]
  // block at k_rows[b] / v_rows[b]. -> LayerNorm(x + output) [B*Lq, D].
  Tensor forward_self_cached(const Tensor& x, int64_t B, int64_t Lq, int64_t past, const std::vector<float*>& k_rows,
                             const std::vector<float*>& v_rows) const;
  // Attention of x [B*Lq, D] to keys/values k, v [Lk, D] that every sequence shares (BLIP's
  // image or question, all kept) -> LayerNorm(x + output) [B*Lq, D].
  Tensor forward_shared_kv(const Tensor& x, int64_t B, int64_t Lq, const Tensor& k, const Tensor& v) const;

 private:
  Tensor output(const Tensor& ctx, const Tensor& x) const;  // LayerNorm(x + dense(ctx))
};

// `<s>.<up>.dense` (act) then `<s>.<down>.{dense,LayerNorm}` with the residual.
struct BertFeedForward {
  Linear up, down;
  LayerNorm layer_norm;
  Activation act = Activation::GeluErf;
  void visit(const ParamScope& s, const std::string& up_name, const std::string& down_name, int64_t d,
             int64_t hidden, Activation a, float eps);
  Tensor forward(const Tensor& x) const;
};

struct BertConfig {
  int64_t vocab_size = 0, dim = 0, heads = 0, mlp_dim = 0, layers = 0, max_positions = 512;
  int64_t encoder_dim = 0;  // cross-attention key/value width (encoder_hidden_size)
  Activation act = Activation::GeluErf;
  float eps = 1e-12f;
  static BertConfig from_hf(const JsonView& text_config);
};

struct BertLayer {
  BertAttention attention;
  bool has_cross = false;
  BertAttention crossattention;
  BertFeedForward ffn;
};

// The decoder state of `rows` sequences decoded together (greedy: 1, beam search: num_beams).
// Self-attention keys/values live in physical slots of [capacity, D] per layer; logical row i
// (the i-th running sequence) uses slot[i]. A beam step that only permutes the rows costs no
// copy: slot indices move instead. Only a parent picked by several rows is copied, once per
// extra child, and only its `length` filled positions.
// The cross-attention keys/values of the encoder rows are computed once and shared by all rows.
struct BertDecoderCache {
  int64_t rows = 0, capacity = 0, length = 0;
  std::vector<Tensor> self_k, self_v;    // per layer [rows * capacity, D]
  std::vector<int64_t> slot;             // logical row -> physical slot
  std::vector<Tensor> cross_k, cross_v;  // per layer [Le, D]
  int64_t copied_positions = 0;          // positions copied by reorder (for benchmarks, tests)

  // Row i now continues the sequence row parent[i] was (beam search's reorder).
  void reorder(const std::vector<int64_t>& parent);
  // Every row becomes a copy of row 0 (beam search's first step: the prompt, once).
  void broadcast_first_row();
};

// BlipTextModel without pooler: word + absolute position embeddings, LayerNorm, then layers
// that cross-attend to `encoder` features when they are given.
struct BertTextModel {
  BertConfig cfg;
  Tensor word_embeddings, position_embeddings;  // [V, D], [P, D]
  LayerNorm embed_norm;
  std::vector<BertLayer> layers;

  void visit(const ParamScope& s, const BertConfig& c);  // s = "text_encoder." / "text_decoder.bert."
  // ids [B, L] (row-major), mask [B, L] or null (all ones); causal for the decoder; encoder
  // rows [B*Le, De] (null: no cross-attention) -> last hidden state [B*L, D].
  Tensor forward(const int64_t* ids, int64_t B, int64_t L, const int64_t* mask, bool causal,
                 const AttentionSource& encoder) const;

  // Causal decoding with a KV cache (BlipTextModel with use_cache): a cache for `rows`
  // sequences of up to `capacity` tokens that cross-attend to `encoder` [Le, De] (shared).
  BertDecoderCache new_decoder_cache(const Tensor& encoder, int64_t rows, int64_t capacity) const;
  // ids [rows, L] at positions cache.length.. (all attended) -> last hidden state [rows*L, D]:
  // the rows forward(causal, all-ones mask) gives over the whole sequence. rows < cache.rows
  // runs the first rows only (a beam search's prompt, once, before broadcast_first_row).
  Tensor forward_cached(const int64_t* ids, int64_t rows, int64_t L, BertDecoderCache& cache) const;
};

// cls.predictions: dense -> act -> LayerNorm -> decoder (tied to the word embeddings) + bias.
struct BertLmHead {
  Linear transform, decoder;
  LayerNorm layer_norm;
  Activation act = Activation::GeluErf;
  void visit(const ParamScope& s, const BertConfig& c, const Tensor& word_embeddings);  // s = "cls.predictions."
  Tensor forward(const float* hidden, int64_t rows) const;  // [rows, V]
};

}  // namespace lumen

#include "blocks/bert.h"

#include <cmath>
#include <cstring>

namespace lumen {

void BertAttention::visit(const ParamScope& s, const std::string& inner, int64_t d, int64_t kv_dim,
                          int64_t num_heads, float eps) {
  LUMEN_CHECK(num_heads > 0 && d % num_heads == 0, s.prefix(), ": hidden size ", d,
              " is not divisible by num_attention_heads ", num_heads);
  dim = d;
  heads = num_heads;
  head_dim = d / num_heads;
  ParamScope a = s.sub(inner);
  query.visit(a.sub("query"), d, d);
  key.visit(a.sub("key"), kv_dim, d);
  value.visit(a.sub("value"), kv_dim, d);
  dense.visit(s.sub("output").sub("dense"), d, d);
  layer_norm.visit(s.sub("output").sub("LayerNorm"), d, eps);
}

Tensor BertAttention::forward(const Tensor& x, int64_t B, int64_t Lq, bool causal, const int64_t* self_keep,
                              const AttentionSource& src) const {
  const Tensor& kv_in = src.x ? *src.x : x;
  const int64_t Lk = src.x ? src.L : Lq;
  const int64_t* keep = src.x ? src.key_keep : self_keep;
  Tensor q = query.forward(x), k = key.forward(kv_in), v = value.forward(kv_in);  // [B*Lq, D], [B*Lk, D] x2
  Tensor ctx = Tensor::zeros({B * Lq, dim});
  const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  for (int64_t b = 0; b < B; ++b) {
    AttentionMask mask;
    mask.causal = causal;
    mask.causal_offset = Lk - Lq;
    mask.key_keep = keep ? keep + b * Lk : nullptr;
    ops::attention(q.data<float>() + b * Lq * dim, dim, k.data<float>() + b * Lk * dim, dim,
                   v.data<float>() + b * Lk * dim, dim, Lq, Lk, heads, head_dim, scale, mask,
                   ctx.data<float>() + b * Lq * dim, dim);
  }
  return output(ctx, x);
}

Tensor BertAttention::output(const Tensor& ctx, const Tensor& x) const {
  Tensor out = dense.forward(ctx);
  ops::add_inplace(out.data<float>(), x.data<float>(), out.numel());
  layer_norm.forward(out.data<float>(), out.numel() / dim, out.data<float>());
  return out;
}

void BertAttention::project_kv(const Tensor& src, Tensor* k, Tensor* v) const {
  *k = key.forward(src);
  *v = value.forward(src);
}

Tensor BertAttention::forward_self_cached(const Tensor& x, int64_t B, int64_t Lq, int64_t past,
                                          const std::vector<float*>& k_rows, const std::vector<float*>& v_rows) const {
  Tensor q = query.forward(x), k = key.forward(x), v = value.forward(x);  // [B*Lq, D] x3
  Tensor ctx = Tensor::zeros({B * Lq, dim});
  const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  const size_t new_bytes = static_cast<size_t>(Lq * dim) * sizeof(float);
  for (int64_t b = 0; b < B; ++b) {
    float* kc = k_rows[static_cast<size_t>(b)];
    float* vc = v_rows[static_cast<size_t>(b)];
    std::memcpy(kc + past * dim, k.data<float>() + b * Lq * dim, new_bytes);
    std::memcpy(vc + past * dim, v.data<float>() + b * Lq * dim, new_bytes);
    AttentionMask mask;
    mask.causal = true;
    mask.causal_offset = past;
    ops::attention(q.data<float>() + b * Lq * dim, dim, kc, dim, vc, dim, Lq, past + Lq, heads, head_dim, scale, mask,
                   ctx.data<float>() + b * Lq * dim, dim);
  }
  return output(ctx, x);
}

Tensor BertAttention::forward_shared_kv(const Tensor& x, int64_t B, int64_t Lq, const Tensor& k,
                                        const Tensor& v) const {
  const int64_t Lk = k.dim(0);
  Tensor q = query.forward(x);  // [B*Lq, D]
  Tensor ctx = Tensor::zeros({B * Lq, dim});
  const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  // Every row attends to the same keys: one call over all B*Lq queries.
  ops::attention(q.data<float>(), dim, k.data<float>(), dim, v.data<float>(), dim, B * Lq, Lk, heads, head_dim, scale,
                 AttentionMask{}, ctx.data<float>(), dim);
  return output(ctx, x);
}

void BertFeedForward::visit(const ParamScope& s, const std::string& up_name, const std::string& down_name, int64_t d,
                            int64_t hidden, Activation a, float eps) {
  act = a;
  up.visit(s.sub(up_name).sub("dense"), d, hidden);
  down.visit(s.sub(down_name).sub("dense"), hidden, d);
  layer_norm.visit(s.sub(down_name).sub("LayerNorm"), d, eps);
}

Tensor BertFeedForward::forward(const Tensor& x) const {
  Tensor h = up.forward(x);  // [M, hidden]
  apply_activation(act, h.data<float>(), h.numel());
  Tensor out = down.forward(h);  // [M, D]
  ops::add_inplace(out.data<float>(), x.data<float>(), out.numel());
  layer_norm.forward(out.data<float>(), out.numel() / out.dim(-1), out.data<float>());
  return out;
}

BertConfig BertConfig::from_hf(const JsonView& v) {
  BertConfig c;
  c.vocab_size = v.get_int("vocab_size");
  c.dim = v.get_int("hidden_size");
  c.heads = v.get_int("num_attention_heads");
  c.mlp_dim = v.get_int("intermediate_size");
  c.layers = v.get_int("num_hidden_layers");
  c.max_positions = v.get_int("max_position_embeddings", 512);
  c.encoder_dim = v.get_int("encoder_hidden_size", c.dim);
  c.act = parse_activation(v.get_string("hidden_act", "gelu"), v.field("hidden_act"));
  c.eps = static_cast<float>(v.get_double("layer_norm_eps", 1e-12));
  LUMEN_CHECK(c.vocab_size > 0 && c.dim > 0 && c.heads > 0 && c.layers >= 0, v.where(),
              ": vocab_size, hidden_size, num_attention_heads must be positive");
  return c;
}

void BertTextModel::visit(const ParamScope& s, const BertConfig& c) {
  cfg = c;
  ParamScope emb = s.sub("embeddings");
  emb("word_embeddings.weight", {c.vocab_size, c.dim}, Init::Matrix, &word_embeddings);
  emb("position_embeddings.weight", {c.max_positions, c.dim}, Init::Matrix, &position_embeddings);
  embed_norm.visit(emb.sub("LayerNorm"), c.dim, c.eps);
  layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) {
    ParamScope l = s.sub("encoder.layer." + std::to_string(i));
    BertLayer& layer = layers[static_cast<size_t>(i)];
    layer.attention.visit(l.sub("attention"), "self", c.dim, c.dim, c.heads, c.eps);
    // BlipTextLayer has a cross-attention when the config is a decoder (both BLIP text models).
    layer.has_cross = l.has("crossattention.self.query.weight");
    if (layer.has_cross)
      layer.crossattention.visit(l.sub("crossattention"), "self", c.dim, c.encoder_dim, c.heads, c.eps);
    layer.ffn.visit(l, "intermediate", "output", c.dim, c.mlp_dim, c.act, c.eps);
  }
}

Tensor BertTextModel::forward(const int64_t* ids, int64_t B, int64_t L, const int64_t* mask, bool causal,
                              const AttentionSource& encoder) const {
  const int64_t D = cfg.dim;
  LUMEN_CHECK(L <= cfg.max_positions, "text of ", L, " tokens is longer than max_position_embeddings ",
              cfg.max_positions);
  Tensor h = Tensor::zeros({B * L, D});  // [B*L, D] = word + position, LayerNorm
  ops::embedding(word_embeddings, ids, B * L, h.data<float>());
  for (int64_t b = 0; b < B; ++b) ops::add_inplace(h.data<float>() + b * L * D, position_embeddings.data<float>(), L * D);
  embed_norm.forward(h.data<float>(), B * L, h.data<float>());
  for (const auto& layer : layers) {
    h = layer.attention.forward(h, B, L, causal, mask, AttentionSource{});
    if (encoder.x) {
      LUMEN_CHECK(layer.has_cross, "this BLIP text model has no cross-attention layers");
      h = layer.crossattention.forward(h, B, L, false, nullptr, encoder);
    }
    h = layer.ffn.forward(h);
  }
  return h;
}

void BertDecoderCache::reorder(const std::vector<int64_t>& parent) {
  LUMEN_CHECK(static_cast<int64_t>(parent.size()) == rows, "decoder cache of ", rows, " rows reordered by ",
              parent.size(), " parents");
  // The first row to pick a parent takes over its slot; later ones get a slot nobody picked
  // and a copy of the parent's filled positions.
  std::vector<char> slot_taken(static_cast<size_t>(rows), 0);
  std::vector<int64_t> next(static_cast<size_t>(rows), -1);
  std::vector<size_t> needs_copy;
  for (size_t i = 0; i < parent.size(); ++i) {
    const int64_t p = parent[i];
    LUMEN_CHECK(p >= 0 && p < rows, "decoder cache: parent ", p, " of row ", i, " is not a row");
    const int64_t s = slot[static_cast<size_t>(p)];
    if (!slot_taken[static_cast<size_t>(s)]) {
      slot_taken[static_cast<size_t>(s)] = 1;
      next[i] = s;
    } else {
      needs_copy.push_back(i);
    }
  }
  size_t free_slot = 0;
  for (size_t i : needs_copy) {
    while (slot_taken[free_slot]) ++free_slot;
    slot_taken[free_slot] = 1;
    next[i] = static_cast<int64_t>(free_slot);
    const int64_t from = slot[static_cast<size_t>(parent[i])];
    const int64_t D = self_k.empty() ? 0 : self_k[0].dim(-1);
    const size_t bytes = static_cast<size_t>(length * D) * sizeof(float);
    for (auto* layers : {&self_k, &self_v})
      for (Tensor& t : *layers)
        std::memcpy(t.data<float>() + static_cast<int64_t>(free_slot) * capacity * D,
                    t.data<float>() + from * capacity * D, bytes);
    copied_positions += length;
  }
  slot = std::move(next);
}

void BertDecoderCache::broadcast_first_row() { reorder(std::vector<int64_t>(static_cast<size_t>(rows), 0)); }

BertDecoderCache BertTextModel::new_decoder_cache(const Tensor& encoder, int64_t rows, int64_t capacity) const {
  LUMEN_CHECK(capacity <= cfg.max_positions, "decoder cache of ", capacity,
              " positions exceeds max_position_embeddings ", cfg.max_positions);
  LUMEN_CHECK(rows >= 1, "decoder cache needs at least one row");
  BertDecoderCache c;
  c.rows = rows;
  c.capacity = capacity;
  c.slot.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) c.slot[static_cast<size_t>(i)] = i;
  for (const auto& layer : layers) {
    c.self_k.push_back(Tensor::zeros({rows * capacity, cfg.dim}));
    c.self_v.push_back(Tensor::zeros({rows * capacity, cfg.dim}));
    if (encoder.defined()) {
      LUMEN_CHECK(layer.has_cross, "this BLIP text model has no cross-attention layers");
      Tensor k, v;
      layer.crossattention.project_kv(encoder, &k, &v);  // [Le, D] x2
      c.cross_k.push_back(std::move(k));
      c.cross_v.push_back(std::move(v));
    }
  }
  return c;
}

Tensor BertTextModel::forward_cached(const int64_t* ids, int64_t B, int64_t L, BertDecoderCache& cache) const {
  const int64_t D = cfg.dim, past = cache.length;
  LUMEN_CHECK(B >= 1 && B <= cache.rows, "decoder cache has ", cache.rows, " rows, asked to run ", B);
  LUMEN_CHECK(past + L <= cache.capacity, "decoder cache holds ", cache.capacity, " positions, needs ", past + L);
  Tensor h = Tensor::zeros({B * L, D});  // [B*L, D] = word + position (past..past+L-1), LayerNorm
  ops::embedding(word_embeddings, ids, B * L, h.data<float>());
  for (int64_t b = 0; b < B; ++b)
    ops::add_inplace(h.data<float>() + b * L * D, position_embeddings.data<float>() + past * D, L * D);
  embed_norm.forward(h.data<float>(), B * L, h.data<float>());
  std::vector<float*> k_rows(static_cast<size_t>(B)), v_rows(static_cast<size_t>(B));
  for (size_t li = 0; li < layers.size(); ++li) {
    const BertLayer& layer = layers[li];
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = cache.slot[static_cast<size_t>(b)];
      k_rows[static_cast<size_t>(b)] = cache.self_k[li].data<float>() + s * cache.capacity * D;
      v_rows[static_cast<size_t>(b)] = cache.self_v[li].data<float>() + s * cache.capacity * D;
    }
    h = layer.attention.forward_self_cached(h, B, L, past, k_rows, v_rows);
    if (!cache.cross_k.empty())
      h = layer.crossattention.forward_shared_kv(h, B, L, cache.cross_k[li], cache.cross_v[li]);
    h = layer.ffn.forward(h);
  }
  cache.length = past + L;
  return h;
}

void BertLmHead::visit(const ParamScope& s, const BertConfig& c, const Tensor& word_embeddings) {
  act = c.act;
  transform.visit(s.sub("transform").sub("dense"), c.dim, c.dim);
  layer_norm.visit(s.sub("transform").sub("LayerNorm"), c.dim, c.eps);
  if (s.has("decoder.weight")) {
    decoder.visit(s.sub("decoder"), c.dim, c.vocab_size, false);
  } else {  // tied to the word embeddings (BLIP's save_pretrained stores them once)
    decoder.in = c.dim;
    decoder.out = c.vocab_size;
    decoder.weight = ops::make_linear_weight(word_embeddings, WeightFormat::F32);
  }
  s("bias", {c.vocab_size}, Init::Bias, &decoder.bias);
}

Tensor BertLmHead::forward(const float* hidden, int64_t rows) const {
  Tensor h = Tensor::zeros({rows, transform.out});
  transform.forward(hidden, rows, h.data<float>());
  apply_activation(act, h.data<float>(), h.numel());
  layer_norm.forward(h.data<float>(), rows, h.data<float>());
  Tensor logits = Tensor::zeros({rows, decoder.out});
  decoder.forward(h.data<float>(), rows, logits.data<float>());
  return logits;
}

}  // namespace lumen

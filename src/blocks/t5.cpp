#include "blocks/t5.h"

#include <cmath>
#include <cstring>

namespace lumen {

T5Config T5Config::from_hf(const JsonView& v) {
  T5Config c;
  c.vocab_size = v.get_int("vocab_size");
  c.dim = v.get_int("d_model");
  c.d_kv = v.get_int("d_kv", 64);
  c.d_ff = v.get_int("d_ff");
  c.heads = v.get_int("num_heads");
  c.encoder_layers = v.get_int("num_layers");
  c.decoder_layers = v.get_int("num_decoder_layers", c.encoder_layers);
  c.num_buckets = v.get_int("relative_attention_num_buckets", 32);
  c.max_distance = v.get_int("relative_attention_max_distance", 128);
  c.eps = static_cast<float>(v.get_double("layer_norm_epsilon", 1e-6));
  c.decoder_start_token_id = v.get_int("decoder_start_token_id", 0);
  // feed_forward_proj: "relu", "gated-gelu", "gated-silu", ...; dense_act_fn names the activation.
  const std::string ff = v.get_string("feed_forward_proj", "relu");
  c.gated = ff.rfind("gated-", 0) == 0;
  std::string act = v.get_string("dense_act_fn", c.gated ? ff.substr(6) : ff);
  if (act == "gelu" && c.gated) act = "gelu_new";  // T5Config maps gated-gelu to gelu_new
  c.act = parse_activation(act, v.field("dense_act_fn"));
  c.scale_decoder_outputs = v.has("scale_decoder_outputs") ? v.get_bool("scale_decoder_outputs")
                                                           : v.get_bool("tie_word_embeddings", true);
  LUMEN_CHECK(c.heads > 0 && c.d_kv > 0 && c.dim > 0, v.where(), ": d_model, d_kv, num_heads must be positive");
  return c;
}

int64_t t5_relative_position_bucket(int64_t rp, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  if (bidirectional) {
    num_buckets /= 2;
    if (rp > 0) bucket += num_buckets;
    rp = rp < 0 ? -rp : rp;
  } else {
    rp = rp < 0 ? -rp : 0;  // -min(rp, 0)
  }
  const int64_t max_exact = num_buckets / 2;
  if (rp < max_exact) return bucket + rp;
  // float32 as torch computes it, truncated toward zero.
  const float large = std::log(static_cast<float>(rp) / static_cast<float>(max_exact)) /
                      static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact))) *
                      static_cast<float>(num_buckets - max_exact);
  const int64_t v = std::min<int64_t>(max_exact + static_cast<int64_t>(large), num_buckets - 1);
  return bucket + v;
}

void T5Attention::visit(const ParamScope& s, const T5Config& c, bool has_bias) {
  q.visit(s.sub("q"), c.dim, c.inner(), false);
  k.visit(s.sub("k"), c.dim, c.inner(), false);
  v.visit(s.sub("v"), c.dim, c.inner(), false);
  o.visit(s.sub("o"), c.inner(), c.dim, false);
  if (has_bias) s("relative_attention_bias.weight", {c.num_buckets, c.heads}, Init::Matrix, &relative_attention_bias);
}

namespace {

void visit_ff(const ParamScope& s, const T5Config& c, T5Block& b) {
  ParamScope d = s.sub("DenseReluDense");
  if (c.gated) {
    b.wi_0.visit(d.sub("wi_0"), c.dim, c.d_ff, false);
    b.wi_1.visit(d.sub("wi_1"), c.dim, c.d_ff, false);
  } else {
    b.wi_0.visit(d.sub("wi"), c.dim, c.d_ff, false);
  }
  b.wo.visit(d.sub("wo"), c.d_ff, c.dim, false);
  b.ff_norm.visit(s.sub("layer_norm"), c.dim, c.eps);
}

// Position bias [heads, Lq, Lk] for queries at q0.. and keys at 0..Lk-1.
std::vector<float> position_bias(const T5Attention& first, const T5Config& c, int64_t q0, int64_t Lq, int64_t Lk,
                                 bool bidirectional) {
  const int64_t H = c.heads;
  std::vector<float> bias(static_cast<size_t>(H * Lq * Lk));
  const float* table = first.relative_attention_bias.data<float>();  // [buckets, H]
  for (int64_t i = 0; i < Lq; ++i)
    for (int64_t j = 0; j < Lk; ++j) {
      const int64_t b = t5_relative_position_bucket(j - (q0 + i), bidirectional, c.num_buckets, c.max_distance);
      for (int64_t h = 0; h < H; ++h) bias[static_cast<size_t>((h * Lq + i) * Lk + j)] = table[b * H + h];
    }
  return bias;
}

// Unscaled multi-head attention, one head at a time so each gets its own additive bias.
// q [Lq, inner], k/v [Lk, inner] (row strides inner) -> ctx [Lq, inner].
void t5_attend(const float* q, const float* k, const float* v, int64_t Lq, int64_t Lk, const T5Config& c,
               const float* bias, bool causal, int64_t causal_offset, float* ctx) {
  const int64_t inner = c.inner();
  for (int64_t h = 0; h < c.heads; ++h) {
    AttentionMask mask;
    mask.causal = causal;
    mask.causal_offset = causal_offset;
    mask.additive = bias ? bias + h * Lq * Lk : nullptr;
    ops::attention(q + h * c.d_kv, inner, k + h * c.d_kv, inner, v + h * c.d_kv, inner, Lq, Lk, 1, c.d_kv, 1.f, mask,
                   ctx + h * c.d_kv, inner);
  }
}

Tensor feed_forward(const T5Block& b, const T5Config& c, const Tensor& h) {
  const int64_t L = h.dim(0);
  Tensor x = Tensor::zeros(h.shape());
  b.ff_norm.forward(h.data<float>(), L, x.data<float>());
  Tensor u = b.wi_0.forward(x);  // [L, d_ff]
  apply_activation(c.act, u.data<float>(), u.numel());
  if (c.gated) {
    Tensor g = b.wi_1.forward(x);
    for (int64_t i = 0; i < u.numel(); ++i) u.data<float>()[i] *= g.data<float>()[i];
  }
  return b.wo.forward(u);
}

}  // namespace

void T5Model::visit(const ParamScope& s, const T5Config& c) {
  cfg = c;
  s("shared.weight", {c.vocab_size, c.dim}, Init::Matrix, &shared);
  encoder.resize(static_cast<size_t>(c.encoder_layers));
  for (int64_t i = 0; i < c.encoder_layers; ++i) {
    ParamScope b = s.sub("encoder.block." + std::to_string(i));
    T5Block& blk = encoder[static_cast<size_t>(i)];
    blk.self_attn.visit(b.sub("layer.0.SelfAttention"), c, i == 0);
    blk.self_norm.visit(b.sub("layer.0.layer_norm"), c.dim, c.eps);
    visit_ff(b.sub("layer.1"), c, blk);
  }
  encoder_norm.visit(s.sub("encoder.final_layer_norm"), c.dim, c.eps);
  decoder.resize(static_cast<size_t>(c.decoder_layers));
  for (int64_t i = 0; i < c.decoder_layers; ++i) {
    ParamScope b = s.sub("decoder.block." + std::to_string(i));
    T5Block& blk = decoder[static_cast<size_t>(i)];
    blk.self_attn.visit(b.sub("layer.0.SelfAttention"), c, i == 0);
    blk.self_norm.visit(b.sub("layer.0.layer_norm"), c.dim, c.eps);
    blk.cross_attn.visit(b.sub("layer.1.EncDecAttention"), c, false);
    blk.cross_norm.visit(b.sub("layer.1.layer_norm"), c.dim, c.eps);
    visit_ff(b.sub("layer.2"), c, blk);
  }
  decoder_norm.visit(s.sub("decoder.final_layer_norm"), c.dim, c.eps);
  if (s.has("lm_head.weight")) {
    lm_head.visit(s.sub("lm_head"), c.dim, c.vocab_size, false);
  } else {  // tied (transformers 5 always ties T5's head to `shared`)
    lm_head.in = c.dim;
    lm_head.out = c.vocab_size;
    lm_head.weight = ops::make_linear_weight(shared, WeightFormat::F32);
  }
}

Tensor T5Model::embed(const int64_t* ids, int64_t n) const {
  Tensor e = Tensor::zeros({n, cfg.dim});
  ops::embedding(shared, ids, n, e.data<float>());
  return e;
}

Tensor T5Model::encode(const Tensor& embeds) const {
  const int64_t L = embeds.dim(0), D = cfg.dim, inner = cfg.inner();
  LUMEN_CHECK(embeds.ndim() == 2 && embeds.dim(1) == D, "T5 encoder expects embeddings [L, ", D, "], got ",
              embeds.describe());
  Tensor h = embeds.clone();
  const std::vector<float> bias = encoder.empty() ? std::vector<float>{}
                                                  : position_bias(encoder[0].self_attn, cfg, 0, L, L, true);
  Tensor x = Tensor::zeros({L, D}), ctx = Tensor::zeros({L, inner});
  for (const T5Block& b : encoder) {
    b.self_norm.forward(h.data<float>(), L, x.data<float>());
    Tensor q = b.self_attn.q.forward(x), k = b.self_attn.k.forward(x), v = b.self_attn.v.forward(x);
    t5_attend(q.data<float>(), k.data<float>(), v.data<float>(), L, L, cfg, bias.data(), false, 0, ctx.data<float>());
    Tensor a = b.self_attn.o.forward(ctx);
    ops::add_inplace(h.data<float>(), a.data<float>(), h.numel());
    Tensor f = feed_forward(b, cfg, h);
    ops::add_inplace(h.data<float>(), f.data<float>(), h.numel());
  }
  encoder_norm.forward(h.data<float>(), L, h.data<float>());
  return h;
}

T5DecoderCache T5Model::new_cache(const Tensor& encoder_out, int64_t capacity) const {
  T5DecoderCache c;
  c.capacity = capacity;
  c.encoder_length = encoder_out.dim(0);
  for (const T5Block& b : decoder) {
    c.k.push_back(Tensor::zeros({capacity, cfg.inner()}));
    c.v.push_back(Tensor::zeros({capacity, cfg.inner()}));
    c.cross_k.push_back(b.cross_attn.k.forward(encoder_out));
    c.cross_v.push_back(b.cross_attn.v.forward(encoder_out));
  }
  return c;
}

Tensor T5Model::decode(const int64_t* ids, int64_t n, T5DecoderCache& cache) const {
  const int64_t D = cfg.dim, inner = cfg.inner(), past = cache.length, Le = cache.encoder_length;
  LUMEN_CHECK(past + n <= cache.capacity, "T5 decoder cache holds ", cache.capacity, " positions, needs ", past + n);
  Tensor h = embed(ids, n);  // [n, D]
  const std::vector<float> bias = decoder.empty() ? std::vector<float>{}
                                                  : position_bias(decoder[0].self_attn, cfg, past, n, past + n, false);
  Tensor x = Tensor::zeros({n, D}), ctx = Tensor::zeros({n, inner});
  for (size_t li = 0; li < decoder.size(); ++li) {
    const T5Block& b = decoder[li];
    b.self_norm.forward(h.data<float>(), n, x.data<float>());
    Tensor q = b.self_attn.q.forward(x);
    b.self_attn.k.forward(x.data<float>(), n, cache.k[li].data<float>() + past * inner);
    b.self_attn.v.forward(x.data<float>(), n, cache.v[li].data<float>() + past * inner);
    t5_attend(q.data<float>(), cache.k[li].data<float>(), cache.v[li].data<float>(), n, past + n, cfg, bias.data(),
              true, past, ctx.data<float>());
    Tensor a = b.self_attn.o.forward(ctx);
    ops::add_inplace(h.data<float>(), a.data<float>(), h.numel());
    b.cross_norm.forward(h.data<float>(), n, x.data<float>());
    Tensor cq = b.cross_attn.q.forward(x);
    t5_attend(cq.data<float>(), cache.cross_k[li].data<float>(), cache.cross_v[li].data<float>(), n, Le, cfg, nullptr,
              false, 0, ctx.data<float>());
    Tensor ca = b.cross_attn.o.forward(ctx);
    ops::add_inplace(h.data<float>(), ca.data<float>(), h.numel());
    Tensor f = feed_forward(b, cfg, h);
    ops::add_inplace(h.data<float>(), f.data<float>(), h.numel());
  }
  cache.length = past + n;
  decoder_norm.forward(h.data<float>(), n, h.data<float>());
  if (cfg.scale_decoder_outputs) {
    const float s = 1.f / std::sqrt(static_cast<float>(D));
    for (int64_t i = 0; i < h.numel(); ++i) h.data<float>()[i] *= s;
  }
  Tensor logits = Tensor::zeros({n, cfg.vocab_size});
  lm_head.forward(h.data<float>(), n, logits.data<float>());
  return logits;
}

}  // namespace lumen

#include "blocks/opt.h"

#include <cmath>
#include <cstring>

namespace lumen {

OptConfig OptConfig::from_hf(const JsonView& v) {
  OptConfig c;
  c.vocab_size = v.get_int("vocab_size");
  c.dim = v.get_int("hidden_size");
  c.layers = v.get_int("num_hidden_layers");
  c.heads = v.get_int("num_attention_heads");
  c.ffn_dim = v.get_int("ffn_dim");
  c.max_positions = v.get_int("max_position_embeddings", 2048);
  c.word_embed_proj_dim = v.get_int("word_embed_proj_dim", c.dim);
  c.layer_norm_before = v.get_bool("do_layer_norm_before", true);
  c.final_layer_norm = c.layer_norm_before && !v.get_bool("_remove_final_layer_norm", false);
  c.bias = v.get_bool("enable_bias", true);
  c.tie_word_embeddings = v.get_bool("tie_word_embeddings", true);
  c.act = parse_activation(v.get_string("activation_function", "relu"), v.field("activation_function"));
  LUMEN_CHECK(v.get_bool("layer_norm_elementwise_affine", true), v.field("layer_norm_elementwise_affine"),
              ": LayerNorms without weights are not supported");
  LUMEN_CHECK(c.heads > 0 && c.dim % c.heads == 0, v.field("num_attention_heads"), ": ", c.heads,
              " does not divide hidden_size ", c.dim);
  return c;
}

void OptLayer::visit(const ParamScope& s, const OptConfig& c) {
  const int64_t D = c.dim;
  ParamScope a = s.sub("self_attn");
  q_proj.visit(a.sub("q_proj"), D, D, c.bias);
  k_proj.visit(a.sub("k_proj"), D, D, c.bias);
  v_proj.visit(a.sub("v_proj"), D, D, c.bias);
  out_proj.visit(a.sub("out_proj"), D, D, c.bias);
  self_attn_layer_norm.visit(s.sub("self_attn_layer_norm"), D, 1e-5f);
  fc1.visit(s.sub("fc1"), D, c.ffn_dim, c.bias);
  fc2.visit(s.sub("fc2"), c.ffn_dim, D, c.bias);
  final_layer_norm.visit(s.sub("final_layer_norm"), D, 1e-5f);
}

void OptDecoder::visit(const ParamScope& d, const ParamScope& head, const OptConfig& c) {
  cfg = c;
  const int64_t Dw = c.word_embed_proj_dim;
  d("embed_tokens.weight", {c.vocab_size, Dw}, Init::Matrix, &embed_tokens);
  d("embed_positions.weight", {c.max_positions + OptConfig::kPositionOffset, c.dim}, Init::Matrix, &embed_positions);
  if (Dw != c.dim) {
    project_in.visit(d.sub("project_in"), Dw, c.dim, false);
    project_out.visit(d.sub("project_out"), c.dim, Dw, false);
  }
  layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) layers[static_cast<size_t>(i)].visit(d.sub("layers." + std::to_string(i)), c);
  if (c.final_layer_norm) final_layer_norm.visit(d.sub("final_layer_norm"), c.dim, 1e-5f);
  if (c.tie_word_embeddings && !head.has("lm_head.weight")) {
    lm_head.in = Dw;
    lm_head.out = c.vocab_size;
    lm_head.weight = ops::make_linear_weight(embed_tokens, WeightFormat::F32);
  } else {
    lm_head.visit(head.sub("lm_head"), Dw, c.vocab_size, false);
  }
}

OptCache OptDecoder::new_cache(int64_t capacity) const {
  LUMEN_CHECK(capacity <= cfg.max_positions, "OPT context of ", capacity, " positions exceeds max_position_embeddings ",
              cfg.max_positions);
  OptCache c;
  c.capacity = capacity;
  for (size_t i = 0; i < layers.size(); ++i) {
    c.k.push_back(Tensor::zeros({capacity, cfg.dim}));
    c.v.push_back(Tensor::zeros({capacity, cfg.dim}));
  }
  return c;
}

Tensor OptDecoder::embed(const int64_t* ids, int64_t n) const {
  Tensor e = Tensor::zeros({n, cfg.word_embed_proj_dim});
  ops::embedding(embed_tokens, ids, n, e.data<float>());
  return e;
}

Tensor OptDecoder::forward(const Tensor& embeds, OptCache& cache) const {
  const int64_t L = embeds.dim(0), D = cfg.dim, past = cache.length, H = cfg.heads, hd = D / H;
  LUMEN_CHECK(past + L <= cache.capacity, "OPT cache holds ", cache.capacity, " positions, needs ", past + L);
  Tensor h = project_in.weight.empty() ? embeds.clone() : project_in.forward(embeds);  // [L, D]
  // Positions past .. past+L-1 (an all-ones attention mask), read at +2.
  ops::add_inplace(h.data<float>(), embed_positions.data<float>() + (past + OptConfig::kPositionOffset) * D, L * D);
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  for (size_t li = 0; li < layers.size(); ++li) {
    const OptLayer& l = layers[li];
    Tensor x = cfg.layer_norm_before ? l.self_attn_layer_norm.forward(h) : h;
    Tensor q = l.q_proj.forward(x);
    float* kc = cache.k[li].data<float>() + past * D;
    float* vc = cache.v[li].data<float>() + past * D;
    l.k_proj.forward(x.data<float>(), L, kc);
    l.v_proj.forward(x.data<float>(), L, vc);
    Tensor ctx = Tensor::zeros({L, D});
    AttentionMask mask;
    mask.causal = true;
    mask.causal_offset = past;
    ops::attention(q.data<float>(), D, cache.k[li].data<float>(), D, cache.v[li].data<float>(), D, L, past + L, H, hd,
                   scale, mask, ctx.data<float>(), D);
    Tensor a = l.out_proj.forward(ctx);
    ops::add_inplace(h.data<float>(), a.data<float>(), h.numel());
    if (!cfg.layer_norm_before) l.self_attn_layer_norm.forward(h.data<float>(), L, h.data<float>());
    Tensor f = cfg.layer_norm_before ? l.final_layer_norm.forward(h) : h;
    Tensor u = l.fc1.forward(f);
    apply_activation(cfg.act, u.data<float>(), u.numel());
    Tensor m = l.fc2.forward(u);
    ops::add_inplace(h.data<float>(), m.data<float>(), h.numel());
    if (!cfg.layer_norm_before) l.final_layer_norm.forward(h.data<float>(), L, h.data<float>());
  }
  cache.length = past + L;
  if (cfg.final_layer_norm) final_layer_norm.forward(h.data<float>(), L, h.data<float>());
  return project_out.weight.empty() ? h : project_out.forward(h);
}

Tensor OptDecoder::logits(const float* hidden, int64_t rows) const {
  Tensor out = Tensor::zeros({rows, cfg.vocab_size});
  lm_head.forward(hidden, rows, out.data<float>());
  return out;
}

}  // namespace lumen

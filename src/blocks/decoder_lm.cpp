#include "blocks/decoder_lm.h"

#include <cmath>
#include <cstring>

#include "core/threads.h"

namespace lumen {

RopeConfig RopeConfig::from_hf(const JsonView& t, int64_t max_positions) {
  RopeConfig r;
  r.original_max_positions = max_positions;
  // transformers >= 5 folds rope_theta into rope_parameters; older configs keep it at the top
  // with an optional rope_scaling object (null when unscaled).
  std::optional<JsonView> p;
  if (t.has("rope_parameters") && t.raw()["rope_parameters"].is_object()) p = t.child("rope_parameters");
  else if (t.has("rope_scaling") && t.raw()["rope_scaling"].is_object()) p = t.child("rope_scaling");
  r.theta = t.get_double("rope_theta", 10000.0);
  if (!p) return r;
  r.theta = p->get_double("rope_theta", r.theta);
  std::string type = p->get_string("rope_type", p->get_string("type", "default"));
  if (type == "default") return r;
  r.factor = p->get_double("factor");
  LUMEN_CHECK(r.factor > 0, p->field("factor"), ": must be positive");
  if (type == "linear") {
    r.kind = Kind::Linear;
  } else if (type == "llama3") {
    r.kind = Kind::Llama3;
    r.low_freq_factor = p->get_double("low_freq_factor");
    r.high_freq_factor = p->get_double("high_freq_factor");
    r.original_max_positions = p->get_int("original_max_position_embeddings");
    LUMEN_CHECK(r.high_freq_factor > r.low_freq_factor, p->where(), ": high_freq_factor must exceed low_freq_factor");
  } else {
    fail(p->field("rope_type"), ": rope scaling '", type, "' is not supported (lumen knows default, linear, llama3)");
  }
  return r;
}

DecoderLmConfig DecoderLmConfig::from_hf(const JsonView& t, bool tie_default) {
  DecoderLmConfig c;
  c.model_type = t.get_string("model_type", "llama");
  c.vocab_size = t.get_int("vocab_size");
  c.dim = t.get_int("hidden_size");
  c.layers = t.get_int("num_hidden_layers");
  c.heads = t.get_int("num_attention_heads");
  c.kv_heads = t.has("num_key_value_heads") && !t.raw()["num_key_value_heads"].is_null()
                   ? t.get_int("num_key_value_heads")
                   : c.heads;
  c.mlp_dim = t.get_int("intermediate_size");
  LUMEN_CHECK(c.vocab_size > 0 && c.dim > 0 && c.layers >= 0 && c.heads > 0 && c.kv_heads > 0 && c.mlp_dim > 0,
              t.where(), ": vocab_size, hidden_size, num_attention_heads, num_key_value_heads and intermediate_size "
              "must be positive");
  LUMEN_CHECK(c.heads % c.kv_heads == 0, t.where(), ": num_attention_heads ", c.heads,
              " is not a multiple of num_key_value_heads ", c.kv_heads);
  c.head_dim = t.has("head_dim") && !t.raw()["head_dim"].is_null() ? t.get_int("head_dim") : c.dim / c.heads;
  LUMEN_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, t.field("head_dim"), ": rotary attention needs an even head_dim, got ",
              c.head_dim);
  c.max_positions = t.get_int("max_position_embeddings", 2048);
  if (t.has("sliding_window") && !t.raw()["sliding_window"].is_null()) c.sliding_window = t.get_int("sliding_window");
  c.rms_eps = static_cast<float>(t.get_double("rms_norm_eps", 1e-6));
  c.act = parse_activation(t.get_string("hidden_act", "silu"), t.field("hidden_act"));
  c.attention_bias = t.get_bool("attention_bias", false);
  c.mlp_bias = t.get_bool("mlp_bias", false);
  c.tie_word_embeddings = t.get_bool("tie_word_embeddings", tie_default);
  c.rope = RopeConfig::from_hf(t, c.max_positions);
  return c;
}

void RmsNorm::visit(const ParamScope& s, int64_t d, float epsilon) {
  dim = d;
  eps = epsilon;
  s("weight", {d}, Init::NormWeight, &weight);
}

void RmsNorm::forward(const float* x, int64_t rows, float* y) const {
  const float* w = weight.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    // LlamaRMSNorm: variance in f32, then weight * (x * rsqrt(var + eps)).
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = 1.f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

namespace {

// inv_freq[i] = theta^(-2i/d), adjusted by the scaling kind (modeling_rope_utils.py).
std::vector<float> rope_inv_freq(const RopeConfig& r, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    f[static_cast<size_t>(i)] = 1.f / std::pow(static_cast<float>(r.theta), expo);
  }
  if (r.kind == RopeConfig::Kind::Linear) {
    for (float& x : f) x = static_cast<float>(x / r.factor);
  } else if (r.kind == RopeConfig::Kind::Llama3) {
    // _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
    // the band between interpolated smoothly.
    const double old_len = static_cast<double>(r.original_max_positions);
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    for (float& x : f) {
      const double wavelen = 2 * M_PI / x;
      double scaled = wavelen > low_wavelen ? x / r.factor : x;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const double smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        scaled = (1 - smooth) * scaled / r.factor + smooth * scaled;
      }
      x = static_cast<float>(scaled);
    }
  }
  return f;
}

// Rotates each head of rows [L, heads * head_dim] at positions pos0.. (rotate_half layout:
// element i pairs with i + head_dim/2).
void apply_rope(const RotaryTable& t, float* x, int64_t L, int64_t stride, int64_t heads, int64_t head_dim,
                int64_t pos0) {
  const int64_t half = t.half;
  for (int64_t l = 0; l < L; ++l) {
    const float* c = t.cos.data() + (pos0 + l) * half;
    const float* s = t.sin.data() + (pos0 + l) * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + l * stride + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace

void DecoderLayer::visit(const ParamScope& s, const DecoderLmConfig& c) {
  const int64_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  input_layernorm.visit(s.sub("input_layernorm"), c.dim, c.rms_eps);
  ParamScope a = s.sub("self_attn");
  q_proj.visit(a.sub("q_proj"), c.dim, q_dim, c.attention_bias);
  k_proj.visit(a.sub("k_proj"), c.dim, kv_dim, c.attention_bias);
  v_proj.visit(a.sub("v_proj"), c.dim, kv_dim, c.attention_bias);
  o_proj.visit(a.sub("o_proj"), q_dim, c.dim, c.attention_bias);
  post_attention_layernorm.visit(s.sub("post_attention_layernorm"), c.dim, c.rms_eps);
  ParamScope m = s.sub("mlp");
  gate_proj.visit(m.sub("gate_proj"), c.dim, c.mlp_dim, c.mlp_bias);
  up_proj.visit(m.sub("up_proj"), c.dim, c.mlp_dim, c.mlp_bias);
  down_proj.visit(m.sub("down_proj"), c.mlp_dim, c.dim, c.mlp_bias);
}

void DecoderLm::visit(const ParamScope& model, const ParamScope& head, const DecoderLmConfig& c) {
  cfg = c;
  model("embed_tokens.weight", {c.vocab_size, c.dim}, Init::Matrix, &embed_tokens);
  layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i) layers[static_cast<size_t>(i)].visit(model.sub("layers." + std::to_string(i)), c);
  norm.visit(model.sub("norm"), c.dim, c.rms_eps);
  if (c.tie_word_embeddings) {
    lm_head.in = c.dim;
    lm_head.out = c.vocab_size;
    lm_head.weight = ops::make_linear_weight(embed_tokens, WeightFormat::F32);
  } else {
    lm_head.visit(head.sub("lm_head"), c.dim, c.vocab_size, false);
  }
  // Rotary tables for every position the model accepts.
  const std::vector<float> inv = rope_inv_freq(c.rope, c.head_dim);
  rope.half = c.head_dim / 2;
  rope.cos.resize(static_cast<size_t>(c.max_positions * rope.half));
  rope.sin.resize(rope.cos.size());
  for (int64_t p = 0; p < c.max_positions; ++p)
    for (int64_t i = 0; i < rope.half; ++i) {
      // HF computes the angle as an f32 product and cos/sin in f32.
      const float angle = static_cast<float>(p) * inv[static_cast<size_t>(i)];
      rope.cos[static_cast<size_t>(p * rope.half + i)] = std::cos(angle);
      rope.sin[static_cast<size_t>(p * rope.half + i)] = std::sin(angle);
    }
}

KvCache DecoderLm::new_cache(int64_t capacity) const {
  LUMEN_CHECK(capacity > 0 && capacity <= cfg.max_positions, "context of ", capacity,
              " tokens is more than the model's max_position_embeddings (", cfg.max_positions, ")");
  KvCache c;
  c.capacity = capacity;
  c.kv_dim = cfg.kv_heads * cfg.head_dim;
  for (int64_t i = 0; i < cfg.layers; ++i) {
    c.k.push_back(Tensor::zeros({capacity, c.kv_dim}));
    c.v.push_back(Tensor::zeros({capacity, c.kv_dim}));
  }
  return c;
}

Tensor DecoderLm::embed(const int64_t* ids, int64_t n) const {
  Tensor out = Tensor::zeros({n, cfg.dim});
  ops::embedding(embed_tokens, ids, n, out.data<float>());
  return out;
}

Tensor DecoderLm::forward(const Tensor& embeds, KvCache& cache) const {
  LUMEN_CHECK(embeds.ndim() == 2, "decoder expects embeddings [L, ", cfg.dim, "], got ", embeds.describe());
  return forward_batch(embeds, {{&cache, embeds.dim(0)}});
}

Tensor DecoderLm::forward_batch(const Tensor& embeds, const std::vector<SequenceChunk>& chunks) const {
  LUMEN_CHECK(embeds.ndim() == 2 && embeds.dim(1) == cfg.dim, "decoder expects embeddings [L, ", cfg.dim, "], got ",
              embeds.describe());
  const int64_t L = embeds.dim(0), D = cfg.dim, hd = cfg.head_dim;
  const int64_t q_dim = cfg.heads * hd, kv_dim = cfg.kv_heads * hd;
  int64_t total = 0;
  for (const auto& c : chunks) {
    LUMEN_CHECK(c.cache && c.rows >= 0, "decoder batch: a chunk without a cache");
    LUMEN_CHECK(c.cache->kv_dim == kv_dim && c.cache->k.size() == layers.size(),
                "decoder batch: a KV cache made for another model");
    LUMEN_CHECK(c.cache->length + c.rows <= c.cache->capacity, "context overflow: ", c.cache->length + c.rows,
                " tokens do not fit the context of ", c.cache->capacity);
    total += c.rows;
  }
  LUMEN_CHECK(total == L, "decoder batch: chunks cover ", total, " rows of ", L);
  Tensor h = embeds.clone();  // [L, D] residual stream
  Tensor x = Tensor::zeros({L, D});
  Tensor q = Tensor::zeros({L, q_dim}), k = Tensor::zeros({L, kv_dim}), v = Tensor::zeros({L, kv_dim});
  Tensor ctx = Tensor::zeros({L, q_dim}), o = Tensor::zeros({L, D});
  Tensor gate = Tensor::zeros({L, cfg.mlp_dim}), up = Tensor::zeros({L, cfg.mlp_dim});
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const int64_t group = cfg.heads / cfg.kv_heads;
  for (size_t li = 0; li < layers.size(); ++li) {
    const DecoderLayer& layer = layers[li];
    // Projections run on all rows of all sequences at once (one GEMM each): batching decode
    // steps of several sequences reads each weight once for all of them.
    layer.input_layernorm.forward(h.data<float>(), L, x.data<float>());
    layer.q_proj.forward(x.data<float>(), L, q.data<float>());
    layer.k_proj.forward(x.data<float>(), L, k.data<float>());
    layer.v_proj.forward(x.data<float>(), L, v.data<float>());
    // Attention per sequence: rotate its queries and new keys at its positions, append to its
    // cache, attend over the cache.
    int64_t r0 = 0;
    for (const auto& c : chunks) {
      const int64_t n = c.rows, pos0 = c.cache->length;
      if (n == 0) continue;
      float* kc = c.cache->k[li].data<float>();
      float* vc = c.cache->v[li].data<float>();
      std::memcpy(kc + pos0 * kv_dim, k.data<float>() + r0 * kv_dim, static_cast<size_t>(n * kv_dim) * sizeof(float));
      std::memcpy(vc + pos0 * kv_dim, v.data<float>() + r0 * kv_dim, static_cast<size_t>(n * kv_dim) * sizeof(float));
      float* qc = q.data<float>() + r0 * q_dim;
      apply_rope(rope, qc, n, q_dim, cfg.heads, hd, pos0);
      apply_rope(rope, kc + pos0 * kv_dim, n, kv_dim, cfg.kv_heads, hd, pos0);
      AttentionMask mask;
      mask.causal = true;
      mask.causal_offset = pos0;  // query i is position pos0 + i
      mask.window = cfg.sliding_window;
      float* out = ctx.data<float>() + r0 * q_dim;
      if (group == 1) {
        ops::attention(qc, q_dim, kc, kv_dim, vc, kv_dim, n, pos0 + n, cfg.heads, hd, scale, mask, out, q_dim);
      } else {
        // Grouped-query attention: query head h reads KV head h / group (transformers' repeat_kv).
        for (int64_t hh = 0; hh < cfg.heads; ++hh)
          ops::attention(qc + hh * hd, q_dim, kc + (hh / group) * hd, kv_dim, vc + (hh / group) * hd, kv_dim, n,
                         pos0 + n, 1, hd, scale, mask, out + hh * hd, q_dim);
      }
      r0 += n;
    }
    layer.o_proj.forward(ctx.data<float>(), L, o.data<float>());
    ops::add_inplace(h.data<float>(), o.data<float>(), L * D);
    // MLP: down(act(gate(x)) * up(x)).
    layer.post_attention_layernorm.forward(h.data<float>(), L, x.data<float>());
    layer.gate_proj.forward(x.data<float>(), L, gate.data<float>());
    layer.up_proj.forward(x.data<float>(), L, up.data<float>());
    apply_activation(cfg.act, gate.data<float>(), gate.numel());
    float* g = gate.data<float>();
    const float* u = up.data<float>();
    for (int64_t i = 0; i < gate.numel(); ++i) g[i] *= u[i];
    layer.down_proj.forward(gate.data<float>(), L, o.data<float>());
    ops::add_inplace(h.data<float>(), o.data<float>(), L * D);
  }
  for (const auto& c : chunks) c.cache->length += c.rows;
  norm.forward(h.data<float>(), L, h.data<float>());
  return h;
}

Tensor DecoderLm::logits(const float* hidden, int64_t rows) const {
  Tensor out = Tensor::zeros({rows, cfg.vocab_size});
  lm_head.forward(hidden, rows, out.data<float>());
  return out;
}

}  // namespace lumen

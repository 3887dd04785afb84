#include "blocks/layers.h"

#include <cmath>
#include <cstring>

namespace lumen {

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "quick_gelu") return Activation::QuickGelu;
  if (name == "gelu") return Activation::GeluErf;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "relu") return Activation::Relu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  fail(where, ": unsupported activation '", name,
       "' (lumen knows quick_gelu, gelu, gelu_pytorch_tanh, gelu_new, gelu_fast, relu, silu)");
}

void apply_activation(Activation act, float* x, int64_t n) {
  switch (act) {
    case Activation::QuickGelu: ops::quick_gelu(x, n); return;
    case Activation::GeluErf: ops::gelu_erf(x, n); return;
    case Activation::GeluTanh: ops::gelu_tanh(x, n); return;
    case Activation::Relu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 0.f ? x[i] : 0.f;
      return;
    case Activation::Silu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.f + std::exp(-x[i]));
      return;
  }
}

void Linear::visit(const ParamScope& s, int64_t in_features, int64_t out_features, bool has_bias) {
  in = in_features;
  out = out_features;
  s.linear("weight", {out, in}, Init::Matrix, &weight);
  if (has_bias) s("bias", {out}, Init::Bias, &bias);
}

void Linear::forward(const float* x, int64_t M, float* y) const {
  ops::linear(x, M, weight, bias.defined() ? bias.data<float>() : nullptr, y);
}

Tensor Linear::forward(const Tensor& x) const {
  LUMEN_CHECK(x.dim(-1) == in, "linear layer expects ", in, " input features, got ", x.describe());
  Shape s = x.shape();
  s.back() = out;
  Tensor y = Tensor::zeros(s);
  forward(x.data<float>(), x.numel() / in, y.data<float>());
  return y;
}

void LayerNorm::visit(const ParamScope& s, int64_t d, float epsilon) {
  dim = d;
  eps = epsilon;
  s("weight", {d}, Init::NormWeight, &weight);
  s("bias", {d}, Init::NormBias, &bias);
}

void LayerNorm::forward(const float* x, int64_t rows, float* y) const {
  ops::layer_norm(x, rows, dim, weight.data<float>(), bias.data<float>(), eps, y);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  LUMEN_CHECK(x.dim(-1) == dim, "layer norm expects ", dim, " features, got ", x.describe());
  Tensor y = Tensor::zeros(x.shape());
  forward(x.data<float>(), x.numel() / dim, y.data<float>());
  return y;
}

void Mlp::visit(const ParamScope& s, int64_t dim, int64_t hidden, Activation a) {
  act = a;
  fc1.visit(s.sub("fc1"), dim, hidden);
  fc2.visit(s.sub("fc2"), hidden, dim);
}

Tensor Mlp::forward(const Tensor& x) const {
  Tensor h = fc1.forward(x);  // [M, hidden]
  apply_activation(act, h.data<float>(), h.numel());
  return fc2.forward(h);  // [M, dim]
}

void SelfAttention::visit(const ParamScope& s, int64_t d, int64_t num_heads) {
  LUMEN_CHECK(num_heads > 0 && d % num_heads == 0, s.prefix(), ": hidden size ", d,
              " is not divisible by num_attention_heads ", num_heads);
  dim = d;
  heads = num_heads;
  head_dim = d / num_heads;
  q_proj.visit(s.sub("q_proj"), d, d);
  k_proj.visit(s.sub("k_proj"), d, d);
  v_proj.visit(s.sub("v_proj"), d, d);
  out_proj.visit(s.sub("out_proj"), d, d);
}

Tensor SelfAttention::forward(const Tensor& x, int64_t B, int64_t L, bool causal, const int64_t* key_keep) const {
  Tensor q = q_proj.forward(x), k = k_proj.forward(x), v = v_proj.forward(x);  // [B*L, D] each
  Tensor ctx = Tensor::zeros({B * L, dim});
  const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  for (int64_t b = 0; b < B; ++b) {
    AttentionMask mask;
    mask.causal = causal;
    mask.key_keep = key_keep ? key_keep + b * L : nullptr;
    const int64_t off = b * L * dim;
    ops::attention(q.data<float>() + off, dim, k.data<float>() + off, dim, v.data<float>() + off, dim, L, L, heads,
                   head_dim, scale, mask, ctx.data<float>() + off, dim);
  }
  return out_proj.forward(ctx);
}

void EncoderLayer::visit(const ParamScope& s, int64_t dim, int64_t heads, int64_t mlp_dim, Activation act, float eps) {
  layer_norm1.visit(s.sub("layer_norm1"), dim, eps);
  self_attn.visit(s.sub("self_attn"), dim, heads);
  layer_norm2.visit(s.sub("layer_norm2"), dim, eps);
  mlp.visit(s.sub("mlp"), dim, mlp_dim, act);
}

void EncoderLayer::forward(Tensor& h, int64_t B, int64_t L, bool causal, const int64_t* key_keep) const {
  Tensor a = self_attn.forward(layer_norm1.forward(h), B, L, causal, key_keep);
  ops::add_inplace(h.data<float>(), a.data<float>(), h.numel());
  Tensor m = mlp.forward(layer_norm2.forward(h));
  ops::add_inplace(h.data<float>(), m.data<float>(), h.numel());
}

TransformerEncoderConfig TransformerEncoderConfig::from_hf(const JsonView& v) {
  TransformerEncoderConfig c;
  c.dim = v.get_int("hidden_size");
  c.heads = v.get_int("num_attention_heads");
  c.mlp_dim = v.get_int("intermediate_size");
  c.layers = v.get_int("num_hidden_layers");
  c.act = parse_activation(v.get_string("hidden_act", "quick_gelu"), v.field("hidden_act"));
  c.eps = static_cast<float>(v.get_double("layer_norm_eps", 1e-5));
  LUMEN_CHECK(c.dim > 0 && c.layers >= 0 && c.heads > 0, v.where(),
              ": hidden_size, num_hidden_layers and num_attention_heads must be positive");
  return c;
}

void TransformerEncoder::visit(const ParamScope& s, const TransformerEncoderConfig& c) {
  layers.resize(static_cast<size_t>(c.layers));
  for (int64_t i = 0; i < c.layers; ++i)
    layers[static_cast<size_t>(i)].visit(s.sub("layers." + std::to_string(i)), c.dim, c.heads, c.mlp_dim, c.act,
                                         c.eps);
}

void TransformerEncoder::forward(Tensor& h, int64_t B, int64_t L, bool causal, const int64_t* key_keep,
                                 int n_layers) const {
  size_t n = n_layers < 0 ? layers.size() : static_cast<size_t>(n_layers);
  for (size_t i = 0; i < n && i < layers.size(); ++i) layers[i].forward(h, B, L, causal, key_keep);
}

}  // namespace lumen

// Building blocks with checkpoint-named parameters: Linear, LayerNorm, MLP, multi-head
// self-attention and the pre-LN transformer encoder layer shared by CLIP, SigLIP and most ViTs.
// Activations are row-major [rows, features] f32 buffers; a "batch of sequences" is [B*L, D].
#pragma once
#include <string>
#include <vector>

#include "blocks/params.h"
#include "formats/json_config.h"
#include "kernels/ops.h"

namespace lumen {

enum class Activation { QuickGelu, GeluErf, GeluTanh, Relu, Silu };
// HF `hidden_act` strings: quick_gelu, gelu, gelu_pytorch_tanh, gelu_new, gelu_fast, relu, silu/swish.
Activation parse_activation(const std::string& name, const std::string& where);
void apply_activation(Activation act, float* x, int64_t n);

struct Linear {
  int64_t in = 0, out = 0;
  LinearWeight weight;  // [out, in], in the format the visitor chose (LoadOptions::linear)
  Tensor bias;          // [out] f32, or undefined
  void visit(const ParamScope& s, int64_t in_features, int64_t out_features, bool has_bias = true);
  // x [M, in] -> y [M, out]
  void forward(const float* x, int64_t M, float* y) const;
  Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out]
};

struct LayerNorm {
  int64_t dim = 0;
  float eps = 1e-5f;
  Tensor weight, bias;  // [dim]
  void visit(const ParamScope& s, int64_t d, float epsilon);
  void forward(const float* x, int64_t rows, float* y) const;
  Tensor forward(const Tensor& x) const;
};

// fc1 -> act -> fc2 (CLIPMLP / SiglipMLP).
struct Mlp {
  Linear fc1, fc2;
  Activation act = Activation::GeluErf;
  void visit(const ParamScope& s, int64_t dim, int64_t hidden, Activation a);
  Tensor forward(const Tensor& x) const;  // [M, dim] -> [M, dim]
};

// q/k/v/out projections with heads; attention runs per sequence of a [B*L, D] batch.
struct SelfAttention {
  int64_t dim = 0, heads = 0, head_dim = 0;
  Linear q_proj, k_proj, v_proj, out_proj;
  void visit(const ParamScope& s, int64_t d, int64_t num_heads);
  // x [B*L, D]; key_keep [B, L] (nullable, 1 = real token); returns [B*L, D].
  Tensor forward(const Tensor& x, int64_t B, int64_t L, bool causal, const int64_t* key_keep) const;
};

// Pre-LN layer: h += attn(ln1(h)); h += mlp(ln2(h)). Names follow CLIPEncoderLayer.
struct EncoderLayer {
  LayerNorm layer_norm1, layer_norm2;
  SelfAttention self_attn;
  Mlp mlp;
  void visit(const ParamScope& s, int64_t dim, int64_t heads, int64_t mlp_dim, Activation act, float eps);
  void forward(Tensor& h, int64_t B, int64_t L, bool causal, const int64_t* key_keep) const;
};

struct TransformerEncoderConfig {
  int64_t dim = 0, heads = 0, mlp_dim = 0, layers = 0;
  Activation act = Activation::GeluErf;
  float eps = 1e-5f;
  // The encoder fields every HF vision/text config shares: hidden_size, num_attention_heads,
  // intermediate_size, num_hidden_layers, hidden_act, layer_norm_eps.
  static TransformerEncoderConfig from_hf(const JsonView& config);
};

// `layers.{i}` under the scope (CLIPEncoder / SiglipEncoder).
struct TransformerEncoder {
  std::vector<EncoderLayer> layers;
  void visit(const ParamScope& s, const TransformerEncoderConfig& c);
  // Runs the first `n_layers` layers (all when < 0); h [B*L, D] updated in place.
  void forward(Tensor& h, int64_t B, int64_t L, bool causal, const int64_t* key_keep, int n_layers = -1) const;
};

}  // namespace lumen

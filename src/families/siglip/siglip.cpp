// SigLIP (Zhai et al. 2023): CLIP-like towers trained with a pairwise sigmoid loss. The vision
// tower has no class token and pools with a learned probe (multi-head attention pooling); the
// text tower is bidirectional and pools its LAST position through a linear head. Scores are
// independent sigmoids: logits = exp(logit_scale) * cos + logit_bias.
// Reference: transformers/models/siglip/modeling_siglip.py (SiglipModel.forward,
// SiglipMultiheadAttentionPoolingHead, SiglipTextTransformer).
#include <cmath>
#include <cstring>

#include "blocks/text_transformer.h"
#include "blocks/vit.h"
#include "families/family.h"
#include "families/family_util.h"
#include "formats/json_config.h"

namespace lumen {
namespace {

// SiglipMultiheadAttentionPoolingHead: probe attends over all patches (nn.MultiheadAttention
// with a packed in_proj), then LayerNorm + MLP with a residual. Output: [B, D].
struct AttentionPoolingHead {
  int64_t dim = 0, heads = 0;
  Tensor probe;          // [1, 1, D]
  Tensor in_proj_weight;  // [3D, D]: q, k, v stacked
  Tensor in_proj_bias;    // [3D]
  Linear out_proj;
  LayerNorm layernorm;
  Mlp mlp;

  void visit(const ParamScope& s, const TransformerEncoderConfig& c) {
    dim = c.dim;
    heads = c.heads;
    s("probe", {1, 1, dim}, Init::Vector, &probe);
    ParamScope attn = s.sub("attention");
    attn("in_proj_weight", {3 * dim, dim}, Init::Matrix, &in_proj_weight);
    attn("in_proj_bias", {3 * dim}, Init::Bias, &in_proj_bias);
    out_proj.visit(attn.sub("out_proj"), dim, dim);
    layernorm.visit(s.sub("layernorm"), dim, c.eps);
    mlp.visit(s.sub("mlp"), dim, c.mlp_dim, c.act);
  }

  Tensor forward(const Tensor& h) const {  // h [B, T, D]
    const int64_t B = h.dim(0), T = h.dim(1), D = dim, hd = D / heads;
    const float* w = in_proj_weight.data<float>();
    const float* bias = in_proj_bias.data<float>();
    Tensor q = Tensor::zeros({1, D});  // the probe is shared by the batch
    ops::linear(probe.data<float>(), 1, D, w, D, bias, q.data<float>());
    Tensor k = Tensor::zeros({B * T, D}), v = Tensor::zeros({B * T, D});
    ops::linear(h.data<float>(), B * T, D, w + D * D, D, bias + D, k.data<float>());
    ops::linear(h.data<float>(), B * T, D, w + 2 * D * D, D, bias + 2 * D, v.data<float>());
    Tensor ctx = Tensor::zeros({B, D});
    for (int64_t b = 0; b < B; ++b)
      ops::attention(q.data<float>(), D, k.data<float>() + b * T * D, D, v.data<float>() + b * T * D, D, 1, T, heads,
                     hd, 1.f / std::sqrt(static_cast<float>(hd)), AttentionMask{}, ctx.data<float>() + b * D, D);
    Tensor x = out_proj.forward(ctx);         // [B, D]
    Tensor m = mlp.forward(layernorm.forward(x));
    ops::add_inplace(x.data<float>(), m.data<float>(), x.numel());
    return x;
  }
};

struct SiglipConfig {
  VitConfig vision;
  TextTransformerConfig text;
  int64_t projection_size = 0;
  int64_t pad_token_id = 1;
  bool vision_use_head = true;

  static SiglipConfig from_hf(const nlohmann::json& j, const std::string& path) {
    JsonView v(&j, path);
    SiglipConfig c;
    JsonView vc = v.child("vision_config");
    c.vision = VitConfig::from_hf(vc);
    c.vision.class_token = false;
    c.vision.patch_bias = true;
    c.vision.pre_layernorm = false;
    c.vision_use_head = vc.get_bool("vision_use_head", true);
    JsonView t = v.child("text_config");
    c.text = TextTransformerConfig::from_hf(t);
    c.text.causal = false;
    c.projection_size = t.get_int("projection_size", c.text.encoder.dim);
    c.pad_token_id = t.get_int("pad_token_id", 1);
    LUMEN_CHECK(c.vision_use_head, vc.field("vision_use_head"), ": SigLIP without a pooling head has no image embedding");
    return c;
  }
};

class SiglipModel : public DualEncoder {
 public:
  SiglipConfig cfg;
  VisionTransformer vision;
  AttentionPoolingHead vision_head;
  TextTransformer text;
  Linear text_head;
  Tensor logit_scale_param, logit_bias_param;  // [1] each

  void visit(ParamVisitor& v) {
    ParamScope root(v);
    ParamScope vm = root.sub("vision_model");
    vision.visit(vm, cfg.vision);
    vision_head.visit(vm.sub("head"), cfg.vision.encoder);
    ParamScope tm = root.sub("text_model");
    text.visit(tm, cfg.text);
    text_head.visit(tm.sub("head"), cfg.text.encoder.dim, cfg.projection_size);
    // SigLIP's initial values: log(10) and -10.
    root.scalar("logit_scale", {1}, std::log(10.f), &logit_scale_param);
    root.scalar("logit_bias", {1}, -10.f, &logit_bias_param);
  }

  std::string family() const override { return "siglip"; }

  // post_layernorm(encoder(...)) [B, N, D]
  Tensor vision_last(const Tensor& pixel_values) const {
    Tensor h = vision.forward(pixel_values);
    vision.post_layernorm.forward(h.data<float>(), h.numel() / h.dim(-1), h.data<float>());
    return h;
  }

  // head(final_layer_norm(h)[:, -1]) [B, projection_size]
  Tensor text_pooled(const Tensor& last) const {
    const int64_t B = last.dim(0), L = last.dim(1), D = last.dim(2);
    Tensor lastpos = Tensor::zeros({B, D});
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(lastpos.data<float>() + b * D, last.data<float>() + (b * L + L - 1) * D,
                  static_cast<size_t>(D) * sizeof(float));
    return text_head.forward(lastpos);
  }

  Tensor image_embeds(const Tensor& pixel_values) const override {
    Tensor e = vision_head.forward(vision_last(pixel_values));
    ops::l2_normalize_rows(e.data<float>(), e.dim(0), e.dim(1));
    return e;
  }

  Tensor text_embeds(const Tensor& ids, const Tensor& mask) const override {
    Tensor e = text_pooled(text.forward(ids, mask));
    ops::l2_normalize_rows(e.data<float>(), e.dim(0), e.dim(1));
    return e;
  }

  int64_t text_pad_to() const override { return cfg.text.max_positions; }
  int64_t text_pad_id() const override { return cfg.pad_token_id; }
  bool text_uses_mask() const override { return false; }
  int64_t max_text_length() const override { return cfg.text.max_positions; }
  Scoring scoring() const override { return Scoring::Sigmoid; }
  float logit_scale() const override { return std::exp(logit_scale_param.data<float>()[0]); }
  float logit_bias() const override { return logit_bias_param.data<float>()[0]; }
  int64_t embedding_dim() const override { return cfg.projection_size; }

  TensorMap forward_all(const Tensor& pixel_values, const Tensor& ids, const Tensor& mask) const override {
    TensorMap out;
    Tensor v_last = vision_last(pixel_values);       // [B, N, D]
    Tensor v_pool = vision_head.forward(v_last);     // [B, D]
    Tensor t_last = text.forward(ids, mask);         // [B, L, Dt]
    Tensor t_pool = text_pooled(t_last);             // [B, P]
    out["vision_last_hidden_state"] = v_last;
    out["vision_pooler_output"] = v_pool;
    out["text_last_hidden_state"] = t_last;
    out["text_pooler_output"] = t_pool;
    add_contrastive_outputs(out, v_pool, t_pool, logit_scale(), logit_bias());
    return out;
  }
};

void make_tiny_siglip(const MakeTinyOptions& o) {
  struct Preset { int64_t d, l, h, m, patch, image; };
  Preset p{64, 2, 4, 128, 8, 32};
  if (o.arch == "base-patch16-224") p = {768, 12, 12, 3072, 16, 224};
  else LUMEN_CHECK(o.arch == "tiny", "siglip has no --arch '", o.arch, "' (tiny, base-patch16-224)");
  const int64_t vocab = o.vocab_size > 0 ? o.vocab_size : 32000;
  const int64_t pad = o.token_ids.value("pad", o.token_ids.value("eos", int64_t{1}));
  nlohmann::json text = {{"model_type", "siglip_text_model"}, {"hidden_size", p.d}, {"num_hidden_layers", p.l},
                         {"num_attention_heads", p.h}, {"intermediate_size", p.m},
                         {"hidden_act", "gelu_pytorch_tanh"}, {"layer_norm_eps", 1e-6},
                         {"max_position_embeddings", 64}, {"vocab_size", vocab}, {"projection_size", p.d},
                         {"pad_token_id", pad}, {"eos_token_id", o.token_ids.value("eos", pad)}};
  nlohmann::json vision = {{"model_type", "siglip_vision_model"}, {"hidden_size", p.d}, {"num_hidden_layers", p.l},
                           {"num_attention_heads", p.h}, {"intermediate_size", p.m},
                           {"hidden_act", "gelu_pytorch_tanh"}, {"layer_norm_eps", 1e-6}, {"image_size", p.image},
                           {"patch_size", p.patch}, {"num_channels", 3}};
  nlohmann::json cfg = {{"architectures", {"SiglipModel"}}, {"model_type", "siglip"}, {"text_config", text},
                        {"vision_config", vision},
                        {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
  SiglipModel m;
  m.cfg = SiglipConfig::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  nlohmann::json pre = {{"image_processor_type", "SiglipImageProcessor"}, {"do_resize", true},
                        {"size", {{"height", p.image}, {"width", p.image}}}, {"resample", 3}, {"do_rescale", true},
                        {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true}, {"image_mean", {0.5, 0.5, 0.5}},
                        {"image_std", {0.5, 0.5, 0.5}}, {"do_convert_rgb", true}};
  write_checkpoint(o.out_dir, cfg, pre, init.tensors());
}

}  // namespace

FamilySpec siglip_family() {
  FamilySpec f;
  f.name = "siglip";
  f.description = "SigLIP dual encoder (sigmoid loss, attention-pooled ViT): zero-shot classification, embeddings";
  f.model_types = {"siglip"};
  f.architectures = {"SiglipModel"};
  f.tiny_archs = {"tiny", "base-patch16-224"};
  f.load = load_checkpoint_model_with<SiglipModel>;
  f.run_fixture = [](const Model& m, const std::string& task, const TensorMap& in, const nlohmann::json&) {
    return dual_encoder_fixture(m, task, in);
  };
  f.make_tiny = make_tiny_siglip;
  return f;
}

}  // namespace lumen

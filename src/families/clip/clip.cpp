// CLIP (Radford et al. 2021): a class-token ViT and a causal text transformer, each projected
// into a shared space; logits = exp(logit_scale) * cosine similarity, softmax over labels.
// Reference: transformers/models/clip/modeling_clip.py (CLIPModel.forward).
#include <cmath>
#include <cstring>

#include "blocks/text_transformer.h"
#include "blocks/vit.h"
#include "families/family.h"
#include "families/family_util.h"
#include "formats/json_config.h"

namespace lumen {
namespace {

struct ClipConfig {
  VitConfig vision;
  TextTransformerConfig text;
  int64_t projection_dim = 512;
  float logit_scale_init = 2.6592f;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = 1;

  static ClipConfig from_hf(const nlohmann::json& j, const std::string& path) {
    JsonView v(&j, path);
    ClipConfig c;
    c.vision = VitConfig::from_hf(v.child("vision_config"));
    JsonView t = v.child("text_config");
    c.text = TextTransformerConfig::from_hf(t);
    c.text.causal = true;
    c.projection_dim = v.get_int("projection_dim", 512);
    c.logit_scale_init = static_cast<float>(v.get_double("logit_scale_init_value", 2.6592));
    c.eos_token_id = t.get_int("eos_token_id", 2);
    c.pad_token_id = t.get_int("pad_token_id", 1);
    return c;
  }
};

class ClipModel : public DualEncoder {
 public:
  ClipConfig cfg;
  VisionTransformer vision;
  TextTransformer text;
  Linear visual_projection, text_projection;
  Tensor logit_scale_param;  // scalar, log-space

  void visit(ParamVisitor& v) {
    ParamScope root(v);
    vision.visit(root.sub("vision_model"), cfg.vision);
    text.visit(root.sub("text_model"), cfg.text);
    visual_projection.visit(root.sub("visual_projection"), cfg.vision.encoder.dim, cfg.projection_dim, false);
    text_projection.visit(root.sub("text_projection"), cfg.text.encoder.dim, cfg.projection_dim, false);
    root.scalar("logit_scale", {}, cfg.logit_scale_init, &logit_scale_param);
  }

  std::string family() const override { return "clip"; }

  // post_layernorm(last_hidden_state[:, 0]) -> [B, Dv]
  Tensor vision_pooled(const Tensor& last_hidden) const {
    const int64_t B = last_hidden.dim(0), T = last_hidden.dim(1), D = last_hidden.dim(2);
    Tensor pooled = Tensor::zeros({B, D});
    for (int64_t b = 0; b < B; ++b)
      vision.post_layernorm.forward(last_hidden.data<float>() + b * T * D, 1, pooled.data<float>() + b * D);
    return pooled;
  }

  // The EOS position of each row: CLIPTextTransformer picks argmax(input_ids) when the config's
  // eos_token_id is the legacy 2, else the first position whose id equals eos_token_id (0 if none).
  std::vector<int64_t> pool_positions(const Tensor& ids) const {
    const int64_t B = ids.dim(0), L = ids.dim(1);
    std::vector<int64_t> pos(static_cast<size_t>(B), 0);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t* row = ids.data<int64_t>() + b * L;
      if (cfg.eos_token_id == 2) {
        for (int64_t i = 1; i < L; ++i)
          if (row[i] > row[pos[b]]) pos[b] = i;
      } else {
        for (int64_t i = 0; i < L; ++i)
          if (row[i] == cfg.eos_token_id) {
            pos[b] = i;
            break;
          }
      }
    }
    return pos;
  }

  Tensor text_pooled(const Tensor& ids, const Tensor& last_hidden) const {
    const int64_t B = last_hidden.dim(0), L = last_hidden.dim(1), D = last_hidden.dim(2);
    Tensor pooled = Tensor::zeros({B, D});
    auto pos = pool_positions(ids);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(pooled.data<float>() + b * D, last_hidden.data<float>() + (b * L + pos[b]) * D,
                  static_cast<size_t>(D) * sizeof(float));
    return pooled;
  }

  Tensor image_embeds(const Tensor& pixel_values) const override {
    Tensor e = visual_projection.forward(vision_pooled(vision.forward(pixel_values)));
    ops::l2_normalize_rows(e.data<float>(), e.dim(0), e.dim(1));
    return e;
  }

  Tensor text_embeds(const Tensor& ids, const Tensor& mask) const override {
    Tensor e = text_projection.forward(text_pooled(ids, text.forward(ids, mask)));
    ops::l2_normalize_rows(e.data<float>(), e.dim(0), e.dim(1));
    return e;
  }

  int64_t text_pad_to() const override { return 0; }
  int64_t text_pad_id() const override { return cfg.pad_token_id; }
  bool text_uses_mask() const override { return true; }
  int64_t max_text_length() const override { return cfg.text.max_positions; }
  Scoring scoring() const override { return Scoring::Softmax; }
  float logit_scale() const override { return std::exp(logit_scale_param.data<float>()[0]); }
  float logit_bias() const override { return 0.f; }
  int64_t embedding_dim() const override { return cfg.projection_dim; }

  TensorMap forward_all(const Tensor& pixel_values, const Tensor& ids, const Tensor& mask) const override {
    TensorMap out;
    Tensor v_last = vision.forward(pixel_values);  // [B, 1+N, Dv]
    Tensor v_pool = vision_pooled(v_last);          // [B, Dv]
    Tensor img = visual_projection.forward(v_pool);  // [B, P]
    Tensor t_last = text.forward(ids, mask);         // [B, L, Dt]
    Tensor t_pool = text_pooled(ids, t_last);        // [B, Dt]
    Tensor txt = text_projection.forward(t_pool);    // [B, P]
    // transformers 5 (the fixtures' reference) returns the *projected*, unnormalised features as
    // the towers' pooler_output (CLIPModel.get_image_features / get_text_features replace it);
    // the un-projected pooled states are kept under *_pooled for --dump-tensors.
    out["vision_last_hidden_state"] = v_last;
    out["vision_pooled"] = v_pool;
    out["vision_pooler_output"] = img;
    out["text_last_hidden_state"] = t_last;
    out["text_pooled"] = t_pool;
    out["text_pooler_output"] = txt;
    add_contrastive_outputs(out, img, txt, logit_scale(), 0.f);
    return out;
  }
};

nlohmann::json clip_tiny_config(const MakeTinyOptions& o) {
  // Presets: "tiny" for tests and demos; the benchmark architectures of OpenAI's releases.
  struct Preset { int64_t vd, vl, vh, vm, patch, image, td, tl, th, tm, proj; };
  Preset p{64, 2, 4, 128, 8, 32, 64, 2, 4, 128, 32};
  if (o.arch == "vit-b-32") p = {768, 12, 12, 3072, 32, 224, 512, 12, 8, 2048, 512};
  else if (o.arch == "vit-b-16") p = {768, 12, 12, 3072, 16, 224, 512, 12, 8, 2048, 512};
  else if (o.arch == "vit-l-14") p = {1024, 24, 16, 4096, 14, 224, 768, 12, 12, 3072, 768};
  else if (o.arch == "vit-l-14-336") p = {1024, 24, 16, 4096, 14, 336, 768, 12, 12, 3072, 768};
  else LUMEN_CHECK(o.arch == "tiny", "clip has no --arch '", o.arch, "' (tiny, vit-b-32, vit-b-16, vit-l-14, vit-l-14-336)");
  const int64_t vocab = o.vocab_size > 0 ? o.vocab_size : 49408;
  nlohmann::json text = {{"model_type", "clip_text_model"}, {"hidden_size", p.td}, {"num_hidden_layers", p.tl},
                         {"num_attention_heads", p.th}, {"intermediate_size", p.tm}, {"hidden_act", "quick_gelu"},
                         {"layer_norm_eps", 1e-5}, {"max_position_embeddings", 77}, {"vocab_size", vocab},
                         {"projection_dim", p.proj},
                         {"bos_token_id", o.token_ids.value("bos", vocab - 2)},
                         {"eos_token_id", o.token_ids.value("eos", vocab - 1)},
                         {"pad_token_id", o.token_ids.value("pad", o.token_ids.value("eos", vocab - 1))}};
  nlohmann::json vision = {{"model_type", "clip_vision_model"}, {"hidden_size", p.vd}, {"num_hidden_layers", p.vl},
                           {"num_attention_heads", p.vh}, {"intermediate_size", p.vm}, {"hidden_act", "quick_gelu"},
                           {"layer_norm_eps", 1e-5}, {"image_size", p.image}, {"patch_size", p.patch},
                           {"num_channels", 3}, {"projection_dim", p.proj}};
  return {{"architectures", {"CLIPModel"}}, {"model_type", "clip"}, {"projection_dim", p.proj},
          {"logit_scale_init_value", 2.6592}, {"text_config", text}, {"vision_config", vision},
          {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
}

void make_tiny_clip(const MakeTinyOptions& o) {
  nlohmann::json cfg = clip_tiny_config(o);
  ClipModel m;
  m.cfg = ClipConfig::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  const int64_t S = m.cfg.vision.image_size;
  nlohmann::json pre = clip_normalized_preprocessor(
      "CLIPImageProcessor",
      {{"size", {{"shortest_edge", S}}}, {"do_center_crop", true}, {"crop_size", {{"height", S}, {"width", S}}}});
  write_checkpoint(o.out_dir, cfg, pre, init.tensors());
}

}  // namespace

FamilySpec clip_family() {
  FamilySpec f;
  f.name = "clip";
  f.description = "CLIP dual encoder (OpenAI CLIP, OpenCLIP in HF layout): zero-shot classification, embeddings";
  f.model_types = {"clip"};
  f.architectures = {"CLIPModel"};
  f.tiny_archs = {"tiny", "vit-b-32", "vit-b-16", "vit-l-14", "vit-l-14-336"};
  f.load = load_checkpoint_model_with<ClipModel>;
  f.run_fixture = [](const Model& m, const std::string& task, const TensorMap& in, const nlohmann::json&) {
    return dual_encoder_fixture(m, task, in);
  };
  f.make_tiny = make_tiny_clip;
  return f;
}

}  // namespace lumen

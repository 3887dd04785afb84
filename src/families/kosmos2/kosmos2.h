// KOSMOS-2 (Peng et al. 2023): a CLIP-like vision tower, an image-to-text connector (dense +
// learned latent queries + cross-attention) and a Magneto-style text decoder that writes
// grounded text with <phrase>/<object>/<patch_index_XXXX> tokens.
// Reference: transformers/models/kosmos2/modeling_kosmos2.py (Kosmos2ForConditionalGeneration).
//
// The text decoder differs from the LLaMA line (blocks/decoder_lm.h) in every layer: LayerNorm
// (not RMSNorm) before attention and FFN, an extra LayerNorm inside attention (inner_attn_ln)
// and inside the FFN (ffn_layernorm), fc1/fc2 with GELU, biases everywhere, sinusoidal
// positions whose ids skip padding (M2M100 style, offset pad_token_id + 1), and token
// embeddings scaled by sqrt(embed_dim) -- image embeddings included. It lives here until a
// second family (KOSMOS-2.5) needs it.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "blocks/decoder_lm.h"
#include "blocks/layers.h"
#include "blocks/vit.h"
#include "families/family.h"
#include "runtime/generate.h"

namespace lumen {

struct Kosmos2TextConfig {
  int64_t vocab_size = 0, dim = 0, layers = 0, heads = 0, ffn_dim = 0, max_positions = 2048;
  float eps = 1e-5f;
  Activation act = Activation::GeluErf;
  bool scale_embedding = true;
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 1, bos_token_id = 0, eos_token_id = 2;
  // Kosmos2TextConfig: embed_dim, layers, attention_heads, ffn_dim, activation_function, ...
  static Kosmos2TextConfig from_hf(const JsonView& text_config, bool tie_default);
};

struct Kosmos2Config {
  VitConfig vision;
  Kosmos2TextConfig text;
  int64_t latent_query_num = 64;
  static Kosmos2Config from_hf(const nlohmann::json& j, const std::string& path);
};

// KosmosTextAttention (self- or cross-attention) with the optional inner LayerNorm.
struct Kosmos2Attention {
  int64_t dim = 0, heads = 0;
  Linear q_proj, k_proj, v_proj, out_proj;
  LayerNorm inner_attn_ln;  // text decoder only
  bool inner_ln = false;
  void visit(const ParamScope& s, int64_t d, int64_t num_heads, bool with_inner_ln, float eps);
};

struct Kosmos2TextLayer {
  LayerNorm self_attn_layer_norm, final_layer_norm, ffn_layernorm;
  Kosmos2Attention self_attn;
  Linear fc1, fc2;
  void visit(const ParamScope& s, const Kosmos2TextConfig& c);
};

// Kosmos2TextTransformer + the LM head of Kosmos2TextForCausalLM.
struct Kosmos2TextModel {
  Kosmos2TextConfig cfg;
  Tensor embed_tokens;  // [V, D]
  std::vector<Kosmos2TextLayer> layers;
  LayerNorm layer_norm;
  Linear lm_head;  // [V, D], packed from embed_tokens when tied

  void visit(const ParamScope& model, const ParamScope& head, const Kosmos2TextConfig& c);
  KvCache new_cache(int64_t capacity) const;
  // Unscaled token embeddings [n, D] (embed_tokens rows; checked against the vocabulary).
  Tensor embed(const int64_t* ids, int64_t n) const;
  // embeds [L, D] (unscaled, image rows already in place) of tokens `ids` continue `cache`:
  // scale, sinusoidal positions from the ids (create_position_ids_from_input_ids with the
  // cache length as past), the layers (keys/values appended), final LayerNorm -> [L, D].
  // key_keep, when given, is the HF attention_mask over the cached positions and these L
  // ([cache.length + L], 1 = attend, 0 = padding): padded keys are hidden from every query. A
  // query whose visible keys are all padding (a left pad itself) gets a zero attention output;
  // the reference's value there comes from its mask arithmetic and means nothing.
  Tensor forward(const Tensor& embeds, const int64_t* ids, KvCache& cache, const int64_t* key_keep = nullptr) const;
  Tensor logits(const float* hidden, int64_t rows) const;  // [rows, V]
};

// The sinusoidal position embedding row of position `pos` (M2M100SinusoidalPositionalEmbedding
// .get_embedding, computed in f32 as torch does; the padding position is all zeros).
void kosmos2_sinusoidal_position(int64_t pos, int64_t dim, int64_t padding_idx, float* out);

class Kosmos2Model : public Model {
 public:
  Kosmos2Config cfg;
  VisionTransformer vision;
  Linear dense;        // image_to_text_projection.dense
  Tensor latent_query;  // [Q, Dt]
  Kosmos2Attention x_attn;
  Kosmos2TextModel text;

  void visit(ParamVisitor& v);
  std::string family() const override { return "kosmos2"; }

  // pixel_values [1, 3, S, S] -> image_embeds [Q, Dt]: tower, post_layernorm on every token,
  // L2 normalisation, then the connector (Kosmos2Model.get_image_features).
  Tensor encode_image(const Tensor& pixel_values) const;
  // Prompt embeddings [L, Dt] (unscaled): token embeddings with image_embeds at the positions
  // where image_mask is 1 (in order). Checks that the counts agree.
  Tensor prompt_embeddings(const std::vector<int64_t>& ids, const std::vector<int64_t>& image_mask,
                           const Tensor& image_embeds) const;

  // Prefill + decode on one KV cache. Each step's logits (of the last position) go to on_step
  // before the sampler sees them; generation ends at max_new_tokens, at an EOS id (not
  // included in the result) or when on_token returns false.
  struct GenerateOptions {
    int64_t max_new_tokens = 64;
    int64_t min_new_tokens = 0;
    std::vector<int64_t> eos_ids;
    // HF attention_mask of the prompt (1 = token, 0 = padding); empty = all tokens. New tokens
    // are always attended.
    std::vector<int64_t> attention_mask;
    SamplingParams sampling;  // greedy by default
    std::function<void(int64_t step, const float* logits)> on_step;
    std::function<bool(int64_t token)> on_token;
  };
  std::vector<int64_t> generate(const std::vector<int64_t>& ids, const std::vector<int64_t>& image_mask,
                                const Tensor& image_embeds, const GenerateOptions& options) const;
};

class Tokenizer;

// What Kosmos2Processor gives the model for one image and a text (add_special_tokens):
// [bos, <image>, Q placeholders (ids unk+1 .. unk+Q), </image>] + the tokens of text.strip(),
// image_mask 1 on the placeholders. The markup tokens absorb the space before them (lstrip),
// so the text is tokenized on its own, as the processor's "<image>...</image> text" is.
struct Kosmos2Prompt {
  std::vector<int64_t> ids, image_mask;
};
Kosmos2Prompt kosmos2_prompt(const Tokenizer& tok, const Kosmos2Config& cfg, const std::string& text);

// Writes a random-weight KOSMOS-2 (make-tiny): config, weights, CLIP processor, and the
// markup tokens (<phrase>, <object>, 1024 <patch_index_XXXX>, <grounding>, ...) added to the
// tokenizer in o.out_dir.
void make_tiny_kosmos2(const MakeTinyOptions& o);

// Fixture tasks (FORMAT.md 5.5, 6): causal_lm_forward and greedy_generate.
TensorMap kosmos2_fixture(const Model& m, const std::string& task, const TensorMap& inputs,
                          const nlohmann::json& meta);

}  // namespace lumen

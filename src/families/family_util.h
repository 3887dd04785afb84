// Shared helpers for families: loading and writing checkpoint directories, contrastive outputs.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "blocks/params.h"
#include "families/family.h"
#include "formats/json_config.h"
#include "formats/safetensors.h"
#include "runtime/beam_search.h"

namespace lumen {

// Writes config.json, model.safetensors and (when non-null) preprocessor_config.json into dir
// (created if missing). Files are replaced atomically.
void write_checkpoint(const std::string& dir, const nlohmann::json& config, const nlohmann::json& preprocessor,
                      const std::vector<std::pair<std::string, Tensor>>& tensors);

// preprocessor_config.json of a make-tiny checkpoint whose processor normalises as OpenAI CLIP
// does (CLIP, BLIP, BLIP-2, LLaVA, KOSMOS-2): `type` and its resize/crop fields (`geometry`),
// plus what they all share: bicubic resampling, rescale by 1/255, CLIP mean/std, RGB.
nlohmann::json clip_normalized_preprocessor(const std::string& type, nlohmann::json geometry);

// From the projected (unnormalised) features: image_embeds / text_embeds (L2-normalised) and
// logits_per_text [T, I] = scale * text @ image^T + bias, logits_per_image its transpose.
void add_contrastive_outputs(TensorMap& out, const Tensor& image_features, const Tensor& text_features, float scale,
                             float bias);

// Prompt embeddings [L, D] of one sequence whose image-token positions are already expanded:
// token embeddings with the images' features (in order) at the image-token positions. Checks
// that the counts agree. With `debug`, stores the concatenated features as "image_features".
Tensor vlm_prompt_embeddings(const VisionLanguageModel& vlm, const std::vector<int64_t>& ids,
                             const std::vector<ImageInput>& images, TensorMap* debug = nullptr);
// The same from features already computed (encode_image of each image, in order): a server
// that caches features by image content builds prompts without re-encoding.
Tensor vlm_prompt_embeddings_from_features(const VisionLanguageModel& vlm, const std::vector<int64_t>& ids,
                                           const std::vector<Tensor>& features);

// Greedy/beam fixture outputs (FORMAT.md section 6): sequences [1, n], new_token_ids
// [1, n - prompt_len] and, when `steps` has the logits of each step, step_logits [1, S, V].
void add_generation_outputs(TensorMap& out, const std::vector<int64_t>& seq, int64_t prompt_len,
                            const std::vector<std::vector<float>>& steps);

// The search a generation fixture asks for (FORMAT.md section 6, meta.generation):
// max_new_tokens (default 8), min_new_tokens, num_beams (1 = greedy), length_penalty,
// no_repeat_ngram_size, early_stopping (true / false / "never") and the EOS id
// (eos_token_id_used, else eos_token_id; none = run to max_new_tokens).
BeamSearchParams fixture_search_params(const nlohmann::json& meta);

// Makes `content` a special added token of dir/tokenizer.json (appended after the largest id
// when missing) and returns its id. make-tiny uses it for markers such as LLaVA's "<image>".
int64_t add_special_token(const std::string& dir, const std::string& content);
// Adds several tokens to dir/tokenizer.json in one rewrite (ids appended in order; existing
// ones kept) and returns their ids. `special` tokens are skipped by decode(skip_special);
// `lstrip` makes the token absorb the spaces before it (KOSMOS-2's markup tokens).
std::vector<int64_t> add_tokens(const std::string& dir, const std::vector<std::string>& contents, bool special,
                                bool lstrip);

// Reads dir/config.json into Model::cfg (Config::from_hf) and loads every tensor Model::visit
// names; `options` picks the linear layers' weight format.
template <typename ModelT>
std::unique_ptr<Model> load_checkpoint_model_with(const std::string& dir, const LoadOptions& options) {
  auto m = std::make_unique<ModelT>();
  const std::string path = dir + "/config.json";
  m->cfg = decltype(m->cfg)::from_hf(JsonView::load_file(path), path);
  TensorStore store = TensorStore::open(dir);
  LoadVisitor loader(store, options);
  m->visit(loader);
  return m;
}


}  // namespace lumen

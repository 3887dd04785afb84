// A family is the unit of extension: it knows its config.json, composes shared blocks, runs its
// fixture tasks, and can write a random-weight checkpoint of itself (make-tiny). Families
// register in registry.cpp (one line each); front ends find them by config.json.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "blocks/params.h"
#include "core/tensor.h"

namespace lumen {

using TensorMap = std::map<std::string, Tensor>;

struct MakeTinyOptions {
  std::string out_dir;
  uint64_t seed = 0;
  std::string arch = "tiny";     // size preset; families list theirs (e.g. "vit-b-32")
  int64_t vocab_size = 0;        // from the tokenizer the caller writes; 0 = family default
  nlohmann::json token_ids = nlohmann::json::object();  // special ids of the tokenizer (bos, eos, pad)
};

class DualEncoder;

// Loaded model. Capabilities are separate interfaces (DualEncoder below; generators later).
class Model {
 public:
  virtual ~Model() = default;
  virtual std::string family() const = 0;
  // The model's contrastive image/text part, or null: the model itself when it is a
  // DualEncoder; a model with other heads too (BLIP retrieval) returns a view of that part.
  virtual const DualEncoder* dual_encoder() const;
};

// Contrastive image/text models (CLIP, SigLIP, ALIGN, ...).
class DualEncoder : public Model {
 public:
  enum class Scoring { Softmax, Sigmoid };
  // pixel_values [B, 3, S, S] -> [B, P], L2-normalised.
  virtual Tensor image_embeds(const Tensor& pixel_values) const = 0;
  // input_ids [B, L] I64 with the family's padding, attention_mask [B, L] -> [B, P], L2-normalised.
  virtual Tensor text_embeds(const Tensor& input_ids, const Tensor& attention_mask) const = 0;
  // How texts are padded for this family: to the longest in the batch (CLIP) or to a fixed
  // length (SigLIP: max_length = max_position_embeddings, as SiglipProcessor does).
  virtual int64_t text_pad_to() const = 0;  // 0 = longest
  virtual int64_t text_pad_id() const = 0;
  virtual bool text_uses_mask() const = 0;  // SigLIP attends pad tokens: no mask
  virtual int64_t max_text_length() const = 0;
  virtual Scoring scoring() const = 0;
  virtual float logit_scale() const = 0;  // already exp()'d
  virtual float logit_bias() const = 0;
  // P: the width of image_embeds / text_embeds rows.
  virtual int64_t embedding_dim() const = 0;
  // Optional finer image-text matching head (BLIP's ITM) that re-scores a few candidates the
  // embeddings found: pixel_values [B, 3, S, S] against one text (input_ids / attention_mask
  // [1, L]) -> [B] probabilities that each image matches the text.
  virtual bool has_match_head() const { return false; }
  virtual Tensor match_probabilities(const Tensor& pixel_values, const Tensor& input_ids,
                                     const Tensor& attention_mask) const;
  // Every named intermediate of one forward (for verify and --dump-tensors).
  virtual TensorMap forward_all(const Tensor& pixel_values, const Tensor& input_ids,
                                const Tensor& attention_mask) const = 0;
};

inline const DualEncoder* Model::dual_encoder() const { return dynamic_cast<const DualEncoder*>(this); }

struct DecoderLm;

// One image as a family's processor prepared it.
struct ImageInput {
  Tensor pixel_values;          // [tiles, 3, S, S] (one tile unless the family tiles, e.g. AnyRes)
  int64_t height = 0, width = 0;  // the original image size (AnyRes unpads to it)
};

// Decoder-only multimodal LMs (LLaVA and relatives): images become embeddings that replace the
// image-token positions of the prompt; a DecoderLm writes the answer.
class VisionLanguageModel : public Model {
 public:
  virtual const DecoderLm& lm() const = 0;
  virtual int64_t image_token_id() const = 0;
  // How the prompt writes one image before expansion (LLaVA: "<image>").
  virtual std::string image_marker() const { return "<image>"; }
  // How many image-token positions one image takes (AnyRes: depends on its size).
  virtual int64_t image_token_count(const ImageInput& image) const = 0;
  // [image_token_count(image), D_text] features for the image-token positions.
  virtual Tensor encode_image(const ImageInput& image) const = 0;
  // Longest sequence (prompt + answer) the LM accepts.
  virtual int64_t max_context() const = 0;
};

struct FamilySpec {
  std::string name;         // "clip"
  std::string description;  // one line for --help and `lumen models`
  std::vector<std::string> model_types;    // config.json "model_type" values
  std::vector<std::string> architectures;  // config.json "architectures" values
  std::vector<std::string> tiny_archs;     // make-tiny --arch presets
  std::string default_tokenizer = "clip";  // bundled tokenizer (data/tokenizers/<name>) make-tiny uses
  // Loads a checkpoint directory; options pick the linear layers' weight format (--quant).
  std::function<std::unique_ptr<Model>(const std::string& dir, const LoadOptions& options)> load;
  // Runs one fixture task (FORMAT.md section 5) and returns the named outputs.
  std::function<TensorMap(const Model&, const std::string& task, const TensorMap& inputs,
                          const nlohmann::json& meta)>
      run_fixture;
  // Writes config.json, model.safetensors and preprocessor_config.json into opts.out_dir.
  std::function<void(const MakeTinyOptions&)> make_tiny;
};

const std::vector<FamilySpec>& families();
const FamilySpec* find_family(const std::string& name);
// Reads dir/config.json and picks the family by model_type, then architectures.
const FamilySpec& family_for_checkpoint(const std::string& dir);
// Loads any supported checkpoint directory.
std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options = {});
std::vector<std::string> registered_family_names();

// Helpers every family uses.
TensorMap dual_encoder_fixture(const Model& m, const std::string& task, const TensorMap& inputs);

}  // namespace lumen

// Text-only decoder LMs of the LLaMA line: LLaMA / LLaMA-2 / Vicuna / Yi (LlamaForCausalLM) and
// Mistral (MistralForCausalLM). The same DecoderLm the LLaVA family uses for its answers; here
// it is the whole model, and prompts carry no images.
#include "blocks/decoder_lm.h"
#include "families/family.h"
#include "families/family_util.h"

namespace lumen {
namespace {

struct LlamaConfig {
  DecoderLmConfig text;
  static LlamaConfig from_hf(const nlohmann::json& j, const std::string& path) {
    JsonView v(&j, path);
    return {DecoderLmConfig::from_hf(v)};
  }
};

class LlamaModel : public VisionLanguageModel {
 public:
  LlamaConfig cfg;
  DecoderLm text;

  void visit(ParamVisitor& v) {
    ParamScope root(v);
    text.visit(root.sub("model"), root, cfg.text);
  }
  std::string family() const override { return "llama"; }
  const DecoderLm& lm() const override { return text; }
  int64_t image_token_id() const override { return -1; }  // no id is an image position
  int64_t image_token_count(const ImageInput&) const override { fail(cfg.text.model_type, " models take no images"); }
  Tensor encode_image(const ImageInput&) const override { fail(cfg.text.model_type, " models take no images"); }
  int64_t max_context() const override { return text.cfg.max_positions; }
};

void make_tiny_llama(const MakeTinyOptions& o) {
  struct Preset { int64_t d, l, h, kv, m, pos; };
  Preset p{64, 2, 4, 2, 128, 2048};
  if (o.arch == "llama-2-7b") p = {4096, 32, 32, 32, 11008, 4096};
  else if (o.arch == "mistral-7b") p = {4096, 32, 32, 8, 14336, 32768};
  else LUMEN_CHECK(o.arch == "tiny", "llama has no --arch '", o.arch, "' (tiny, llama-2-7b, mistral-7b)");
  const bool mistral = o.arch == "mistral-7b";
  const int64_t vocab = o.vocab_size > 0 ? o.vocab_size : 32000;
  nlohmann::json cfg = {{"architectures", {mistral ? "MistralForCausalLM" : "LlamaForCausalLM"}},
                        {"model_type", mistral ? "mistral" : "llama"}, {"vocab_size", vocab}, {"hidden_size", p.d},
                        {"num_hidden_layers", p.l}, {"num_attention_heads", p.h}, {"num_key_value_heads", p.kv},
                        {"intermediate_size", p.m}, {"hidden_act", "silu"}, {"max_position_embeddings", p.pos},
                        {"rms_norm_eps", 1e-5}, {"rope_theta", mistral ? 1e6 : 1e4}, {"tie_word_embeddings", false},
                        {"bos_token_id", o.token_ids.value("bos", 1)}, {"eos_token_id", o.token_ids.value("eos", 2)},
                        {"lumen_note", "random weights written by `lumen make-tiny`: untrained, outputs are meaningless"}};
  LlamaModel m;
  m.cfg = LlamaConfig::from_hf(cfg, "config.json");
  RandomInitVisitor init(o.seed);
  m.visit(init);
  write_checkpoint(o.out_dir, cfg, nullptr, init.tensors());
}

}  // namespace

FamilySpec llama_family() {
  FamilySpec f;
  f.name = "llama";
  f.description = "LLaMA / LLaMA-2 / Vicuna / Yi / Mistral text decoders (the LM half of LLaVA)";
  f.model_types = {"llama", "mistral"};
  f.architectures = {"LlamaForCausalLM", "MistralForCausalLM"};
  f.tiny_archs = {"tiny", "llama-2-7b", "mistral-7b"};
  f.default_tokenizer = "llama2";
  f.load = load_checkpoint_model_with<LlamaModel>;
  f.run_fixture = [](const Model& m, const std::string& task, const TensorMap&, const nlohmann::json&) -> TensorMap {
    fail("no fixture task '", task, "' for family ", m.family());
  };
  f.make_tiny = make_tiny_llama;
  return f;
}

}  // namespace lumen

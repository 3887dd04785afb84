#include "runtime/vlm_session.h"

#include <sys/stat.h>

#include <algorithm>

#include "blocks/decoder_lm.h"
#include "families/family_util.h"
#include "formats/json_config.h"

namespace lumen {
namespace {

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void add_ids(std::vector<int64_t>& out, const nlohmann::json& v) {
  if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  if (v.is_array())
    for (const auto& x : v)
      if (x.is_number_integer()) out.push_back(x.get<int64_t>());
}

// The template a checkpoint without one gets, by the prompt format of its family and LM.
std::string builtin_template_name(const VisionLanguageModel& m) {
  if (m.family() == "llama") return m.lm().cfg.model_type == "mistral" ? "llava_next_mistral" : "llama2";
  if (m.family() == "llava_next") return m.lm().cfg.model_type == "mistral" ? "llava_next_mistral" : "vicuna";
  return "llava";
}

}  // namespace

VlmSession VlmSession::open(const std::string& dir, const LoadOptions& options) {
  return from_model(dir, load_model(dir, options));
}

VlmSession VlmSession::from_model(const std::string& dir, std::shared_ptr<const Model> model) {
  VlmSession s;
  s.dir_ = dir;
  s.model_ = std::move(model);
  s.vlm_ = dynamic_cast<const VisionLanguageModel*>(s.model_.get());
  LUMEN_CHECK(s.vlm_, dir, ": family ", s.model_->family(), " does not generate text (it is not a chat model)");
  s.tok_ = std::make_shared<const Tokenizer>(with_context(dir, [&] { return Tokenizer::from_dir(dir); }));
  const std::string pre = dir + "/preprocessor_config.json";
  if (file_exists(pre)) s.processor_ = std::make_shared<const ImageProcessor>(ImageProcessor::from_file(pre));
  if (auto t = text::ChatTemplate::from_dir(dir)) {
    s.template_ = std::make_shared<const text::ChatTemplate>(std::move(*t));
    s.template_source_ = "checkpoint";
  } else {
    const std::string name = builtin_template_name(*s.vlm_);
    s.template_ = std::make_shared<const text::ChatTemplate>(text::ChatTemplate::parse(text::builtin_chat_template(name)));
    s.template_source_ = "builtin " + name;
  }
  s.special_tokens_ = text::chat_context_from_tokenizer_config(dir);

  // Generation defaults: generation_config.json as transformers' generate reads it.
  GenerationParams& g = s.defaults_;
  g.max_new_tokens = 256;
  const std::string gen_path = dir + "/generation_config.json";
  if (file_exists(gen_path)) {
    nlohmann::json gj = JsonView::load_file(gen_path);
    JsonView gv(&gj, gen_path);
    if (gv.get_bool("do_sample", false)) {
      g.sampling.temperature = static_cast<float>(gv.get_double("temperature", 1.0));
      g.sampling.top_k = gv.get_int("top_k", 50);
      g.sampling.top_p = static_cast<float>(gv.get_double("top_p", 1.0));
      if (gj.contains("min_p") && !gj["min_p"].is_null()) g.sampling.min_p = static_cast<float>(gv.get_double("min_p"));
    }
    if (gj.contains("repetition_penalty") && !gj["repetition_penalty"].is_null())
      g.sampling.repetition_penalty = static_cast<float>(gv.get_double("repetition_penalty"));
    if (gj.contains("max_new_tokens") && gj["max_new_tokens"].is_number_integer())
      g.max_new_tokens = gv.get_int("max_new_tokens");
    if (gj.contains("eos_token_id")) add_ids(g.eos_ids, gj["eos_token_id"]);
  }
  if (g.eos_ids.empty()) {
    nlohmann::json cfg = JsonView::load_file(dir + "/config.json");
    if (cfg.contains("text_config") && cfg["text_config"].contains("eos_token_id"))
      add_ids(g.eos_ids, cfg["text_config"]["eos_token_id"]);
    else if (cfg.contains("eos_token_id"))
      add_ids(g.eos_ids, cfg["eos_token_id"]);
  }
  if (g.eos_ids.empty())
    if (auto e = s.tok_->eos_id()) g.eos_ids.push_back(*e);
  return s;
}

std::string VlmSession::render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
  return template_->render(text::make_chat_context(messages, add_generation_prompt, special_tokens_));
}

ImageInput VlmSession::process_image(const Image& image) const {
  LUMEN_CHECK(processor_, dir_, ": no preprocessor_config.json, so this checkpoint takes no images");
  ProcessedImages p = processor_->process({image});
  ImageInput in;
  const Tensor& pv = p.pixel_values;
  if (pv.ndim() == 5) {
    in.pixel_values = pv.reshape({pv.dim(1), pv.dim(2), pv.dim(3), pv.dim(4)});
  } else {
    in.pixel_values = pv;
  }
  in.height = image.height;
  in.width = image.width;
  if (p.image_sizes.defined()) {
    in.height = p.image_sizes.data<int64_t>()[0];
    in.width = p.image_sizes.data<int64_t>()[1];
  }
  return in;
}

std::vector<int64_t> VlmSession::tokenize_prompt(const std::string& prompt_text, size_t images) const {
  // Templates that write the BOS themselves are tokenized without special tokens, as
  // apply_chat_template(tokenize=True) does; others get the tokenizer's own (LLaVA processors).
  bool add_special = true;
  if (special_tokens_.contains("bos_token") && special_tokens_["bos_token"].is_string()) {
    const std::string bos = special_tokens_["bos_token"].get<std::string>();
    if (!bos.empty() && prompt_text.compare(0, bos.size(), bos) == 0) add_special = false;
  }
  Encoding enc = tok_->encode(prompt_text, add_special);
  const int64_t markers = std::count(enc.ids.begin(), enc.ids.end(), vlm_->image_token_id());
  LUMEN_CHECK(markers == static_cast<int64_t>(images), "the prompt has ", markers, " image marker(s) ",
              vlm_->image_marker(), " but ", images, " image(s) were given");
  return enc.ids;
}

namespace {

// Expands each image marker of `ids` to `counts[i]` image-token positions, checking the context.
std::vector<int64_t> expand_markers(const std::vector<int64_t>& ids, int64_t image_id,
                                    const std::vector<int64_t>& counts, int64_t max_context) {
  std::vector<int64_t> out;
  size_t next_image = 0;
  for (int64_t id : ids) {
    if (id != image_id) {
      out.push_back(id);
      continue;
    }
    out.insert(out.end(), static_cast<size_t>(counts[next_image++]), image_id);
  }
  LUMEN_CHECK(static_cast<int64_t>(out.size()) <= max_context, "context overflow: the prompt takes ", out.size(),
              " tokens (images included), the model's context is ", max_context);
  return out;
}

}  // namespace

PreparedPrompt VlmSession::prepare(const std::string& prompt_text, const std::vector<Image>& images) const {
  std::vector<int64_t> ids = tokenize_prompt(prompt_text, images.size());
  std::vector<ImageInput> inputs;
  std::vector<int64_t> counts;
  for (const auto& img : images) {
    inputs.push_back(process_image(img));
    counts.push_back(vlm_->image_token_count(inputs.back()));
  }
  PreparedPrompt p;
  p.images = static_cast<int64_t>(images.size());
  p.ids = expand_markers(ids, vlm_->image_token_id(), counts, vlm_->max_context());
  p.embeds = vlm_prompt_embeddings(*vlm_, p.ids, inputs);
  return p;
}

Tensor VlmSession::encode_image(const Image& image) const { return vlm_->encode_image(process_image(image)); }

PreparedPrompt VlmSession::prepare_encoded(const std::string& prompt_text,
                                           const std::vector<Tensor>& image_features) const {
  std::vector<int64_t> ids = tokenize_prompt(prompt_text, image_features.size());
  std::vector<int64_t> counts;
  for (const auto& f : image_features) counts.push_back(f.dim(0));
  PreparedPrompt p;
  p.images = static_cast<int64_t>(image_features.size());
  p.ids = expand_markers(ids, vlm_->image_token_id(), counts, vlm_->max_context());
  p.embeds = vlm_prompt_embeddings_from_features(*vlm_, p.ids, image_features);
  return p;
}

GenerationResult VlmSession::generate(const PreparedPrompt& prompt, const GenerationParams& params,
                                      const std::function<bool(std::string_view)>& on_text) const {
  return lumen::generate(vlm_->lm(), prompt.embeds, prompt.ids, *tok_, params, on_text);
}

}  // namespace lumen

#include "runtime/image_text_session.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "families/blip/blip.h"
#include "families/blip2/blip2.h"

namespace lumen {

bool ImageTextSession::handles(const Model& model) {
  if (const auto* blip = dynamic_cast<const BlipModel*>(&model)) return blip->text_decoder != nullptr;
  return dynamic_cast<const Blip2Model*>(&model) != nullptr;
}

std::string ImageTextSession::unsupported_reason(const Model& model) {
  if (handles(model)) return "";
  if (dynamic_cast<const BlipModel*>(&model))
    return "a BLIP retrieval checkpoint (BlipForImageTextRetrieval) scores image-text pairs and writes no text: "
           "use `lumen match` or `lumen search` with it";
  return "family " + model.family() + " does not write text from an image (BLIP captioning / VQA and BLIP-2 do)";
}

ImageTextSession ImageTextSession::open(const std::string& dir, const LoadOptions& options) {
  return from_model(dir, load_model(dir, options));
}

ImageTextSession ImageTextSession::from_model(const std::string& dir, std::shared_ptr<const Model> model) {
  const std::string why = unsupported_reason(*model);
  LUMEN_CHECK(why.empty(), dir, ": ", why);
  const auto* blip = dynamic_cast<const BlipModel*>(model.get());
  ImageTextSession s;
  s.dir_ = dir;
  s.task_ = blip ? (blip->can_answer() ? "question answering" : "captioning") : "prompted generation";
  s.model_ = std::move(model);
  s.tok_ = std::make_shared<const Tokenizer>(with_context(dir, [&] { return Tokenizer::from_dir(dir); }));
  const std::string pre = dir + "/preprocessor_config.json";
  LUMEN_CHECK(std::filesystem::exists(pre), dir, ": no preprocessor_config.json (needed to prepare the image)");
  s.processor_ = std::make_shared<const ImageProcessor>(ImageProcessor::from_file(pre));
  LUMEN_CHECK(s.processor_->supported(), pre, ": ", s.processor_->unsupported_reason());
  return s;
}

ImageTextResult ImageTextSession::generate(const Image& image, const std::string& prompt,
                                           const ImageTextOptions& o) const {
  LUMEN_CHECK(!needs_prompt() || !prompt.empty(), dir_,
              " is a BLIP question-answering model (BlipForQuestionAnswering): give the question as the prompt");
  LUMEN_CHECK(o.num_beams >= 1, "beam count must be at least 1, got ", o.num_beams);
  const auto t0 = std::chrono::steady_clock::now();
  Tensor pv = processor_->process({image}).pixel_values;  // [1, 3, S, S]
  std::vector<int64_t> out, eos;
  size_t skip = 0;     // leading ids that are not text: BLIP's [DEC], BLIP-2 OPT's prompt, T5's start
  size_t context = 0;  // ids the decoder starts from
  int64_t prompt_tokens = 0;
  if (const auto* blip = dynamic_cast<const BlipModel*>(model_.get())) {
    BlipDecodeOptions d;
    d.search = o;
    eos = {blip->cfg.sep_id};
    if (blip->can_answer()) {
      std::vector<int64_t> q = tok_->encode(prompt, true).ids;  // [CLS] question [SEP]
      const int64_t Lq = static_cast<int64_t>(q.size());
      Tensor ids = Tensor::from_ids(q, {1, Lq});
      Tensor mask = Tensor::from_ids(std::vector<int64_t>(q.size(), 1), {1, Lq});
      out = blip->answer(pv, ids, mask, d);
      context = 1;  // the answer decoder starts from [DEC]
      prompt_tokens = Lq;
    } else {
      // BlipForConditionalGeneration.generate: [CLS] prompt [SEP] -> [DEC] prompt.
      std::vector<int64_t> start = tok_->encode(prompt, true).ids;
      LUMEN_CHECK(start.size() >= 2, "the tokenizer of ", dir_, " adds no [CLS]/[SEP] around the prompt");
      start[0] = blip->cfg.bos_id;
      start.pop_back();
      out = blip->caption(pv, start, d);
      context = start.size();
      prompt_tokens = static_cast<int64_t>(start.size());
    }
    skip = 1;  // the caption text keeps its prompt, as decoding HF's generate() output does
  } else {
    const auto& blip2 = dynamic_cast<const Blip2Model&>(*model_);
    BeamSearchParams g = o;
    g.eos_ids.clear();
    if (auto e = tok_->eos_id()) g.eos_ids = {*e};
    eos = g.eos_ids;
    std::vector<int64_t> text = tok_->encode(prompt, blip2.opt != nullptr).ids;  // OPT: bos first
    if (blip2.t5 && !text.empty() && g.eos_ids.size() == 1 && text.back() != g.eos_ids[0]) text.push_back(g.eos_ids[0]);
    std::vector<int64_t> ids = blip2.with_image_tokens(text);
    out = blip2.generate(ids, blip2.image_queries(pv), g);
    context = blip2.opt ? ids.size() : 1;  // OPT continues the prompt; T5 decodes from its start token
    skip = context;
    prompt_tokens = static_cast<int64_t>(ids.size());
  }
  ImageTextResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens.assign(out.begin() + static_cast<std::ptrdiff_t>(std::min(skip, out.size())), out.end());
  r.text = tok_->decode(r.tokens, true);
  r.prompt_tokens = prompt_tokens;
  r.new_tokens = static_cast<int64_t>(out.size() - std::min(context, out.size()));
  const bool ended_on_eos = r.new_tokens > 0 && std::find(eos.begin(), eos.end(), out.back()) != eos.end();
  r.finish_reason = ended_on_eos ? "stop" : "length";
  return r;
}

}  // namespace lumen

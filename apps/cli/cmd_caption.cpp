// lumen caption / lumen match: BLIP and BLIP-2 image captioning (greedy or beam search, with an
// optional text prompt the caption continues; a BLIP VQA checkpoint answers the prompt as a
// question) and BLIP image-text matching (ITM probability and contrastive cosine).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/image_flags.h"
#include "families/blip/blip.h"
#include "families/blip2/blip2.h"
#include "text/tokenizer.h"
#include "vision/image_processor.h"

namespace lumen::cli {
namespace {

struct CaptionArgs {
  std::string model, image, prompt;
  int64_t beams = 3, max_new_tokens = 20, min_new_tokens = 5, no_repeat_ngram = 0;
  float length_penalty = 1.f;
  DecodeOptions decode;
  CommonFlags common;
};

Tensor load_pixels(const std::string& model_dir, const std::string& image, const DecodeOptions& d) {
  ImageProcessor ip = ImageProcessor::from_file(model_dir + "/preprocessor_config.json");
  return ip.process({decode_image_file(image, d)}).pixel_values;  // [1, 3, S, S]
}

int run_caption(const CaptionArgs& a) {
  apply_common_flags(a.common);
  auto model = load_model(a.model);
  Tokenizer tok = with_context(a.model, [&] { return Tokenizer::from_dir(a.model); });
  Tensor pv = load_pixels(a.model, a.image, a.decode);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> out;
  size_t skip = 0;  // leading ids that are not text (the [DEC] token)
  if (const auto* blip = dynamic_cast<const BlipModel*>(model.get())) {
    BlipDecodeOptions o;
    o.num_beams = a.beams;
    o.max_new_tokens = a.max_new_tokens;
    o.min_new_tokens = a.min_new_tokens;
    o.length_penalty = a.length_penalty;
    o.no_repeat_ngram_size = a.no_repeat_ngram;
    if (blip->can_answer()) {
      LUMEN_CHECK(!a.prompt.empty(), a.model, " is a BLIP question-answering model: pass the question with --prompt");
      std::vector<int64_t> q = tok.encode(a.prompt, true).ids;  // [CLS] question [SEP]
      Tensor ids = Tensor::from_ids(q, {1, static_cast<int64_t>(q.size())});
      Tensor mask = Tensor::from_ids(std::vector<int64_t>(q.size(), 1), {1, static_cast<int64_t>(q.size())});
      out = blip->answer(pv, ids, mask, o);
      skip = 1;
    } else {
      // BlipForConditionalGeneration.generate: [CLS] prompt [SEP] -> [DEC] prompt.
      std::vector<int64_t> prompt = tok.encode(a.prompt, true).ids;
      LUMEN_CHECK(prompt.size() >= 2, "the tokenizer of ", a.model, " adds no [CLS]/[SEP] around the prompt");
      prompt[0] = blip->cfg.bos_id;
      prompt.pop_back();
      out = blip->caption(pv, prompt, o);
      skip = 1;
    }
  } else if (const auto* blip2 = dynamic_cast<const Blip2Model*>(model.get())) {
    Blip2Generation g;
    g.num_beams = a.beams;
    g.max_new_tokens = a.max_new_tokens;
    g.min_new_tokens = a.min_new_tokens;
    g.length_penalty = a.length_penalty;
    g.no_repeat_ngram_size = a.no_repeat_ngram;
    if (auto e = tok.eos_id()) g.eos_ids = {*e};
    std::vector<int64_t> text = tok.encode(a.prompt, blip2->opt != nullptr).ids;  // OPT: bos first
    if (blip2->t5 && !text.empty() && g.eos_ids.size() == 1 && text.back() != g.eos_ids[0]) text.push_back(g.eos_ids[0]);
    std::vector<int64_t> ids = blip2->with_image_tokens(text);
    out = blip2->generate(ids, blip2->image_queries(pv), g);
    skip = blip2->opt ? ids.size() : 1;
  } else {
    fail(a.model, ": family ", model->family(), " does not caption (BLIP and BLIP-2 do)");
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<int64_t> gen(out.begin() + static_cast<std::ptrdiff_t>(std::min(skip, out.size())), out.end());
  const std::string text = tok.decode(gen, true);
  if (a.common.json) {
    std::printf("%s\n", nlohmann::json{{"model", a.model}, {"family", model->family()}, {"image", a.image},
                                       {"caption", text}, {"token_ids", gen}, {"beams", a.beams}, {"seconds", secs}}
                            .dump(2)
                            .c_str());
  } else {
    std::printf("%s\n", text.c_str());
  }
  return 0;
}

struct MatchArgs {
  std::string model, image;
  std::vector<std::string> texts;
  DecodeOptions decode;
  CommonFlags common;
};

int run_match(const MatchArgs& a) {
  apply_common_flags(a.common);
  auto model = load_model(a.model);
  const auto* blip = dynamic_cast<const BlipModel*>(model.get());
  LUMEN_CHECK(blip && blip->can_match(), a.model, ": image-text matching needs a BLIP retrieval checkpoint ",
              "(BlipForImageTextRetrieval); this is ", blip ? "a BLIP " + blip->kind() + " model" : model->family());
  Tokenizer tok = with_context(a.model, [&] { return Tokenizer::from_dir(a.model); });
  Tensor pv = load_pixels(a.model, a.image, a.decode);
  Tensor img = blip->image_embeds(pv);  // [1, T, Dv]
  nlohmann::json results = nlohmann::json::array();
  for (const auto& text : a.texts) {
    std::vector<int64_t> ids = tok.encode(text, true).ids;
    const int64_t L = static_cast<int64_t>(ids.size());
    Tensor t = Tensor::from_ids(ids, {1, L}), mask = Tensor::from_ids(std::vector<int64_t>(ids.size(), 1), {1, L});
    Tensor itm = blip->itm_logits(img, t, mask);  // [1, 2]
    const float l0 = itm.data<float>()[0], l1 = itm.data<float>()[1];
    const float p = 1.f / (1.f + std::exp(l0 - l1));  // softmax(itm)[1]
    const float cosine = blip->itc_scores(img, t, mask).data<float>()[0];
    results.push_back({{"text", text}, {"itm_probability", p}, {"cosine", cosine}});
    if (!a.common.json) std::printf("itm %.4f  cosine %+.4f  %s\n", p, cosine, text.c_str());
  }
  if (a.common.json)
    std::printf("%s\n", nlohmann::json{{"model", a.model}, {"image", a.image}, {"results", results}}.dump(2).c_str());
  return 0;
}

Register reg_caption({"caption", "Caption an image with BLIP or BLIP-2 (greedy or beam search)",
                      [](CLI::App* cmd) -> std::function<int()> {
                        auto a = std::make_shared<CaptionArgs>();
                        cmd->add_option("--model,-m", a->model, "Checkpoint directory (HF layout)")->required();
                        cmd->add_option("--image,-i", a->image, "Image file (JPEG, PNG, WebP)")->required();
                        cmd->add_option("--prompt,-p", a->prompt,
                                        "Text the caption continues (BLIP VQA: the question)");
                        cmd->add_option("--beams", a->beams, "Beam count (1 = greedy)")->capture_default_str();
                        cmd->add_option("--max-new-tokens", a->max_new_tokens)->capture_default_str();
                        cmd->add_option("--min-new-tokens", a->min_new_tokens)->capture_default_str();
                        cmd->add_option("--length-penalty", a->length_penalty)->capture_default_str();
                        cmd->add_option("--no-repeat-ngram", a->no_repeat_ngram, "0 = off")->capture_default_str();
                        add_image_flags(cmd, &a->decode);
                        add_common_flags(cmd, &a->common);
                        cmd->footer("Example: lumen caption -m blip-image-captioning-base -i cat.jpg --beams 3");
                        return [a] { return run_caption(*a); };
                      }});

Register reg_match({"match", "BLIP image-text matching: ITM probability and contrastive cosine per text",
                    [](CLI::App* cmd) -> std::function<int()> {
                      auto a = std::make_shared<MatchArgs>();
                      cmd->add_option("--model,-m", a->model, "BLIP retrieval checkpoint directory")->required();
                      cmd->add_option("--image,-i", a->image, "Image file (JPEG, PNG, WebP)")->required();
                      cmd->add_option("--text", a->texts, "Texts to score (repeat the flag)")->required();
                      add_image_flags(cmd, &a->decode);
                      add_common_flags(cmd, &a->common);
                      cmd->footer("Example: lumen match -m blip-itm-base-coco -i cat.jpg --text \"a cat\" --text \"a car\"");
                      return [a] { return run_match(*a); };
                    }});

}  // namespace
}  // namespace lumen::cli

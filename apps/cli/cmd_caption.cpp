// lumen caption / lumen match: BLIP and BLIP-2 image captioning (greedy or beam search, with an
// optional text prompt the caption continues; a BLIP VQA checkpoint answers the prompt as a
// question) and BLIP image-text matching (ITM probability and contrastive cosine).
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/image_flags.h"
#include "families/blip/blip.h"
#include "runtime/image_text_session.h"
#include "text/tokenizer.h"
#include "vision/image_processor.h"

namespace lumen::cli {
namespace {

struct CaptionArgs {
  std::string model, image, prompt;
  // BLIP's captioning defaults: 3 beams, 5 to 20 new tokens.
  ImageTextOptions search = [] {
    ImageTextOptions o;
    o.num_beams = 3;
    o.min_new_tokens = 5;
    return o;
  }();
  DecodeOptions decode;
  CommonFlags common;
};

Tensor load_pixels(const std::string& model_dir, const std::string& image, const DecodeOptions& d) {
  ImageProcessor ip = ImageProcessor::from_file(model_dir + "/preprocessor_config.json");
  return ip.process({decode_image_file(image, d)}).pixel_values;  // [1, 3, S, S]
}

int run_caption(const CaptionArgs& a) {
  apply_common_flags(a.common);
  ImageTextSession s = ImageTextSession::open(a.model);
  ImageTextResult r = s.generate(decode_image_file(a.image, a.decode), a.prompt, a.search);
  if (a.common.json) {
    std::printf("%s\n", nlohmann::json{{"model", a.model},
                                       {"family", s.model().family()},
                                       {"image", a.image},
                                       {"caption", r.text},
                                       {"token_ids", r.tokens},
                                       {"beams", a.search.num_beams},
                                       {"seconds", r.seconds}}
                            .dump(2)
                            .c_str());
  } else {
    std::printf("%s\n", r.text.c_str());
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
                        cmd->add_option("--beams", a->search.num_beams, "Beam count (1 = greedy)")->capture_default_str();
                        cmd->add_option("--max-new-tokens", a->search.max_new_tokens)->capture_default_str();
                        cmd->add_option("--min-new-tokens", a->search.min_new_tokens)->capture_default_str();
                        cmd->add_option("--length-penalty", a->search.length_penalty)->capture_default_str();
                        cmd->add_option("--no-repeat-ngram", a->search.no_repeat_ngram_size, "0 = off")->capture_default_str();
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

// lumen classify: zero-shot image classification with a dual encoder. CLIP turns the logits of
// one image against all labels into a softmax (Radford et al. 2021); SigLIP scores each
// image/label pair with its own sigmoid (Zhai et al. 2023), so its numbers need not sum to 1.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "apps/cli/commands.h"
#include "apps/cli/image_flags.h"
#include "runtime/dual_encoder_session.h"

namespace lumen::cli {
namespace {

struct ClassifyArgs {
  std::string model;
  std::vector<std::string> images, labels;
  std::string templ = "a photo of a {}.";
  int top = 0;
  DecodeOptions decode;
  CommonFlags common;
};

std::string fill(const std::string& templ, const std::string& label) {
  auto pos = templ.find("{}");
  if (pos == std::string::npos) return templ + " " + label;
  return templ.substr(0, pos) + label + templ.substr(pos + 2);
}

int run(const ClassifyArgs& a) {
  apply_common_flags(a.common);
  LUMEN_CHECK(!a.labels.empty(), "--labels needs at least one label");
  auto session = DualEncoderSession::open(a.model);
  std::vector<std::string> prompts;
  for (const auto& l : a.labels) prompts.push_back(fill(a.templ, l));
  Tensor text = session.embed_texts(prompts);
  Tensor image = session.embed_image_files(a.images, a.decode);
  Tensor logits = session.logits(image, text);
  Tensor probs = session.probabilities(logits);
  const bool softmax = session.model().scoring() == DualEncoder::Scoring::Softmax;
  const int64_t T = static_cast<int64_t>(a.labels.size());
  const int64_t top = a.top > 0 ? std::min<int64_t>(a.top, T) : T;

  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < a.images.size(); ++i) {
    std::vector<int64_t> order(static_cast<size_t>(T));
    std::iota(order.begin(), order.end(), 0);
    const float* p = probs.data<float>() + static_cast<int64_t>(i) * T;
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return p[x] > p[y]; });
    nlohmann::json scores = nlohmann::json::array();
    if (!a.common.json) std::printf("%s\n", a.images[i].c_str());
    for (int64_t r = 0; r < top; ++r) {
      int64_t k = order[static_cast<size_t>(r)];
      float lg = logits.data<float>()[static_cast<int64_t>(i) * T + k];
      scores.push_back({{"label", a.labels[static_cast<size_t>(k)]}, {"prompt", prompts[static_cast<size_t>(k)]},
                        {"probability", p[k]}, {"logit", lg}});
      if (!a.common.json) std::printf("  %6.2f%%  %s\n", 100.0 * p[k], a.labels[static_cast<size_t>(k)].c_str());
    }
    out.push_back({{"image", a.images[i]}, {"scores", scores}});
  }
  if (a.common.json) {
    std::printf("%s\n", nlohmann::json{{"model", a.model}, {"family", session.model().family()},
                                       {"scoring", softmax ? "softmax" : "sigmoid"}, {"results", out}}
                            .dump(2)
                            .c_str());
  } else if (!softmax) {
    std::printf("(sigmoid scores: each label is judged on its own, they need not sum to 100%%)\n");
  }
  return 0;
}

Register reg({"classify", "Zero-shot image classification with CLIP (softmax) or SigLIP (sigmoid)",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<ClassifyArgs>();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory (HF layout)")->required();
                cmd->add_option("--image,-i", a->images, "Image files (JPEG, PNG, WebP)")->required();
                cmd->add_option("--labels,-l", a->labels, "Comma-separated class names")->required()->delimiter(',');
                cmd->add_option("--template", a->templ, "Prompt template; {} is replaced by the label")
                    ->capture_default_str();
                cmd->add_option("--top", a->top, "Show only the K best labels");
                add_image_flags(cmd, &a->decode);
                add_common_flags(cmd, &a->common);
                cmd->footer("Example: lumen classify -m clip-vit-base-patch32 -i cat.jpg --labels cat,dog,car\n"
                            "Use --template \"{}\" to pass labels as full prompts.");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

// lumen embed: L2-normalised image or text embeddings from a dual encoder (CLIP, SigLIP).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/commands.h"
#include "apps/cli/image_flags.h"
#include "formats/npy.h"
#include "runtime/dual_encoder_session.h"

namespace lumen::cli {
namespace {

struct EmbedArgs {
  std::string model;
  std::vector<std::string> images, texts;
  std::string npy;
  int batch = 8;
  DecodeOptions decode;
  CommonFlags common;
};

int run(const EmbedArgs& a) {
  apply_common_flags(a.common);
  LUMEN_CHECK(a.images.empty() != a.texts.empty(), "give either --image FILE... or --text TEXT...");
  auto session = DualEncoderSession::open(a.model);
  const bool images = !a.images.empty();
  const auto& inputs = images ? a.images : a.texts;
  Tensor e = images ? session.embed_image_files(a.images, a.decode, a.batch,
                                                [&](size_t done, size_t total) {
                                                  if (total > static_cast<size_t>(a.batch) && !a.common.json)
                                                    std::fprintf(stderr, "\rembedding images %zu/%zu", done, total);
                                                  if (total > static_cast<size_t>(a.batch) && done == total && !a.common.json)
                                                    std::fprintf(stderr, "\n");
                                                })
                    : session.embed_texts(a.texts);
  const int64_t N = e.dim(0), P = e.dim(1);
  if (!a.npy.empty()) {
    write_npy(a.npy, e);
    if (!a.common.json) std::fprintf(stderr, "wrote %lld x %lld float32 to %s\n", (long long)N, (long long)P, a.npy.c_str());
  }
  if (a.common.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t i = 0; i < N; ++i) {
      std::vector<float> v(e.data<float>() + i * P, e.data<float>() + (i + 1) * P);
      rows.push_back({{images ? "image" : "text", inputs[static_cast<size_t>(i)]}, {"embedding", v}});
    }
    std::printf("%s\n", nlohmann::json{{"model", a.model}, {"family", session.model().family()}, {"dim", P},
                                       {"normalized", true}, {"embeddings", rows}}
                            .dump()
                            .c_str());
  } else if (a.npy.empty()) {
    for (int64_t i = 0; i < N; ++i) {
      std::printf("%s\t[", inputs[static_cast<size_t>(i)].c_str());
      for (int64_t j = 0; j < std::min<int64_t>(P, 6); ++j) std::printf("%s%.5f", j ? ", " : "", e.data<float>()[i * P + j]);
      std::printf("%s] (dim %lld)\n", P > 6 ? ", ..." : "", (long long)P);
    }
  }
  return 0;
}

Register reg({"embed", "Image or text embeddings from a CLIP/SigLIP checkpoint",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<EmbedArgs>();
                cmd->add_option("--model,-m", a->model, "Checkpoint directory (HF layout)")->required();
                cmd->add_option("--image,-i", a->images, "Image files (JPEG, PNG, WebP)");
                cmd->add_option("--text", a->texts, "Texts");
                cmd->add_option("--npy", a->npy, "Also write the [N, dim] float32 matrix to this .npy file");
                cmd->add_option("--batch,-b", a->batch, "Images per forward pass")->capture_default_str();
                add_image_flags(cmd, &a->decode);
                add_common_flags(cmd, &a->common);
                cmd->footer("Examples:\n  lumen embed -m clip-vit-base-patch32 -i a.jpg b.png --npy out.npy\n"
                            "  lumen embed -m clip-vit-base-patch32 --text \"a cat\" \"a dog\" --json");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

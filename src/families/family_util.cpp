#include "families/family_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "core/mapped_file.h"
#include "formats/safetensors.h"
#include "kernels/ops.h"

namespace lumen {

void write_checkpoint(const std::string& dir, const nlohmann::json& config, const nlohmann::json& preprocessor,
                      const std::vector<std::pair<std::string, Tensor>>& tensors) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail(dir, ": cannot create directory: ", std::strerror(errno));
  write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
  if (!preprocessor.is_null()) write_file_atomic(dir + "/preprocessor_config.json", preprocessor.dump(2) + "\n");
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}, {"writer", "lumen make-tiny"}});
}

void add_contrastive_outputs(TensorMap& out, const Tensor& image_features, const Tensor& text_features, float scale,
                             float bias) {
  Tensor image_embeds = image_features.clone(), text_embeds = text_features.clone();
  ops::l2_normalize_rows(image_embeds.data<float>(), image_embeds.dim(0), image_embeds.dim(1));
  ops::l2_normalize_rows(text_embeds.data<float>(), text_embeds.dim(0), text_embeds.dim(1));
  out["image_embeds"] = image_embeds;
  out["text_embeds"] = text_embeds;
  const int64_t I = image_embeds.dim(0), T = text_embeds.dim(0), P = image_embeds.dim(1);
  Tensor per_text = Tensor::zeros({T, I});
  ops::gemm(false, true, T, I, P, scale, text_embeds.data<float>(), P, image_embeds.data<float>(), P, 0.f,
            per_text.data<float>(), I);
  Tensor per_image = Tensor::zeros({I, T});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < I; ++i) {
      per_text.data<float>()[t * I + i] += bias;
      per_image.data<float>()[i * T + t] = per_text.data<float>()[t * I + i];
    }
  out["logits_per_text"] = per_text;
  out["logits_per_image"] = per_image;
}

}  // namespace lumen

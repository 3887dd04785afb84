#include "blocks/vit.h"

#include <cstring>

#include "core/threads.h"

namespace lumen {

VitConfig VitConfig::from_hf(const JsonView& v) {
  VitConfig c;
  c.image_size = v.get_int("image_size");
  c.patch_size = v.get_int("patch_size");
  c.channels = v.get_int("num_channels", 3);
  c.encoder = TransformerEncoderConfig::from_hf(v);
  LUMEN_CHECK(c.patch_size > 0 && c.image_size >= c.patch_size, v.field("patch_size"), ": patch size ", c.patch_size,
              " does not fit image size ", c.image_size);
  return c;
}

void VisionTransformer::visit(const ParamScope& s, const VitConfig& c) {
  cfg = c;
  const int64_t D = c.encoder.dim, p = c.patch_size;
  ParamScope emb = s.sub("embeddings");
  emb("patch_embedding.weight", {D, c.channels, p, p}, Init::Matrix, &patch_weight);
  if (c.patch_bias) emb("patch_embedding.bias", {D}, Init::Bias, &patch_bias);
  if (c.class_token) emb("class_embedding", {D}, Init::Vector, &class_embedding);
  emb("position_embedding.weight", {c.num_positions(), D}, Init::Matrix, &position_embedding);
  if (c.pre_layernorm) pre_layrnorm.visit(s.sub("pre_layrnorm"), D, c.encoder.eps);
  encoder.visit(s.sub("encoder"), c.encoder);
  post_layernorm.visit(s.sub("post_layernorm"), D, c.encoder.eps);
}

Tensor patchify(const Tensor& pixel_values, int64_t p) {
  const int64_t B = pixel_values.dim(0), C = pixel_values.dim(1), S = pixel_values.dim(2), g = S / p;
  LUMEN_CHECK(pixel_values.dim(3) == S && S % p == 0, "patchify: pixel_values ", pixel_values.describe(),
              " is not square or not a multiple of the patch size ", p);
  const int64_t N = g * g, K = C * p * p;
  const float* px = pixel_values.data<float>();
  Tensor patches = Tensor::zeros({B * N, K});
  float* pt = patches.data<float>();
  parallel_for(B * N, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t b = r / N, gy = (r % N) / g, gx = r % g;
      float* row = pt + r * K;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t ky = 0; ky < p; ++ky)
          std::memcpy(row + (c * p + ky) * p, px + ((b * C + c) * S + gy * p + ky) * S + gx * p,
                      static_cast<size_t>(p) * sizeof(float));
    }
  });
  return patches;
}

Tensor VisionTransformer::embed(const Tensor& pixel_values) const {
  const int64_t C = cfg.channels, S = cfg.image_size, p = cfg.patch_size, g = cfg.grid(), D = cfg.encoder.dim;
  LUMEN_CHECK(pixel_values.ndim() == 4 && pixel_values.dim(1) == C && pixel_values.dim(2) == S &&
                  pixel_values.dim(3) == S,
              "vision tower expects pixel_values [B, ", C, ", ", S, ", ", S, "], got ", pixel_values.describe());
  const int64_t B = pixel_values.dim(0), N = g * g, T = cfg.num_positions(), K = C * p * p;

  Tensor patches = patchify(pixel_values, p);  // [B*N, K]
  const float* pt = patches.data<float>();
  Tensor patch_out = Tensor::zeros({B * N, D});  // [B*N, D]
  ops::linear(pt, B * N, K, patch_weight.data<float>(), D, patch_bias.defined() ? patch_bias.data<float>() : nullptr,
              patch_out.data<float>());

  Tensor h = Tensor::zeros({B * T, D});  // [B*T, D]
  float* hp = h.data<float>();
  const float* pos = position_embedding.data<float>();
  const int64_t first = cfg.class_token ? 1 : 0;
  for (int64_t b = 0; b < B; ++b) {
    float* hb = hp + b * T * D;
    if (cfg.class_token) std::memcpy(hb, class_embedding.data<float>(), static_cast<size_t>(D) * sizeof(float));
    std::memcpy(hb + first * D, patch_out.data<float>() + b * N * D, static_cast<size_t>(N * D) * sizeof(float));
    ops::add_inplace(hb, pos, T * D);
  }
  if (cfg.pre_layernorm) pre_layrnorm.forward(hp, B * T, hp);
  return h;
}

Tensor VisionTransformer::forward(const Tensor& pixel_values, int n_layers) const {
  Tensor h = embed(pixel_values);
  const int64_t B = pixel_values.dim(0), T = cfg.num_positions();
  encoder.forward(h, B, T, /*causal=*/false, nullptr, n_layers);
  return h.reshape({B, T, cfg.encoder.dim});
}

}  // namespace lumen

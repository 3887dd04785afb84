// The pixel steps of the "slow" (PIL/numpy) Hugging Face image processors, bit-exact:
//   resize_pil       PIL Image.resize on an RGB image (libImaging/Resample.c, and the affine
//                    nearest-neighbour path of _imaging.c for NEAREST)
//   center_crop      transformers.image_transforms.center_crop (zero padding when too small)
//   to_pixel_values  rescale (float64 multiply, cast to float32) then normalize (float32
//                    (x - mean) / std), as image_transforms.rescale / normalize do; the result
//                    is the [1, 3, H, W] float tensor the model takes.
#pragma once
#include <array>
#include <cstdint>

#include "core/tensor.h"
#include "vision/image.h"

namespace lumen {

// PIL's Image.Resampling values (what preprocessor_config.json stores in "resample").
enum class Resample : int { Nearest = 0, Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5 };
// Throws for values PIL does not define.
Resample resample_from_pil(int64_t value);
const char* resample_name(Resample r);  // "bicubic", ...

// PIL Image.resize((width, height), resample) for an RGB image: two passes (horizontal first,
// only over the rows the vertical pass reads), each skipped when that side keeps its size,
// antialiasing support scaled by the downscale factor, coefficients in 22-bit fixed point.
// Uses lumen's thread pool across rows; the result does not depend on the thread count.
Image resize_pil(const Image& image, int width, int height, Resample filter);

// transformers' center_crop for a numpy image: top = (H - crop_h) // 2 (floor division),
// left likewise; when the crop is larger than the image, the image is first placed in a zero
// canvas at offset ceil((max - size) / 2). The result is always crop_height x crop_width.
Image center_crop(const Image& image, int crop_height, int crop_width);

struct NormalizeParams {
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> mean{0.0, 0.0, 0.0};
  std::array<double, 3> std{1.0, 1.0, 1.0};
};
// [1, 3, H, W] float32: x = f32(f64(u8) * rescale_factor) when rescaling (else f32(u8)), then
// (x - f32(mean)) / f32(std) in float32 when normalizing.
Tensor to_pixel_values(const Image& image, const NormalizeParams& params);

}  // namespace lumen

// Hugging Face image processors, the "slow" PIL/numpy backend (`<Model>ImageProcessorPil` in
// transformers 5, `<Model>ImageProcessor` before), reproduced from preprocessor_config.json:
//
//   decode (image.h) -> resize (PIL, `resample`) -> center crop -> rescale -> normalize
//
// LlavaNextImageProcessor first tiles the image (AnyRes, anyres.h): resize to fit the best
// `image_grid_pinpoints` resolution (aspect kept), pad centered with zeros, cut S x S tiles
// row-major, and put the whole image resized to S x S in front; every tile then goes through
// the steps above. Its output is [1, tiles, 3, S, S] plus image_sizes (original height, width).
//
// Supported types: CLIPImageProcessor, SiglipImageProcessor, BlipImageProcessor,
// LlavaNextImageProcessor (with or without a "Fast"/"Pil" suffix, or as the legacy
// "<Model>FeatureExtractor"). Any other type loads with supported() == false, and the
// preprocess calls then throw UnsupportedImageProcessor, so a caller can report SKIP instead of failing.
//
// For one preprocessing fixture entry (`lumen verify`):
//   Tensor pixel_values = preprocess_image_file("clip_224/preprocessor_config.json", "cat.png");
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "vision/anyres.h"
#include "vision/image.h"
#include "vision/resize.h"

namespace lumen {

// Thrown by the preprocess calls of a processor whose type lumen does not implement.
class UnsupportedImageProcessor : public Error {
 public:
  explicit UnsupportedImageProcessor(const std::string& what) : Error(what) {}
};

// transformers' SizeDict: exactly one of {height, width}, {shortest_edge},
// {shortest_edge, longest_edge}, {max_height, max_width} is set (0 = unset).
struct SizeSpec {
  int64_t height = 0, width = 0;
  int64_t shortest_edge = 0, longest_edge = 0;
  int64_t max_height = 0, max_width = 0;
};

// Output (height, width) of image_transforms.get_resize_output_image_size(image, size,
// default_to_square=False, max_size): the short side becomes `size`, the long side
// int(size * long / short) (truncated); with max_size, a long side above it is clamped and the
// short side becomes int(max_size * short / long).
std::pair<int, int> get_resize_output_image_size(int height, int width, int64_t size, int64_t max_size = 0);
// image_transforms.get_size_with_aspect_ratio (the {shortest_edge, longest_edge} case).
std::pair<int, int> get_size_with_aspect_ratio(int height, int width, int64_t size, int64_t max_size);
// image_utils.get_image_size_for_max_height_width.
std::pair<int, int> get_image_size_for_max_height_width(int height, int width, int64_t max_height, int64_t max_width);

// What a processor returns for a batch of images (BatchFeature's tensors).
struct ProcessedImages {
  // [N, 3, H, W] for the fixed-size processors; [N, tiles, 3, S, S] for LLaVA-NeXT, images
  // with fewer tiles padded with zero tiles when do_pad (else all must have the same count).
  Tensor pixel_values;
  // I64 [N, 2]: each original (height, width). Only LLaVA-NeXT returns it; undefined (a
  // default Tensor) for the others.
  Tensor image_sizes;
};

class ImageProcessor {
 public:
  // Reads preprocessor_config.json; errors name the file and the field.
  static ImageProcessor from_file(const std::string& path);
  // `label` names the source in errors.
  static ImageProcessor from_json(const nlohmann::json& config, const std::string& label);

  // image_processor_type as written in the config ("CLIPImageProcessor"), or the legacy
  // feature_extractor_type ("CLIPFeatureExtractor", read as CLIPImageProcessor) when absent.
  const std::string& type() const { return type_; }
  bool supported() const { return supported_; }
  // Why it is unsupported ("" when supported).
  const std::string& unsupported_reason() const { return unsupported_reason_; }

  // (height, width) after the resize step for an input of the given size.
  std::pair<int, int> resize_output_size(int height, int width) const;
  // The uint8 image just before rescale/normalize: resize then center crop (as configured).
  // Throws for a tiling processor (is_anyres()); use process_tiles_u8.
  Image process_u8(const Image& image) const;
  // The uint8 tiles just before rescale/normalize: one image for the fixed-size processors;
  // for LLaVA-NeXT the base image then the grid tiles row-major (anyres_num_tiles of them).
  std::vector<Image> process_tiles_u8(const Image& image) const;
  // Normalized float pixel values of one RGB image: [1, 3, H, W], or [1, tiles, 3, S, S] for
  // LLaVA-NeXT (the shape of the fixtures' pixel_values).
  Tensor preprocess(const Image& image) const;
  // A batch, with image_sizes where the processor has them (see ProcessedImages).
  ProcessedImages process(const std::vector<Image>& images) const;
  // Decodes (EXIF orientation, alpha dropped as transformers' convert_to_rgb) and preprocesses.
  Tensor preprocess_file(const std::string& image_path, const DecodeOptions& options = {}) const;
  // rescale + normalize of an already resized/cropped uint8 image.
  Tensor normalize(const Image& image) const { return to_pixel_values(image, norm_); }

  // The effective settings (config values over the class defaults).
  bool do_resize() const { return do_resize_; }
  const SizeSpec& size() const { return size_; }
  Resample resample() const { return resample_; }
  bool do_center_crop() const { return do_center_crop_; }
  int crop_height() const { return crop_height_; }
  int crop_width() const { return crop_width_; }
  const NormalizeParams& normalize_params() const { return norm_; }
  bool do_convert_rgb() const { return do_convert_rgb_; }
  // LLaVA-NeXT (AnyRes) settings; is_anyres() is false for the other processors.
  bool is_anyres() const { return anyres_; }
  const std::vector<ImageSize>& image_grid_pinpoints() const { return pinpoints_; }
  // Side of a tile (transformers' patch_size in get_image_patches: crop_size.height, else
  // size.height, else size.shortest_edge).
  int tile_size() const { return tile_size_; }
  bool do_pad() const { return do_pad_; }

 private:
  void require_supported() const;
  Image resize_and_crop(const Image& image) const;
  std::vector<Image> anyres_tiles(const Image& image) const;

  std::string label_;
  std::string type_;
  bool supported_ = false;
  std::string unsupported_reason_;
  bool do_resize_ = true;
  SizeSpec size_;
  Resample resample_ = Resample::Bilinear;
  bool do_center_crop_ = false;
  int crop_height_ = 0, crop_width_ = 0;
  NormalizeParams norm_;
  // Decoding always yields RGB, which is what convert_to_rgb makes; kept for completeness.
  bool do_convert_rgb_ = true;
  bool anyres_ = false;
  std::vector<ImageSize> pinpoints_;
  int tile_size_ = 0;
  ImageSize base_size_;  // the whole image's resize target in get_image_patches
  bool do_pad_ = false;
};

// ImageProcessor::from_file(config_path).preprocess_file(image_path): [1, 3, H, W]
// ([1, tiles, 3, S, S] for LLaVA-NeXT).
// Throws UnsupportedImageProcessor for processor types lumen does not implement yet.
Tensor preprocess_image_file(const std::string& config_path, const std::string& image_path,
                             const DecodeOptions& options = {});

}  // namespace lumen

// LLaVA-NeXT "AnyRes" arithmetic: which grid resolution an image is fitted to, how many tiles
// that makes, and how the vision feature grid is cropped back to the image's aspect ratio.
// Pure integer/float arithmetic shared by the image processor (image_processor.h), the model
// (feature packing) and the prompt builder (image-token count); all three must agree.
//
// References (Hugging Face transformers):
//   image_processing_utils.select_best_resolution, get_patch_output_size
//   models/llava_next/modeling_llava_next.py: get_anyres_image_grid_shape,
//     image_size_to_num_patches, unpad_image, LlavaNextModel.pack_image_features
//   models/llava_next/processing_llava_next.py: LlavaNextProcessor._get_number_of_features,
//     _get_unpadded_features
//
// Worked example (the public llava_next_forward fixture): a 66x40 (WxH) image, pinpoints
// [[28,56],[56,28],[56,56]], tiles of 28 px, patches of 7 px:
//   select_best_resolution({40, 66}) = {56, 56}   -> a 2x2 grid, 1 + 4 tiles
//   feature grid 8x8 (s = 28/7 = 4 per tile side) -> unpadded to 4 rows x 8 cols
//   tokens = 4*4 (base tile) + 4 * (8 + 1) (rows plus one image_newline each) = 52
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lumen {

// A size in pixels (or in features), height first as in transformers' (height, width) tuples.
struct ImageSize {
  int64_t height = 0;
  int64_t width = 0;
  bool operator==(const ImageSize&) const = default;
};

// The largest grid resolution accepted for one pinpoint (height * width), so that a config
// cannot make the processor allocate an unbounded canvas: PIL's Image.MAX_IMAGE_PIXELS.
inline constexpr int64_t kMaxPinpointPixels = 89478485;

// Reads `image_grid_pinpoints` ([[height, width], ...], transformers requires a list) from a
// JSON config. Errors name `field`: not a list, empty, an entry that is not two positive
// integers, or an entry above kMaxPinpointPixels.
std::vector<ImageSize> parse_grid_pinpoints(const nlohmann::json& value, const std::string& field);

// Throws unless every pinpoint's height and width are multiples of `tile_size` (> 0).
// transformers would otherwise cut ragged edge tiles (divide_to_patches) and the model's grid
// shape (floor) would disagree with its tile count (ceil, image_size_to_num_patches).
void check_pinpoints_tile(const std::vector<ImageSize>& pinpoints, int64_t tile_size, const std::string& label);

// image_processing_utils.select_best_resolution: the pinpoint that keeps the most of the
// original's pixels when the image is scaled (aspect preserved) to fit inside it, ties broken
// by the least wasted area; the first such pinpoint wins. `original` is (height, width) > 0.
// Throws on an empty list.
ImageSize select_best_resolution(ImageSize original, const std::vector<ImageSize>& pinpoints);

// image_processing_utils.get_patch_output_size: the size the image is resized to before it is
// padded (centered, zeros) to `target`: the limiting side becomes the target side, the other
// ceil(side * scale), clamped to the target.
ImageSize patch_output_size(ImageSize image, ImageSize target);

// Tiles of the AnyRes grid for an image of `original` size: best resolution / tile_size per
// axis (get_anyres_image_grid_shape; its docstring says (width, height), the code returns
// (height, width) = (rows, cols)). Throws when the chosen pinpoint is not a multiple of
// tile_size.
struct AnyresGrid {
  int64_t rows = 0;  // tiles per column (vertical)
  int64_t cols = 0;  // tiles per row (horizontal)
  bool operator==(const AnyresGrid&) const = default;
};
AnyresGrid anyres_grid_shape(ImageSize original, const std::vector<ImageSize>& pinpoints, int64_t tile_size);

// image_size_to_num_patches: grid tiles + 1 base tile = the first dimension of one image's
// pixel_values before batch padding ([tiles, 3, S, S]).
int64_t anyres_num_tiles(ImageSize original, const std::vector<ImageSize>& pinpoints, int64_t tile_size);

// unpad_image / _get_unpadded_features on a feature grid of rows0 x cols0 (= grid tiles times
// features per tile side) for an original image of orig_h x orig_w: the rows (or columns) that
// only saw the processor's padding are cropped symmetrically. When W/H > cols0/rows0:
//   new = int(round(H * (cols0 / W), 7)), pad = (rows0 - new) // 2, rows = rows0 - 2 * pad
// otherwise the same on the columns. The kept block is rows [top, top + rows) and columns
// [left, left + cols) of the [rows0, cols0] grid.
struct UnpaddedGrid {
  int64_t rows = 0, cols = 0;
  int64_t top = 0, left = 0;
  bool operator==(const UnpaddedGrid&) const = default;
};
UnpaddedGrid unpadded_feature_grid(int64_t orig_h, int64_t orig_w, int64_t rows0, int64_t cols0);

// The number of image tokens one image expands to (LlavaNextProcessor._get_number_of_features,
// equal to what LlavaNextModel.pack_image_features produces):
//   s = tile_size / patch_size features per tile side (floor, as a strided conv),
//   base tile: s*s features; grid: unpadded_feature_grid(H, W, rows*s, cols*s), one
//   image_newline after every row  ->  s*s + rows_u * (cols_u + 1).
// `vision_feature_select_strategy` is "default" (drops the first vision token, the CLS) or
// "full" (keeps all); `num_additional_image_tokens` is how many non-patch tokens the vision
// tower emits per tile (1 for CLIP's CLS, 0 for SigLIP). The model reshapes each grid tile's
// selected features to s x s, so only ("default", 1) and ("full", 0) are consistent; other
// combinations throw instead of giving the processor's count for a model that would fail.
int64_t llava_next_image_token_count(ImageSize original, const std::vector<ImageSize>& pinpoints, int64_t tile_size,
                                     int64_t patch_size, const std::string& vision_feature_select_strategy,
                                     int64_t num_additional_image_tokens = 1);

// Python's int(round(x, 7)) for a finite x >= 0: x rounded correctly to 7 decimals (ties to
// even on the exact binary value, as CPython's float.__round__), then truncated.
int64_t python_int_round7(double x);

}  // namespace lumen

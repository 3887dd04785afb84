#include "vision/anyres.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "core/error.h"

namespace lumen {

namespace {

// Python's a // b for b > 0.
int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

void check_size(ImageSize s, const char* what) {
  LUMEN_CHECK(s.height > 0 && s.width > 0, what, ": size ", s.height, "x", s.width, " (height x width) is not positive");
}

int64_t pinpoint_side(const nlohmann::json& v, const std::string& field) {
  LUMEN_CHECK(v.is_number_integer() || v.is_number_unsigned(), field, ": expected a positive integer, got ", v.dump());
  const int64_t x = v.get<int64_t>();
  LUMEN_CHECK(x > 0, field, ": expected a positive integer, got ", x);
  return x;
}

}  // namespace

std::vector<ImageSize> parse_grid_pinpoints(const nlohmann::json& value, const std::string& field) {
  LUMEN_CHECK(value.is_array(), field, ": expected a list of [height, width] pairs, got ", value.dump());
  LUMEN_CHECK(!value.empty(), field, ": the list of grid resolutions is empty");
  std::vector<ImageSize> out;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    const nlohmann::json& p = value[i];
    LUMEN_CHECK(p.is_array() && p.size() == 2, at, ": expected [height, width], got ", p.dump());
    const ImageSize s{pinpoint_side(p[0], at + "[0]"), pinpoint_side(p[1], at + "[1]")};
    LUMEN_CHECK(s.height <= kMaxPinpointPixels / s.width, at, ": ", s.height, "x", s.width,
                " is larger than the ", kMaxPinpointPixels, " pixels lumen accepts for a grid resolution");
    out.push_back(s);
  }
  return out;
}

void check_pinpoints_tile(const std::vector<ImageSize>& pinpoints, int64_t tile_size, const std::string& label) {
  LUMEN_CHECK(tile_size > 0, label, ": tile size ", tile_size, " is not positive");
  for (size_t i = 0; i < pinpoints.size(); ++i) {
    const ImageSize& p = pinpoints[i];
    LUMEN_CHECK(p.height % tile_size == 0 && p.width % tile_size == 0, label, ": grid resolution [", p.height, ", ",
                p.width, "] (image_grid_pinpoints[", i, "]) is not a multiple of the tile size ", tile_size);
  }
}

ImageSize select_best_resolution(ImageSize original, const std::vector<ImageSize>& pinpoints) {
  check_size(original, "select_best_resolution: image");
  LUMEN_CHECK(!pinpoints.empty(), "select_best_resolution: no grid resolutions (image_grid_pinpoints is empty)");
  ImageSize best;
  int64_t max_effective = 0;
  // float("inf") in Python: the first pinpoint is taken even when its effective area is 0.
  int64_t min_wasted = std::numeric_limits<int64_t>::max();
  const int64_t original_area = original.height * original.width;
  for (const ImageSize& p : pinpoints) {
    check_size(p, "select_best_resolution: grid resolution");
    // Python: true divisions in float64, int() truncation, exact integer products.
    const double scale = std::min(static_cast<double>(p.width) / static_cast<double>(original.width),
                                  static_cast<double>(p.height) / static_cast<double>(original.height));
    const auto downscaled_w = static_cast<int64_t>(static_cast<double>(original.width) * scale);
    const auto downscaled_h = static_cast<int64_t>(static_cast<double>(original.height) * scale);
    const int64_t effective = std::min(downscaled_w * downscaled_h, original_area);
    const int64_t wasted = p.width * p.height - effective;
    if (effective > max_effective || (effective == max_effective && wasted < min_wasted)) {
      max_effective = effective;
      min_wasted = wasted;
      best = p;
    }
  }
  return best;
}

ImageSize patch_output_size(ImageSize image, ImageSize target) {
  check_size(image, "get_patch_output_size: image");
  check_size(target, "get_patch_output_size: target");
  const double scale_w = static_cast<double>(target.width) / static_cast<double>(image.width);
  const double scale_h = static_cast<double>(target.height) / static_cast<double>(image.height);
  if (scale_w < scale_h) {
    const auto h = static_cast<int64_t>(std::ceil(static_cast<double>(image.height) * scale_w));
    return {std::min(h, target.height), target.width};
  }
  const auto w = static_cast<int64_t>(std::ceil(static_cast<double>(image.width) * scale_h));
  return {target.height, std::min(w, target.width)};
}

AnyresGrid anyres_grid_shape(ImageSize original, const std::vector<ImageSize>& pinpoints, int64_t tile_size) {
  LUMEN_CHECK(tile_size > 0, "anyres_grid_shape: tile size ", tile_size, " is not positive");
  const ImageSize best = select_best_resolution(original, pinpoints);
  LUMEN_CHECK(best.height % tile_size == 0 && best.width % tile_size == 0, "anyres_grid_shape: grid resolution [",
              best.height, ", ", best.width, "] is not a multiple of the tile size ", tile_size);
  return {best.height / tile_size, best.width / tile_size};
}

int64_t anyres_num_tiles(ImageSize original, const std::vector<ImageSize>& pinpoints, int64_t tile_size) {
  const AnyresGrid g = anyres_grid_shape(original, pinpoints, tile_size);
  return g.rows * g.cols + 1;
}

int64_t python_int_round7(double x) {
  LUMEN_CHECK(std::isfinite(x) && x >= 0 && x < 9.0e15, "round(", x, ", 7): out of range");
  // glibc's printf rounds the exact binary value correctly (ties to even), which is what
  // CPython's float.__round__ (dtoa mode 3) does; strtod reads the decimal back exactly.
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.7f", x);
  return static_cast<int64_t>(std::strtod(buf, nullptr));  // int(): truncation
}

UnpaddedGrid unpadded_feature_grid(int64_t orig_h, int64_t orig_w, int64_t rows0, int64_t cols0) {
  LUMEN_CHECK(orig_h > 0 && orig_w > 0, "unpad_image: original size ", orig_h, "x", orig_w, " is not positive");
  LUMEN_CHECK(rows0 > 0 && cols0 > 0, "unpad_image: feature grid ", rows0, "x", cols0, " is not positive");
  UnpaddedGrid g{rows0, cols0, 0, 0};
  const double original_aspect = static_cast<double>(orig_w) / static_cast<double>(orig_h);
  const double current_aspect = static_cast<double>(cols0) / static_cast<double>(rows0);
  if (original_aspect > current_aspect) {
    // Wider than the grid: the processor padded above and below.
    const double scale = static_cast<double>(cols0) / static_cast<double>(orig_w);
    const int64_t new_h = python_int_round7(static_cast<double>(orig_h) * scale);
    g.top = floor_div(rows0 - new_h, 2);
    g.rows = rows0 - 2 * g.top;
  } else {
    const double scale = static_cast<double>(rows0) / static_cast<double>(orig_h);
    const int64_t new_w = python_int_round7(static_cast<double>(orig_w) * scale);
    g.left = floor_div(cols0 - new_w, 2);
    g.cols = cols0 - 2 * g.left;
  }
  return g;
}

int64_t llava_next_image_token_count(ImageSize original, const std::vector<ImageSize>& pinpoints, int64_t tile_size,
                                     int64_t patch_size, const std::string& vision_feature_select_strategy,
                                     int64_t num_additional_image_tokens) {
  LUMEN_CHECK(patch_size > 0 && patch_size <= tile_size, "llava_next_image_token_count: patch size ", patch_size,
              " must be in [1, tile size ", tile_size, "]");
  LUMEN_CHECK(vision_feature_select_strategy == "default" || vision_feature_select_strategy == "full",
              "vision_feature_select_strategy: expected \"default\" or \"full\", got \"", vision_feature_select_strategy,
              "\"");
  LUMEN_CHECK(num_additional_image_tokens >= 0, "num_additional_image_tokens: ", num_additional_image_tokens,
              " is negative");
  const int64_t s = tile_size / patch_size;
  // Features per tile after selection (LlavaNextModel.get_image_features): "default" drops one.
  const int64_t selected = s * s + num_additional_image_tokens - (vision_feature_select_strategy == "default" ? 1 : 0);
  LUMEN_CHECK(selected == s * s, "vision_feature_select_strategy \"", vision_feature_select_strategy, "\" with ",
              num_additional_image_tokens, " non-patch token(s) per tile leaves ", selected,
              " features per tile; LLaVA-NeXT's grid needs ", s, "x", s, " = ", s * s,
              " (use \"default\" for a tower with a CLS token, \"full\" for one without)");
  const AnyresGrid grid = anyres_grid_shape(original, pinpoints, tile_size);
  const UnpaddedGrid u = unpadded_feature_grid(original.height, original.width, grid.rows * s, grid.cols * s);
  return s * s + u.rows * (u.cols + 1);
}

}  // namespace lumen

#include "vision/image_processor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/json_config.h"

namespace lumen {

namespace {

constexpr std::array<double, 3> kClipMean{0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
constexpr std::array<double, 3> kClipStd{0.26862954, 0.26130258, 0.27577711};  // OPENAI_CLIP_STD
constexpr std::array<double, 3> kHalf{0.5, 0.5, 0.5};                          // IMAGENET_STANDARD_MEAN / _STD

// Class attributes of the transformers processors (models/<name>/image_processing_pil_<name>.py)
// that apply when preprocessor_config.json leaves a field out.
struct ClassDefaults {
  const char* type;
  Resample resample;
  std::array<double, 3> mean, std;
  SizeSpec size;
  bool default_to_square;  // how an integer "size" is read
  bool do_center_crop;
  int crop;  // crop_size side when the class has one
};

const ClassDefaults kSupported[] = {
    {"CLIPImageProcessor", Resample::Bicubic, kClipMean, kClipStd, SizeSpec{0, 0, 224, 0, 0, 0}, false, true, 224},
    {"SiglipImageProcessor", Resample::Bicubic, kHalf, kHalf, SizeSpec{224, 224, 0, 0, 0, 0}, false, false, 0},
    {"BlipImageProcessor", Resample::Bicubic, kClipMean, kClipStd, SizeSpec{384, 384, 0, 0, 0, 0}, true, false, 0},
    // models/llava_next/image_processing_pil_llava_next.py (LlavaNextImageProcessorPil).
    {"LlavaNextImageProcessor", Resample::Bicubic, kClipMean, kClipStd, SizeSpec{0, 0, 224, 0, 0, 0}, false, true, 224},
};

// LlavaNextImageProcessorPil.image_grid_pinpoints, used when the config has none.
const std::vector<ImageSize> kLlavaNextPinpoints = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};

// "CLIPImageProcessorFast" / "CLIPImageProcessorPil" name the same preprocessing.
std::string base_type(std::string t) {
  for (const char* suffix : {"Fast", "Pil"}) {
    const size_t n = std::char_traits<char>::length(suffix);
    if (t.size() > n && t.compare(t.size() - n, n, suffix) == 0) return t.substr(0, t.size() - n);
  }
  return t;
}

int64_t positive_int(const nlohmann::json& v, const std::string& field) {
  LUMEN_CHECK(v.is_number_integer() || v.is_number_unsigned(), field, ": expected a positive integer");
  const int64_t x = v.get<int64_t>();
  LUMEN_CHECK(x > 0 && x <= (1 << 24), field, ": expected a positive integer, got ", x);
  return x;
}

// image_processing_utils.get_size_dict: an int, a [height, width] list, or one of the dicts
// {height, width}, {shortest_edge}, {shortest_edge, longest_edge}, {longest_edge},
// {max_height, max_width}.
SizeSpec parse_size(const nlohmann::json& v, bool default_to_square, const std::string& field) {
  SizeSpec s;
  if (v.is_number()) {
    const int64_t n = positive_int(v, field);
    if (default_to_square) {
      s.height = s.width = n;
    } else {
      s.shortest_edge = n;
    }
    return s;
  }
  if (v.is_array()) {
    LUMEN_CHECK(v.size() == 2, field, ": a size list must be [height, width]");
    s.height = positive_int(v[0], field + "[0]");
    s.width = positive_int(v[1], field + "[1]");
    return s;
  }
  LUMEN_CHECK(v.is_object(), field, ": expected an integer, a [height, width] list or an object");
  std::vector<std::string> keys;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.value().is_null()) continue;
    const std::string& k = it.key();
    keys.push_back(k);
    int64_t* slot = k == "height"          ? &s.height
                    : k == "width"         ? &s.width
                    : k == "shortest_edge" ? &s.shortest_edge
                    : k == "longest_edge"  ? &s.longest_edge
                    : k == "max_height"    ? &s.max_height
                    : k == "max_width"     ? &s.max_width
                                           : nullptr;
    LUMEN_CHECK(slot != nullptr, field, ": unknown size key '", k, "'");
    *slot = positive_int(it.value(), field + "." + k);
  }
  const bool hw = s.height && s.width && keys.size() == 2;
  const bool se = s.shortest_edge && (keys.size() == 1 || (keys.size() == 2 && s.longest_edge));
  const bool le = s.longest_edge && keys.size() == 1;
  const bool mhw = s.max_height && s.max_width && keys.size() == 2;
  LUMEN_CHECK(hw || se || le || mhw, field,
              ": must have the keys {height, width}, {shortest_edge}, {shortest_edge, longest_edge}, "
              "{longest_edge} or {max_height, max_width}");
  return s;
}

std::array<double, 3> parse_channels(const nlohmann::json& v, const std::string& field) {
  // numpy normalize: a scalar applies to every channel, a list needs one value per channel.
  if (v.is_number()) {
    const double x = v.get<double>();
    return {x, x, x};
  }
  LUMEN_CHECK(v.is_array() && v.size() == 3, field, ": expected a number or a list of 3 numbers");
  std::array<double, 3> out{};
  for (int c = 0; c < 3; ++c) {
    LUMEN_CHECK(v[c].is_number(), field, "[", c, "]: expected a number");
    out[c] = v[c].get<double>();
  }
  return out;
}

int checked_int(double v, const char* what) {
  LUMEN_CHECK(std::isfinite(v) && v >= 0 && v < 2147483648.0, "resize: ", what, " size ", v, " is out of range");
  return static_cast<int>(v);  // Python int(): truncation toward zero
}

}  // namespace

std::pair<int, int> get_resize_output_image_size(int height, int width, int64_t size, int64_t max_size) {
  const bool width_is_short = width <= height;
  const int64_t short_side = width_is_short ? width : height;
  const int64_t long_side = width_is_short ? height : width;
  int64_t new_short = size;
  // Python: int(requested_new_short * long / short): an exact integer product, true division.
  int64_t new_long = checked_int(static_cast<double>(size * long_side) / static_cast<double>(short_side), "long side");
  if (max_size > 0) {
    LUMEN_CHECK(max_size > size, "resize: max_size = ", max_size,
                " must be strictly greater than the requested size for the smaller edge size = ", size);
    if (new_long > max_size) {
      new_short = checked_int(static_cast<double>(max_size * new_short) / static_cast<double>(new_long), "short side");
      new_long = max_size;
    }
  }
  return width_is_short ? std::make_pair(static_cast<int>(new_long), static_cast<int>(new_short))
                        : std::make_pair(static_cast<int>(new_short), static_cast<int>(new_long));
}

std::pair<int, int> get_size_with_aspect_ratio(int height, int width, int64_t size, int64_t max_size) {
  double raw_size = 0.0;
  bool have_raw = false;
  if (max_size > 0) {
    const double min_original = std::min(height, width);
    const double max_original = std::max(height, width);
    if (max_original / min_original * static_cast<double>(size) > static_cast<double>(max_size)) {
      raw_size = static_cast<double>(max_size) * min_original / max_original;
      size = static_cast<int64_t>(std::nearbyint(raw_size));  // Python round(): half to even
      have_raw = true;
    }
  }
  if ((height <= width && height == size) || (width <= height && width == size)) return {height, width};
  if (width < height) {
    const double oh = have_raw ? raw_size * height / width : static_cast<double>(size * height) / width;
    return {checked_int(oh, "height"), static_cast<int>(size)};
  }
  const double ow = have_raw ? raw_size * width / height : static_cast<double>(size * width) / height;
  return {static_cast<int>(size), checked_int(ow, "width")};
}

std::pair<int, int> get_image_size_for_max_height_width(int height, int width, int64_t max_height, int64_t max_width) {
  const double height_scale = static_cast<double>(max_height) / height;
  const double width_scale = static_cast<double>(max_width) / width;
  const double min_scale = std::min(height_scale, width_scale);
  return {checked_int(height * min_scale, "height"), checked_int(width * min_scale, "width")};
}

ImageProcessor ImageProcessor::from_file(const std::string& path) {
  const nlohmann::json config = JsonView::load_file(path);
  return from_json(config, path);
}

ImageProcessor ImageProcessor::from_json(const nlohmann::json& config, const std::string& label) {
  JsonView view(&config, label);
  LUMEN_CHECK(config.is_object(), label, ": expected a JSON object");
  ImageProcessor p;
  p.label_ = label;
  p.type_ = view.get_string("image_processor_type", "");
  std::string base = base_type(p.type_);
  if (p.type_.empty()) {
    // Configs saved before image processors existed name a feature extractor instead
    // ("CLIPFeatureExtractor" for openai/clip-vit-base-patch32); transformers maps it over.
    const std::string fe = view.get_string("feature_extractor_type", "");
    const std::string suffix = "FeatureExtractor";
    if (fe.size() > suffix.size() && fe.compare(fe.size() - suffix.size(), suffix.size(), suffix) == 0)
      base = fe.substr(0, fe.size() - suffix.size()) + "ImageProcessor";
    p.type_ = fe;
  }
  const ClassDefaults* defaults = nullptr;
  for (const ClassDefaults& d : kSupported)
    if (base == d.type) defaults = &d;
  if (defaults == nullptr) {
    p.unsupported_reason_ = label + ": image_processor_type '" + p.type_ +
                            "' is not supported yet (supported: CLIPImageProcessor, SiglipImageProcessor, "
                            "BlipImageProcessor, LlavaNextImageProcessor)";
    return p;
  }
  p.supported_ = true;

  p.do_resize_ = view.get_bool("do_resize", true);
  p.size_ = defaults->size;
  if (view.has("size")) p.size_ = parse_size(config["size"], defaults->default_to_square, view.field("size"));
  // CLIPImageProcessor.__init__: use_square_size (KOSMOS-2) replaces size by a square of the
  // class default shortest edge.
  if (base == "CLIPImageProcessor" && view.get_bool("use_square_size", false))
    p.size_ = SizeSpec{defaults->size.shortest_edge, defaults->size.shortest_edge, 0, 0, 0, 0};
  if (p.do_resize_)
    LUMEN_CHECK(!(p.size_.longest_edge && !p.size_.shortest_edge), view.field("size"),
                ": {longest_edge} alone is not a size the resize step accepts");
  p.resample_ = view.has("resample") ? resample_from_pil(view.get_int("resample")) : defaults->resample;

  p.do_center_crop_ = view.get_bool("do_center_crop", defaults->do_center_crop);
  SizeSpec crop{defaults->crop, defaults->crop, 0, 0, 0, 0};
  if (view.has("crop_size")) crop = parse_size(config["crop_size"], true, view.field("crop_size"));
  if (p.do_center_crop_) {
    LUMEN_CHECK(crop.height > 0 && crop.width > 0, view.field("crop_size"),
                ": center crop needs a crop_size with height and width");
    p.crop_height_ = static_cast<int>(crop.height);
    p.crop_width_ = static_cast<int>(crop.width);
  }

  if (base == "LlavaNextImageProcessor") {
    // LlavaNextImageProcessorPil._preprocess: the tile side ("patch_size") is crop_size.height,
    // else size.height, else size.shortest_edge; the whole image is resized to
    // (size.height, size.width), else to a square of size.shortest_edge.
    p.anyres_ = true;
    p.do_pad_ = view.get_bool("do_pad", true);
    const int64_t tile = crop.height ? crop.height : p.size_.height ? p.size_.height : p.size_.shortest_edge;
    LUMEN_CHECK(tile > 0, view.field("size"), ": LLaVA-NeXT needs crop_size.height, size.height or size.shortest_edge");
    p.tile_size_ = static_cast<int>(tile);
    if (p.size_.height && p.size_.width) {
      p.base_size_ = {p.size_.height, p.size_.width};
    } else {
      LUMEN_CHECK(p.size_.shortest_edge > 0, view.field("size"),
                  ": LLaVA-NeXT needs {height, width} or {shortest_edge} to resize the whole image");
      p.base_size_ = {p.size_.shortest_edge, p.size_.shortest_edge};
    }
    p.pinpoints_ = kLlavaNextPinpoints;
    if (view.has("image_grid_pinpoints"))
      p.pinpoints_ = parse_grid_pinpoints(config["image_grid_pinpoints"], view.field("image_grid_pinpoints"));
    check_pinpoints_tile(p.pinpoints_, tile, view.field("image_grid_pinpoints"));
  }

  p.norm_.do_rescale = view.get_bool("do_rescale", true);
  p.norm_.rescale_factor = view.get_double("rescale_factor", 1.0 / 255.0);
  p.norm_.do_normalize = view.get_bool("do_normalize", true);
  p.norm_.mean =
      view.has("image_mean") ? parse_channels(config["image_mean"], view.field("image_mean")) : defaults->mean;
  p.norm_.std = view.has("image_std") ? parse_channels(config["image_std"], view.field("image_std")) : defaults->std;
  for (double s : p.norm_.std) LUMEN_CHECK(s != 0.0, view.field("image_std"), ": a standard deviation of 0");
  p.do_convert_rgb_ = view.get_bool("do_convert_rgb", true);
  return p;
}

void ImageProcessor::require_supported() const {
  if (!supported_) throw UnsupportedImageProcessor(unsupported_reason_);
}

std::pair<int, int> ImageProcessor::resize_output_size(int height, int width) const {
  const SizeSpec& s = size_;
  if (s.shortest_edge && s.longest_edge)
    return get_size_with_aspect_ratio(height, width, s.shortest_edge, s.longest_edge);
  if (s.shortest_edge) return get_resize_output_image_size(height, width, s.shortest_edge);
  if (s.max_height && s.max_width) return get_image_size_for_max_height_width(height, width, s.max_height, s.max_width);
  return {static_cast<int>(s.height), static_cast<int>(s.width)};
}

Image ImageProcessor::resize_and_crop(const Image& image) const {
  if (!do_resize_) return do_center_crop_ ? center_crop(image, crop_height_, crop_width_) : image;
  const auto [h, w] = resize_output_size(image.height, image.width);
  Image resized = resize_pil(image, w, h, resample_);
  return do_center_crop_ ? center_crop(resized, crop_height_, crop_width_) : resized;
}

Image ImageProcessor::process_u8(const Image& image) const {
  require_supported();
  LUMEN_CHECK(!anyres_, label_, ": ", type_, " makes several tiles per image; use process_tiles_u8");
  return resize_and_crop(image);
}

// LlavaNextImageProcessorPil.get_image_patches, all on uint8 pixels (the PIL backend keeps
// uint8 until rescale, so the padding is 0 before normalization):
//   best = select_best_resolution((H, W), pinpoints)
//   _resize_for_patching: resize to get_patch_output_size(image, best) with `resample`
//   _pad_for_patching: np.pad with zeros, (best - new) split as divmod(_, 2): the extra pixel
//     goes after (bottom / right)
//   divide_to_patches: tile x tile crops, row-major
//   the whole image resized to base_size_ goes first
std::vector<Image> ImageProcessor::anyres_tiles(const Image& image) const {
  LUMEN_CHECK(image.width > 0 && image.height > 0, label_, ": empty image");
  const ImageSize best = select_best_resolution({image.height, image.width}, pinpoints_);
  const ImageSize fit = patch_output_size({image.height, image.width}, best);
  const Image resized = resize_pil(image, static_cast<int>(fit.width), static_cast<int>(fit.height), resample_);
  // _pad_for_patching recomputes get_patch_output_size on the resized image; that is `fit`
  // again (the limiting side already equals the target side, the other scales by 1.0).
  const int64_t top = (best.height - fit.height) / 2, left = (best.width - fit.width) / 2;
  Image padded;
  padded.width = static_cast<int>(best.width);
  padded.height = static_cast<int>(best.height);
  padded.rgb.assign(static_cast<size_t>(best.width) * best.height * 3, 0);
  const size_t row_bytes = static_cast<size_t>(resized.width) * 3;
  for (int y = 0; y < resized.height; ++y)
    std::memcpy(&padded.rgb[((y + top) * best.width + left) * 3], &resized.rgb[y * row_bytes], row_bytes);

  std::vector<Image> tiles;
  tiles.push_back(resize_pil(image, static_cast<int>(base_size_.width), static_cast<int>(base_size_.height), resample_));
  const int t = tile_size_;  // pinpoints are multiples of it (checked at load)
  for (int ty = 0; ty + t <= padded.height; ty += t)
    for (int tx = 0; tx + t <= padded.width; tx += t) {
      Image tile;
      tile.width = tile.height = t;
      tile.rgb.resize(static_cast<size_t>(t) * t * 3);
      for (int y = 0; y < t; ++y)
        std::memcpy(&tile.rgb[static_cast<size_t>(y) * t * 3], &padded.rgb[((ty + y) * padded.width + tx) * 3],
                    static_cast<size_t>(t) * 3);
      tiles.push_back(std::move(tile));
    }
  return tiles;
}

std::vector<Image> ImageProcessor::process_tiles_u8(const Image& image) const {
  require_supported();
  if (!anyres_) return {resize_and_crop(image)};
  // LlavaNextImageProcessorPil._preprocess: each tile (base included) is resized with `size`
  // and center cropped as configured (a no-op for tiles already S x S in the usual configs).
  std::vector<Image> tiles = anyres_tiles(image);
  for (Image& tile : tiles) tile = resize_and_crop(tile);
  for (const Image& tile : tiles)
    LUMEN_CHECK(tile.width == tiles[0].width && tile.height == tiles[0].height, label_, ": tiles of ", tile.width, "x",
                tile.height, " and ", tiles[0].width, "x", tiles[0].height,
                " after resize/crop; LLaVA-NeXT needs size and crop_size to give one tile shape");
  return tiles;
}

Tensor ImageProcessor::preprocess(const Image& image) const {
  require_supported();
  if (!anyres_) return normalize(resize_and_crop(image));
  const std::vector<Image> tiles = process_tiles_u8(image);
  const int64_t th = tiles[0].height, tw = tiles[0].width;
  Tensor out = Tensor::zeros(DType::F32, {1, static_cast<int64_t>(tiles.size()), 3, th, tw});  // [1, tiles, 3, S, S]
  const size_t per_tile = static_cast<size_t>(3 * th * tw);
  for (size_t i = 0; i < tiles.size(); ++i) {
    const Tensor t = normalize(tiles[i]);  // [1, 3, S, S]
    std::memcpy(out.data<float>() + i * per_tile, t.data<float>(), per_tile * sizeof(float));
  }
  return out;
}

ProcessedImages ImageProcessor::process(const std::vector<Image>& images) const {
  require_supported();
  LUMEN_CHECK(!images.empty(), label_, ": no images to process");
  std::vector<Tensor> each;  // [1, 3, H, W] or [1, tiles, 3, S, S]
  for (const Image& img : images) each.push_back(preprocess(img));
  // Every image must give the same shape, except LLaVA-NeXT's tile count (dim 1) with do_pad.
  const Shape& first = each[0].shape();
  int64_t max_tiles = 0;
  for (size_t i = 0; i < each.size(); ++i) {
    const Shape& s = each[i].shape();
    const bool ok = anyres_ ? std::equal(s.begin() + 2, s.end(), first.begin() + 2) && (do_pad_ || s[1] == first[1])
                            : s == first;
    LUMEN_CHECK(ok, label_, ": image ", i, " gives pixel values ", shape_str(s), ", image 0 gives ", shape_str(first),
                anyres_ ? " (different tile counts need do_pad)" : " (a batch needs one size)");
    if (anyres_) max_tiles = std::max(max_tiles, s[1]);
  }
  Shape item(first.begin() + 1, first.end());  // one image's shape without the leading 1
  ProcessedImages out;
  // LlavaNextImageProcessorPil._pad_for_batching: zero tiles (after normalization) at the end.
  if (anyres_) item[0] = max_tiles;
  Shape batch{static_cast<int64_t>(images.size())};
  batch.insert(batch.end(), item.begin(), item.end());
  out.pixel_values = Tensor::zeros(DType::F32, batch);
  const size_t stride = static_cast<size_t>(shape_numel(item));
  for (size_t i = 0; i < each.size(); ++i)
    std::memcpy(out.pixel_values.data<float>() + i * stride, each[i].data<float>(), each[i].nbytes());
  if (anyres_) {
    std::vector<int64_t> sizes;
    for (const Image& img : images) {
      sizes.push_back(img.height);
      sizes.push_back(img.width);
    }
    out.image_sizes = Tensor::from_ids(sizes, {static_cast<int64_t>(images.size()), 2});
  }
  return out;
}

Tensor ImageProcessor::preprocess_file(const std::string& image_path, const DecodeOptions& options) const {
  require_supported();
  return preprocess(decode_image_file(image_path, options));
}

Tensor preprocess_image_file(const std::string& config_path, const std::string& image_path,
                             const DecodeOptions& options) {
  return ImageProcessor::from_file(config_path).preprocess_file(image_path, options);
}

}  // namespace lumen

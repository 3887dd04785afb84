#include "vision/image_processor.h"

#include <cmath>

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
};

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
                            "BlipImageProcessor)";
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

Image ImageProcessor::process_u8(const Image& image) const {
  require_supported();
  if (!do_resize_) return do_center_crop_ ? center_crop(image, crop_height_, crop_width_) : image;
  const auto [h, w] = resize_output_size(image.height, image.width);
  Image resized = resize_pil(image, w, h, resample_);
  return do_center_crop_ ? center_crop(resized, crop_height_, crop_width_) : resized;
}

Tensor ImageProcessor::preprocess(const Image& image) const { return normalize(process_u8(image)); }

Tensor ImageProcessor::preprocess_file(const std::string& image_path, const DecodeOptions& options) const {
  require_supported();
  return preprocess(decode_image_file(image_path, options));
}

Tensor preprocess_image_file(const std::string& config_path, const std::string& image_path,
                             const DecodeOptions& options) {
  return ImageProcessor::from_file(config_path).preprocess_file(image_path, options);
}

}  // namespace lumen

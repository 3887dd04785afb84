// Image decoding and preprocessing against PIL / transformers references.
// Data: tests/data/preprocess/, built by scripts/make_vision_test_data.py from the golden
// fixtures (preprocess/) and, for cases the fixtures lack, from PIL on the build machine.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "formats/json_config.h"
#include "formats/safetensors.h"
#include "vision/anyres.h"
#include "vision/exif.h"
#include "vision/image.h"
#include "vision/image_processor.h"
#include "vision/resize.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(LUMEN_TEST_DATA) + "/preprocess";
const char* kProcessors[] = {"clip_224", "clip_336", "siglip_224", "blip_384"};

std::string gunzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) fail(path, ": cannot open");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  const bool ok = n == 0;
  gzclose(f);
  if (!ok) fail(path, ": gzip read error");
  return out;
}

// A "*.st.gz" reference file: gzip'd safetensors whose U8 arrays are delta2d-filtered
// (see the script); image() undoes the filter with a 2-D prefix sum.
class RefFile {
 public:
  explicit RefFile(const std::string& path) : bytes_(std::make_shared<std::string>(gunzip_file(path))) {
    file_ = SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes_->data()), bytes_->size(), path, bytes_);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : file_->entries()) out.push_back(name);
    return out;
  }
  bool has(const std::string& name) const { return file_->has(name); }
  Tensor tensor(const std::string& name) const { return file_->get(name); }
  Image image(const std::string& name) const {
    Tensor t = file_->get(name);
    EXPECT_EQ(t.ndim(), 3);
    EXPECT_EQ(t.dim(2), 3);
    Image img;
    img.height = static_cast<int>(t.dim(0));
    img.width = static_cast<int>(t.dim(1));
    img.rgb.assign(t.data<uint8_t>(), t.data<uint8_t>() + t.numel());
    const size_t stride = static_cast<size_t>(img.width) * 3;
    for (int y = 0; y < img.height; ++y)
      for (size_t i = 0; i < stride; ++i) {
        const size_t at = y * stride + i;
        int v = img.rgb[at];
        if (y > 0) v += img.rgb[at - stride];
        if (i >= 3) v += img.rgb[at - 3];
        if (y > 0 && i >= 3) v -= img.rgb[at - stride - 3];
        img.rgb[at] = static_cast<uint8_t>(v & 255);
      }
    return img;
  }

 private:
  std::shared_ptr<std::string> bytes_;
  std::shared_ptr<SafetensorsFile> file_;
};

// Empty when equal, else sizes / number of differing bytes / largest difference / first one.
std::string compare_images(const Image& got, const Image& want) {
  if (got.width != want.width || got.height != want.height)
    return "size " + std::to_string(got.width) + "x" + std::to_string(got.height) + ", want " +
           std::to_string(want.width) + "x" + std::to_string(want.height);
  if (got.rgb.size() != want.rgb.size()) return "buffer size differs";
  size_t bad = 0, first = 0;
  int worst = 0;
  for (size_t i = 0; i < got.rgb.size(); ++i) {
    const int d = std::abs(int(got.rgb[i]) - int(want.rgb[i]));
    if (d && !bad++) first = i;
    worst = std::max(worst, d);
  }
  if (!bad) return "";
  const size_t px = first / 3;
  return std::to_string(bad) + " of " + std::to_string(got.rgb.size()) + " values differ, max " +
         std::to_string(worst) + ", first at (x=" + std::to_string(px % got.width) +
         ", y=" + std::to_string(px / got.width) + ", c=" + std::to_string(first % 3) + ")";
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  const std::string s = read_file(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

Image decode(const std::vector<uint8_t>& bytes, const DecodeOptions& options = {}) {
  return decode_image_bytes(bytes.data(), bytes.size(), options, "test bytes");
}

std::string image_path_for(const std::string& stem) {
  for (const char* ext : {".png", ".jpg", ".jpeg", ".webp"})
    if (fs::exists(kDir + "/images/" + stem + ext)) return kDir + "/images/" + stem + ext;
  return "";
}

// ---------------------------------------------------------------- decoding vs the fixture

TEST(VisionDecode, MatchesPilDecodedFixture) {
  RefFile ref(kDir + "/decoded_rgb.st.gz");
  int checked = 0;
  for (const std::string& name : ref.names()) {
    const bool crc_only = name.size() > 6 && name.compare(name.size() - 6, 6, ".crc32") == 0;
    const std::string stem = crc_only ? name.substr(0, name.size() - 6) : name;
    const std::string path = image_path_for(stem);
    ASSERT_FALSE(path.empty()) << stem;
    const Image got = decode_image_file(path);
    if (crc_only) {
      // [crc32, H, W] of PIL's decoded array (large RGB PNGs: the array is the PNG itself).
      const Tensor t = ref.tensor(name);
      const int64_t* want = t.data<int64_t>();
      EXPECT_EQ(got.height, want[1]) << stem;
      EXPECT_EQ(got.width, want[2]) << stem;
      const uint32_t crc = crc32(0, got.rgb.data(), static_cast<uInt>(got.rgb.size()));
      EXPECT_EQ(static_cast<int64_t>(crc), want[0]) << stem << ": decoded pixels differ from PIL's";
    } else {
      EXPECT_EQ(compare_images(got, ref.image(name)), "") << stem;
    }
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

// ---------------------------------------------------------------- processors vs the fixture

// normalize(rescale(u8)) exactly as transformers' numpy code (image_transforms.rescale,
// normalize), written out here independently of to_pixel_values.
float reference_normalize(uint8_t v, double rescale_factor, double mean, double std) {
  const float x = static_cast<float>(static_cast<double>(v) * rescale_factor);
  const float centered = x - static_cast<float>(mean);
  return centered / static_cast<float>(std);
}

TEST(VisionPreprocess, ReproducesSlowProcessorsExactly) {
  int checked = 0;
  for (const char* proc : kProcessors) {
    const std::string dir = kDir + "/" + proc;
    const ImageProcessor p = ImageProcessor::from_file(dir + "/preprocessor_config.json");
    ASSERT_TRUE(p.supported()) << proc;
    const nlohmann::json cfg = JsonView::load_file(dir + "/preprocessor_config.json");
    RefFile ref(dir + "/expected_u8.st.gz");
    for (const std::string& stem : ref.names()) {
      SCOPED_TRACE(std::string(proc) + "/" + stem);
      const Image want = ref.image(stem);
      const Image decoded = decode_image_file(image_path_for(stem));
      // 1. The uint8 image after resize + center crop, bit-exact.
      const Image got = p.process_u8(decoded);
      EXPECT_EQ(compare_images(got, want), "");
      // 2. The float pixel values, within 1e-5 of normalize(reference uint8).
      const Tensor pv = p.preprocess(decoded);
      ASSERT_EQ(pv.shape(), (Shape{1, 3, want.height, want.width}));
      const float* o = pv.data<float>();
      const size_t plane = static_cast<size_t>(want.width) * want.height;
      const double rescale = cfg["rescale_factor"].get<double>();
      double worst = 0;
      for (int c = 0; c < 3; ++c) {
        const double mean = cfg["image_mean"][c].get<double>(), std = cfg["image_std"][c].get<double>();
        for (size_t i = 0; i < plane; ++i) {
          const float e = reference_normalize(want.rgb[i * 3 + c], rescale, mean, std);
          worst = std::max(worst, std::abs(double(o[c * plane + i]) - double(e)));
        }
      }
      EXPECT_LE(worst, 1e-5);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 18);  // every fixture entry of the four processors
}

TEST(VisionPreprocess, PreprocessImageFileIsTheVerifyEntryPoint) {
  const std::string dir = kDir + "/clip_224";
  RefFile ref(dir + "/expected_u8.st.gz");
  const Image want = ref.image("photo_640x427");
  const Tensor pv = preprocess_image_file(dir + "/preprocessor_config.json", image_path_for("photo_640x427"));
  const Tensor again = ImageProcessor::from_file(dir + "/preprocessor_config.json").normalize(want);
  ASSERT_EQ(pv.shape(), again.shape());
  EXPECT_EQ(std::memcmp(pv.raw(), again.raw(), pv.nbytes()), 0);
}

TEST(VisionPreprocess, UnsupportedTypesAreDetected) {
  for (const char* proc : {"pix2struct_256"}) {
    const std::string cfg = kDir + "/" + proc + "/preprocessor_config.json";
    const ImageProcessor p = ImageProcessor::from_file(cfg);
    EXPECT_FALSE(p.supported()) << proc;
    EXPECT_NE(p.unsupported_reason().find(p.type()), std::string::npos) << p.unsupported_reason();
    Image img;
    img.width = img.height = 4;
    img.rgb.assign(48, 7);
    EXPECT_THROW(p.preprocess(img), UnsupportedImageProcessor) << proc;
    EXPECT_THROW(preprocess_image_file(cfg, image_path_for("grad_37x53")), UnsupportedImageProcessor) << proc;
  }
}

// ---------------------------------------------------------------- LLaVA-NeXT (AnyRes)

// Crc32 of a decoded image's pixels, as the "*.crc32" reference entries store it.
int64_t pixels_crc(const Image& img) {
  return static_cast<int64_t>(crc32(0, img.rgb.data(), static_cast<uInt>(img.rgb.size())));
}

// A LLaVA-NeXT reference holds "<prefix>tile<i>" images (or "<prefix>tile<i>.crc32" =
// [crc32, H, W]) and "<prefix>image_sizes"; prefix is "<stem>/" or empty.
int count_tiles(const RefFile& ref, const std::string& prefix) {
  int n = 0;
  while (ref.has(prefix + "tile" + std::to_string(n)) || ref.has(prefix + "tile" + std::to_string(n) + ".crc32")) ++n;
  return n;
}

TEST(VisionLlavaNext, ReproducesSlowProcessorExactly) {
  const std::string dir = kDir + "/llava_next_336";
  const ImageProcessor p = ImageProcessor::from_file(dir + "/preprocessor_config.json");
  ASSERT_TRUE(p.supported());
  ASSERT_TRUE(p.is_anyres());
  EXPECT_EQ(p.tile_size(), 336);
  EXPECT_TRUE(p.do_pad());
  EXPECT_EQ(p.image_grid_pinpoints().size(), 5u);
  const nlohmann::json cfg = JsonView::load_file(dir + "/preprocessor_config.json");
  RefFile ref(dir + "/expected_u8.st.gz");
  int checked = 0;
  for (const std::string& name : ref.names()) {
    const size_t slash = name.find('/');
    if (name.substr(slash + 1) != "image_sizes") continue;
    const std::string stem = name.substr(0, slash);
    SCOPED_TRACE(stem);
    const Image decoded = decode_image_file(image_path_for(stem));
    // 1. Every uint8 tile (base image, then the grid row-major), bit-exact.
    const std::vector<Image> tiles = p.process_tiles_u8(decoded);
    ASSERT_EQ(static_cast<int>(tiles.size()), count_tiles(ref, stem + "/"));
    EXPECT_EQ(static_cast<int64_t>(tiles.size()),
              anyres_num_tiles({decoded.height, decoded.width}, p.image_grid_pinpoints(), p.tile_size()));
    for (size_t i = 0; i < tiles.size(); ++i) {
      const std::string key = stem + "/tile" + std::to_string(i);
      if (ref.has(key)) {
        EXPECT_EQ(compare_images(tiles[i], ref.image(key)), "") << key;
      } else {
        const Tensor want = ref.tensor(key + ".crc32");  // [crc32, H, W]
        EXPECT_EQ(tiles[i].height, want.data<int64_t>()[1]) << key;
        EXPECT_EQ(tiles[i].width, want.data<int64_t>()[2]) << key;
        EXPECT_EQ(pixels_crc(tiles[i]), want.data<int64_t>()[0]) << key << ": tile pixels differ";
      }
    }
    // 2. pixel_values [1, tiles, 3, 336, 336] = normalize(each tile), and image_sizes.
    const ProcessedImages out = p.process({decoded});
    ASSERT_EQ(out.pixel_values.shape(), (Shape{1, static_cast<int64_t>(tiles.size()), 3, 336, 336}));
    const size_t plane = 336 * 336;
    const float* o = out.pixel_values.data<float>();
    double worst = 0;
    for (size_t t = 0; t < tiles.size(); ++t)
      for (int c = 0; c < 3; ++c) {
        const double mean = cfg["image_mean"][c].get<double>(), std = cfg["image_std"][c].get<double>();
        for (size_t i = 0; i < plane; ++i) {
          const float e = reference_normalize(tiles[t].rgb[i * 3 + c], cfg["rescale_factor"].get<double>(), mean, std);
          worst = std::max(worst, std::abs(double(o[(t * 3 + c) * plane + i]) - double(e)));
        }
      }
    EXPECT_EQ(worst, 0.0);
    const Tensor sizes = ref.tensor(name);
    ASSERT_EQ(out.image_sizes.shape(), (Shape{1, 2}));
    EXPECT_EQ(out.image_sizes.data<int64_t>()[0], sizes.data<int64_t>()[0]);
    EXPECT_EQ(out.image_sizes.data<int64_t>()[1], sizes.data<int64_t>()[1]);
    // preprocess() is the same tensor.
    const Tensor single = p.preprocess(decoded);
    ASSERT_EQ(single.shape(), out.pixel_values.shape());
    EXPECT_EQ(std::memcmp(single.raw(), out.pixel_values.raw(), single.nbytes()), 0);
    ++checked;
  }
  EXPECT_EQ(checked, 4);  // the four images the fixture runs LLaVA-NeXT on
}

// The llava_next_forward case's pixel_values come from a synthetic image the fixtures do not
// ship (FORMAT.md 5.4 gives only its size), so its pixels cannot be reproduced. What can be:
// the tile count, image_sizes, and where the zero padding of the AnyRes canvas lies, which a
// uniform image of the same size shows exactly.
TEST(VisionLlavaNext, ForwardFixtureLayout) {
  const std::string dir = kDir + "/llava_next_forward";
  const ImageProcessor p = ImageProcessor::from_file(dir + "/preprocessor_config.json");
  const nlohmann::json meta = JsonView::load_file(dir + "/meta.json");
  RefFile ref(dir + "/expected_u8.st.gz");
  const int W = meta["source_image_wh"][0].get<int>(), H = meta["source_image_wh"][1].get<int>();
  Image uniform;
  uniform.width = W;
  uniform.height = H;
  uniform.rgb.assign(static_cast<size_t>(W) * H * 3, 200);
  const std::vector<Image> ours = p.process_tiles_u8(uniform);
  const int n = count_tiles(ref, "");
  ASSERT_EQ(static_cast<int>(ours.size()), n);
  const ProcessedImages out = p.process({uniform});
  const Tensor want_sizes = ref.tensor("image_sizes");
  ASSERT_EQ(out.image_sizes.shape(), want_sizes.shape());
  EXPECT_EQ(std::memcmp(out.image_sizes.raw(), want_sizes.raw(), want_sizes.nbytes()), 0);
  EXPECT_EQ(out.pixel_values.shape(), (Shape{1, n, 3, p.tile_size(), p.tile_size()}));
  // Reassemble the grid tiles (1..n-1, row-major) into the canvas, for the fixture and for us,
  // and compare which canvas rows and columns are entirely zero (padding).
  const ImageSize best = select_best_resolution({H, W}, p.image_grid_pinpoints());
  const int64_t cols = best.width / p.tile_size(), t = p.tile_size();
  auto zero_lines = [&](auto tile_at) {
    std::vector<bool> row_zero(best.height, true), col_zero(best.width, true);
    for (int64_t k = 0; k + 1 < n; ++k) {
      const Image tile = tile_at(k + 1);
      for (int y = 0; y < t; ++y)
        for (int x = 0; x < t; ++x)
          for (int c = 0; c < 3; ++c)
            if (tile.at(x, y, c) != 0) {
              row_zero[(k / cols) * t + y] = false;
              col_zero[(k % cols) * t + x] = false;
            }
    }
    return std::make_pair(row_zero, col_zero);
  };
  const auto want = zero_lines([&](int64_t i) { return ref.image("tile" + std::to_string(i)); });
  const auto got = zero_lines([&](int64_t i) { return ours[i]; });
  EXPECT_EQ(got.first, want.first);
  EXPECT_EQ(got.second, want.second);
  // The 66x40 image fits the 56x56 canvas as 56x34: 11 zero rows above and below.
  const ImageSize fit = patch_output_size({H, W}, best);
  int zero_rows = 0;
  for (bool z : want.first) zero_rows += z;
  EXPECT_EQ(zero_rows, best.height - fit.height);
  EXPECT_GT(zero_rows, 0);
}

TEST(VisionLlavaNext, BatchPadsTileCounts) {
  const std::string cfg_path = kDir + "/llava_next_336/preprocessor_config.json";
  const ImageProcessor p = ImageProcessor::from_file(cfg_path);
  const Image tall = decode_image_file(image_path_for("grad_37x53"));      // 3 tiles
  const Image photo = decode_image_file(image_path_for("photo_640x427"));  // 5 tiles
  const ProcessedImages out = p.process({tall, photo});
  ASSERT_EQ(out.pixel_values.shape(), (Shape{2, 5, 3, 336, 336}));
  const size_t tile = 3 * 336 * 336;
  const Tensor a = p.preprocess(tall), b = p.preprocess(photo);
  const float* pv = out.pixel_values.data<float>();
  EXPECT_EQ(std::memcmp(pv, a.data<float>(), a.nbytes()), 0);
  for (size_t i = 3 * tile; i < 5 * tile; ++i) ASSERT_EQ(pv[i], 0.0f) << "padding tile value at " << i;
  EXPECT_EQ(std::memcmp(pv + 5 * tile, b.data<float>(), b.nbytes()), 0);
  ASSERT_EQ(out.image_sizes.shape(), (Shape{2, 2}));
  const int64_t* sz = out.image_sizes.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(sz, sz + 4), (std::vector<int64_t>{53, 37, 427, 640}));

  // Without do_pad, images must make the same number of tiles.
  nlohmann::json cfg = JsonView::load_file(cfg_path);
  cfg["do_pad"] = false;
  const ImageProcessor no_pad = ImageProcessor::from_json(cfg, "no_pad.json");
  EXPECT_THROW(no_pad.process({tall, photo}), Error);
  EXPECT_EQ(no_pad.process({tall, tall}).pixel_values.shape(), (Shape{2, 3, 3, 336, 336}));
  // The fixed-size processors batch as [N, 3, H, W] and have no image_sizes.
  const ImageProcessor clip = ImageProcessor::from_file(kDir + "/clip_224/preprocessor_config.json");
  const ProcessedImages c = clip.process({tall, photo});
  EXPECT_EQ(c.pixel_values.shape(), (Shape{2, 3, 224, 224}));
  EXPECT_FALSE(c.image_sizes.defined());
  EXPECT_FALSE(clip.is_anyres());
}

TEST(VisionLlavaNext, ConfigErrors) {
  const nlohmann::json base = JsonView::load_file(kDir + "/llava_next_336/preprocessor_config.json");
  auto error_of = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json cfg = base;
    if (value.is_null()) {
      cfg.erase(key);
    } else {
      cfg[key] = value;
    }
    try {
      ImageProcessor::from_json(cfg, "llava.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("image_grid_pinpoints", nlohmann::json::array()).find("llava.json: image_grid_pinpoints"),
            std::string::npos);
  EXPECT_NE(error_of("image_grid_pinpoints", "[(336, 672)]").find("expected a list"), std::string::npos);
  EXPECT_NE(error_of("image_grid_pinpoints", nlohmann::json::parse("[[336, 672], [336]]")).find("[1]"),
            std::string::npos);
  EXPECT_NE(error_of("image_grid_pinpoints", nlohmann::json::parse("[[336, 600]]")).find("not a multiple of the tile size 336"),
            std::string::npos);
  EXPECT_NE(error_of("crop_size", nlohmann::json{{"height", 320}, {"width", 320}}).find("not a multiple"),
            std::string::npos);
  EXPECT_NE(error_of("image_grid_pinpoints", nlohmann::json::parse("[[20000, 20000]]")).find("larger than"),
            std::string::npos);
  // Left out, the pinpoints are the class default (llava-v1.6).
  nlohmann::json cfg = base;
  cfg.erase("image_grid_pinpoints");
  EXPECT_EQ(ImageProcessor::from_json(cfg, "x.json").image_grid_pinpoints(),
            (std::vector<ImageSize>{{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}}));

  const ImageProcessor p = ImageProcessor::from_json(base, "llava.json");
  Image img;
  img.width = img.height = 4;
  img.rgb.assign(48, 9);
  EXPECT_THROW(p.process_u8(img), Error);  // several tiles: process_tiles_u8
  EXPECT_EQ(p.process_tiles_u8(img).size(), 3u);
  EXPECT_THROW(p.process({}), Error);
  // Huge images stop at the decoder's pixel limit, before any tiling.
  DecodeOptions small;
  small.max_pixels = 1000;
  try {
    p.preprocess_file(image_path_for("photo_640x427"), small);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_pixels"), std::string::npos) << e.what();
  }
}

TEST(VisionPreprocess, ConfigDefaultsAndErrors) {
  // Fields left out take the class defaults of transformers' CLIPImageProcessorPil.
  const ImageProcessor clip =
      ImageProcessor::from_json(nlohmann::json{{"image_processor_type", "CLIPImageProcessor"}}, "x.json");
  EXPECT_EQ(clip.resample(), Resample::Bicubic);
  EXPECT_EQ(clip.size().shortest_edge, 224);
  EXPECT_TRUE(clip.do_center_crop());
  // An integer size is a shortest edge for CLIP and a square for BLIP (default_to_square).
  const ImageProcessor clip_int = ImageProcessor::from_json(
      nlohmann::json{{"image_processor_type", "CLIPImageProcessorFast"}, {"size", 32}}, "x.json");
  EXPECT_EQ(clip_int.size().shortest_edge, 32);
  const ImageProcessor blip_int =
      ImageProcessor::from_json(nlohmann::json{{"image_processor_type", "BlipImageProcessor"}, {"size", 32}}, "x.json");
  EXPECT_EQ(blip_int.size().height, 32);
  EXPECT_EQ(blip_int.size().width, 32);
  EXPECT_THROW(ImageProcessor::from_json(
                   nlohmann::json{{"image_processor_type", "CLIPImageProcessor"}, {"resample", 9}}, "x.json"),
               Error);
  EXPECT_THROW(ImageProcessor::from_json(
                   nlohmann::json{{"image_processor_type", "CLIPImageProcessor"}, {"size", {{"edge", 3}}}}, "x.json"),
               Error);
  EXPECT_THROW(
      ImageProcessor::from_json(
          nlohmann::json{{"image_processor_type", "CLIPImageProcessor"}, {"image_mean", {0.5, 0.5}}}, "x.json"),
      Error);
  EXPECT_FALSE(ImageProcessor::from_json(nlohmann::json::object(), "x.json").supported());
  // Legacy configs (openai/clip-vit-base-patch32): feature_extractor_type and integer sizes.
  const ImageProcessor legacy = ImageProcessor::from_json(
      nlohmann::json{{"feature_extractor_type", "CLIPFeatureExtractor"}, {"size", 224}, {"crop_size", 224}}, "x.json");
  EXPECT_TRUE(legacy.supported());
  EXPECT_EQ(legacy.size().shortest_edge, 224);
  EXPECT_EQ(legacy.crop_height(), 224);
  EXPECT_EQ(legacy.crop_width(), 224);
}

TEST(VisionPreprocess, ShortestEdgeOutputSize) {
  // transformers: new_long = int(size * long / short), returned as (height, width).
  EXPECT_EQ(get_resize_output_image_size(427, 640, 224), std::make_pair(224, 335));  // 224*640/427 = 335.7
  EXPECT_EQ(get_resize_output_image_size(500, 333, 224), std::make_pair(336, 224));  // 224*500/333 = 336.3
  EXPECT_EQ(get_resize_output_image_size(200, 1000, 336), std::make_pair(336, 1680));
  EXPECT_EQ(get_resize_output_image_size(53, 37, 224), std::make_pair(320, 224));  // 224*53/37 = 320.9
  EXPECT_EQ(get_resize_output_image_size(100, 100, 7), std::make_pair(7, 7));
  // max_size clamps the long side: int(50 * 20 / 100) = 10.
  EXPECT_EQ(get_resize_output_image_size(10, 50, 20, 50), std::make_pair(10, 50));
}

// ---------------------------------------------------------------- extra PIL references

class VisionExtra : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ref_ = new RefFile(kDir + "/extra/expected.st.gz"); }
  static void TearDownTestSuite() {
    delete ref_;
    ref_ = nullptr;
  }
  static Image decode_extra(const std::string& file, const DecodeOptions& options = {}) {
    return decode_image_file(kDir + "/extra/" + file, options);
  }
  static RefFile* ref_;
};
RefFile* VisionExtra::ref_ = nullptr;

TEST_F(VisionExtra, ExifOrientationInJpeg) {
  for (int o = 1; o <= 8; ++o) {
    const std::string name = "orient_" + std::to_string(o);
    EXPECT_EQ(compare_images(decode_extra(name + ".jpg"), ref_->image(name)), "") << name;
  }
  EXPECT_EQ(compare_images(decode_extra("orient_6_motorola.jpg"), ref_->image("orient_6_motorola")), "");
  EXPECT_EQ(compare_images(decode_extra("orient_xmp_8.jpg"), ref_->image("orient_xmp_8")), "");
  // With orientation off, every file decodes to the stored (untransposed) pixels.
  DecodeOptions raw;
  raw.apply_exif_orientation = false;
  EXPECT_EQ(compare_images(decode_extra("orient_6.jpg", raw), ref_->image("orient_1")), "");
}

TEST_F(VisionExtra, ExifOrientationInPngAndWebp) {
  EXPECT_EQ(compare_images(decode_extra("orient_6.png"), ref_->image("orient_6_png")), "");
  EXPECT_EQ(compare_images(decode_extra("orient_xmp_3.png"), ref_->image("orient_xmp_3_png")), "");
  EXPECT_EQ(compare_images(decode_extra("webp_orient_8.webp"), ref_->image("webp_orient_8")), "");
}

TEST_F(VisionExtra, ApplyOrientationMatchesPilTransposes) {
  // orient_1 is the plain image; PIL's exif_transpose of orient_<o> is its transposition.
  const Image plain = ref_->image("orient_1");
  for (int o = 2; o <= 8; ++o)
    EXPECT_EQ(compare_images(apply_orientation(plain, o), ref_->image("orient_" + std::to_string(o))), "") << o;
}

TEST_F(VisionExtra, PngColourTypesAndBitDepths) {
  DecodeOptions composite;
  composite.alpha = AlphaMode::CompositeOnWhite;
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(kDir + "/extra")) {
    const std::string file = entry.path().filename().string();
    if (entry.path().extension() != ".png" || file.rfind("orient", 0) == 0 || file == "resize_src.png") continue;
    const std::string stem = entry.path().stem().string();
    EXPECT_EQ(compare_images(decode_extra(file), ref_->image(stem)), "") << file;
    EXPECT_EQ(compare_images(decode_extra(file, composite), ref_->image(stem + "_composite")), "")
        << file << " composite";
    ++checked;
  }
  EXPECT_GE(checked, 16);
}

TEST_F(VisionExtra, RgbaFixtureAlphaModes) {
  // transformers 5 drops alpha (checked against decoded_rgb above); 4.x composited on white.
  DecodeOptions composite;
  composite.alpha = AlphaMode::CompositeOnWhite;
  EXPECT_EQ(compare_images(decode_image_file(kDir + "/images/rgba_96x64.png", composite),
                           ref_->image("rgba_96x64_composite")),
            "");
}

TEST_F(VisionExtra, Webp) {
  DecodeOptions composite;
  composite.alpha = AlphaMode::CompositeOnWhite;
  for (const char* stem : {"webp_lossy", "webp_lossy_alpha", "webp_lossless"})
    EXPECT_EQ(compare_images(decode_extra(std::string(stem) + ".webp"), ref_->image(stem)), "") << stem;
  for (const char* stem : {"webp_lossy_alpha", "webp_lossless"})
    EXPECT_EQ(compare_images(decode_extra(std::string(stem) + ".webp", composite),
                             ref_->image(std::string(stem) + "_composite")),
              "")
        << stem;
}

TEST_F(VisionExtra, ResizeEveryFilterMatchesPil) {
  const Image src = decode_extra("resize_src.png");
  const Image grad = decode_image_file(kDir + "/images/grad_333x500.png");
  const std::pair<const char*, Resample> filters[] = {{"nearest", Resample::Nearest},   {"lanczos", Resample::Lanczos},
                                                      {"bilinear", Resample::Bilinear}, {"bicubic", Resample::Bicubic},
                                                      {"box", Resample::Box},           {"hamming", Resample::Hamming}};
  int checked = 0;
  for (const std::string& name : ref_->names()) {
    if (name.rfind("resize_", 0) != 0) continue;
    for (const auto& [fname, filter] : filters) {
      const std::string prefix = std::string("resize_") + fname + "_";
      if (name.rfind(prefix, 0) != 0) continue;
      const Image want = ref_->image(name);
      const bool from_grad = name.find("_grad_") != std::string::npos;
      const Image got = resize_pil(from_grad ? grad : src, want.width, want.height, filter);
      EXPECT_EQ(compare_images(got, want), "") << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6 * 8);
}

TEST_F(VisionExtra, CenterCropMatchesTransformers) {
  const Image src = ref_->image("crop_src");
  int checked = 0;
  for (const std::string& name : ref_->names()) {
    if (name.rfind("crop_", 0) != 0 || name == "crop_src") continue;
    const Image want = ref_->image(name);
    EXPECT_EQ(compare_images(center_crop(src, want.height, want.width), want), "") << name;
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

// ---------------------------------------------------------------- bad input

void expect_error(const std::vector<uint8_t>& bytes, const std::string& must_contain, const DecodeOptions& o = {}) {
  try {
    decode_image_bytes(bytes.data(), bytes.size(), o, "bad.img");
    ADD_FAILURE() << "no error; wanted one containing '" << must_contain << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.img"), std::string::npos) << msg;
    EXPECT_NE(msg.find(must_contain), std::string::npos) << msg;
  }
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

std::vector<uint8_t> png_with_size(uint32_t width, uint32_t height) {
  // Signature + IHDR (8-bit RGB) with a valid CRC + an empty IDAT + IEND.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto chunk = [&](const char* type, const std::vector<uint8_t>& body) {
    const uint32_t n = static_cast<uint32_t>(body.size());
    for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(n >> s));
    std::vector<uint8_t> tb(type, type + 4);
    tb.insert(tb.end(), body.begin(), body.end());
    png.insert(png.end(), tb.begin(), tb.end());
    const uint32_t crc = crc32(0, tb.data(), static_cast<uInt>(tb.size()));
    for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(crc >> s));
  };
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {width, height})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(uint8_t(v >> s));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  chunk("IHDR", ihdr);
  chunk("IDAT", {});
  chunk("IEND", {});
  return png;
}

TEST(VisionBadInput, EmptyUnknownAndRandom) {
  expect_error({}, "empty");
  expect_error({'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0}, "unknown image format");
  expect_error({'B', 'M', 0, 0, 0, 0}, "unknown image format");
  std::mt19937 rng(7);
  std::vector<uint8_t> noise(4096);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  expect_error(noise, "unknown image format");
  // Random bytes behind each valid magic.
  for (std::vector<uint8_t> magic :
       {std::vector<uint8_t>{0xFF, 0xD8, 0xFF}, std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'},
        std::vector<uint8_t>{'R', 'I', 'F', 'F', 0, 1, 0, 0, 'W', 'E', 'B', 'P'}}) {
    std::vector<uint8_t> bytes = magic;
    bytes.insert(bytes.end(), noise.begin(), noise.end());
    EXPECT_THROW(decode(bytes), Error);
  }
}

TEST(VisionBadInput, ZeroByteAndMissingFiles) {
  const std::string path = ::testing::TempDir() + "/lumen_vision_empty.jpg";
  { std::ofstream(path, std::ios::binary); }
  try {
    decode_image_file(path);
    ADD_FAILURE() << "no error for a 0-byte file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
  EXPECT_THROW(decode_image_file(kDir + "/images/does_not_exist.png"), Error);
}

TEST(VisionBadInput, TruncatedJpegAndPng) {
  for (const std::string name : {"photo_640x427.jpg", "grad_37x53.png", "rgba_96x64.png"}) {
    const std::vector<uint8_t> full = file_bytes(kDir + "/images/" + name);
    for (size_t keep : {size_t(3), size_t(20), size_t(200), full.size() / 3, full.size() / 2, full.size() - 40}) {
      std::vector<uint8_t> cut(full.begin(), full.begin() + keep);
      try {
        decode_image_bytes(cut.data(), cut.size(), {}, name);
        ADD_FAILURE() << name << " cut to " << keep << " bytes decoded without error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      }
    }
  }
  // The precise reason for a JPEG that stops mid-scan.
  const std::vector<uint8_t> jpg = file_bytes(kDir + "/images/photo_640x427.jpg");
  expect_error(std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2), "truncated");
}

TEST(VisionBadInput, CorruptPngChecksum) {
  std::vector<uint8_t> png = file_bytes(kDir + "/images/grad_37x53.png");
  // Flip a byte inside the first IDAT chunk's data.
  size_t pos = 8;
  while (pos + 8 < png.size() && std::memcmp(&png[pos + 4], "IDAT", 4) != 0) pos += be32(&png[pos]) + 12;
  ASSERT_LT(pos + 20, png.size());
  png[pos + 12] ^= 0x55;
  expect_error(png, "invalid PNG");
}

TEST(VisionBadInput, PixelLimitCheckedFromTheHeader) {
  // 10^10 pixels (30 GB as RGB): only a check made before allocating can turn this into an error.
  expect_error(png_with_size(100000, 100000), "max_pixels");
  // JPEG: patch the SOF0 size of a real file to 60000 x 60000.
  std::vector<uint8_t> jpg = file_bytes(kDir + "/images/photo_640x427.jpg");
  size_t pos = 2;
  while (pos + 9 < jpg.size() && !(jpg[pos] == 0xFF && jpg[pos + 1] == 0xC0))
    pos += 2 + (jpg[pos + 2] << 8 | jpg[pos + 3]);
  ASSERT_LT(pos + 9, jpg.size());
  jpg[pos + 5] = jpg[pos + 7] = 0xEA;  // 0xEA60 = 60000
  jpg[pos + 6] = jpg[pos + 8] = 0x60;
  expect_error(jpg, "max_pixels");
  // The limit is configurable and inclusive.
  const std::vector<uint8_t> photo = file_bytes(kDir + "/images/photo_640x427.jpg");
  DecodeOptions exact;
  exact.max_pixels = 640 * 427;
  EXPECT_NO_THROW(decode(photo, exact));
  exact.max_pixels = 640 * 427 - 1;
  expect_error(photo, "max_pixels", exact);
  const std::vector<uint8_t> webp = file_bytes(kDir + "/extra/webp_lossy.webp");
  DecodeOptions tiny;
  tiny.max_pixels = 100;
  expect_error(webp, "max_pixels", tiny);
}

TEST(VisionBadInput, MutatedFilesNeverCrash) {
  // Each mutation either decodes or throws lumen::Error; nothing else may escape.
  std::mt19937 rng(1234);
  std::vector<std::vector<uint8_t>> seeds = {
      file_bytes(kDir + "/images/grad_37x53.png"), file_bytes(kDir + "/extra/orient_6.jpg"),
      file_bytes(kDir + "/extra/webp_lossy_alpha.webp"), file_bytes(kDir + "/extra/palette4.png"),
      file_bytes(kDir + "/extra/interlaced.png")};
  DecodeOptions small;
  small.max_pixels = 1 << 16;
  small.alpha = AlphaMode::CompositeOnWhite;
  int decoded = 0, rejected = 0;
  for (const auto& seed : seeds) {
    for (int i = 0; i < 150; ++i) {
      std::vector<uint8_t> m = seed;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) m[rng() % m.size()] = static_cast<uint8_t>(rng());
      try {
        decode(m, small);
        ++decoded;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_EQ(decoded + rejected, 5 * 150);
}

TEST(VisionExif, ParserEdgeCases) {
  // Intel-order IFD0 with one SHORT Orientation entry, built here byte by byte.
  std::vector<uint8_t> tiff = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(exif_orientation(tiff.data(), tiff.size()), 6);
  std::vector<uint8_t> prefixed = {'E', 'x', 'i', 'f', 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  prefixed.insert(prefixed.end(), tiff.begin(), tiff.end());
  EXPECT_EQ(exif_orientation(prefixed.data(), prefixed.size()), 6);  // every "Exif\0\0" is stripped
  EXPECT_EQ(exif_orientation(tiff.data(), 20), 0);                   // entry cut short: absent
  std::vector<uint8_t> odd = tiff;
  odd[18] = 9;  // a present but meaningless value hides the XMP fallback
  EXPECT_EQ(exif_orientation(odd.data(), odd.size()), -1);
  EXPECT_EQ(resolve_orientation(-1, 6), 1);
  EXPECT_EQ(resolve_orientation(0, 6), 6);
  const std::string xmp = "<a tiff:Orientation='5'/><b tiff:Orientation=\"7\"/>";
  EXPECT_EQ(xmp_orientation(reinterpret_cast<const uint8_t*>(xmp.data()), xmp.size()), 7);
  EXPECT_EQ(exif_orientation(nullptr, 0), 0);
  EXPECT_EQ(xmp_orientation(nullptr, 0), 0);
}

}  // namespace
}  // namespace lumen

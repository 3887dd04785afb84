// libFuzzer target: ImageProcessor::from_json on arbitrary preprocessor_config.json text (the
// LLaVA-NeXT image_grid_pinpoints included), then, when the configured sizes are small enough
// to be cheap, the whole pipeline on two tiny images and the AnyRes token arithmetic. Bad
// input must end in a lumen::Error; a crash, a sanitizer report or any other exception is a bug.
#include <cstdint>
#include <string>

#include "formats/json_config.h"
#include "vision/anyres.h"
#include "vision/image_processor.h"

namespace {

constexpr int64_t kCheapSide = 96;

bool cheap(const lumen::ImageProcessor& p) {
  const lumen::SizeSpec& s = p.size();
  for (int64_t v : {s.height, s.width, s.shortest_edge, s.longest_edge, s.max_height, s.max_width})
    if (v > kCheapSide) return false;
  if (p.crop_height() > kCheapSide || p.crop_width() > kCheapSide) return false;
  for (const lumen::ImageSize& pp : p.image_grid_pinpoints())
    if (pp.height > 4 * kCheapSide || pp.width > 4 * kCheapSide) return false;
  return true;
}

lumen::Image gradient(int w, int h) {
  lumen::Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>(i * 37);
  return img;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const nlohmann::json j =
        lumen::JsonView::parse_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    const lumen::ImageProcessor p = lumen::ImageProcessor::from_json(j, "fuzz.json");
    if (!p.supported() || !cheap(p)) return 0;
    const lumen::ProcessedImages out = p.process({gradient(7, 5), gradient(1, 13)});
    (void)out.pixel_values.numel();
    if (p.is_anyres())
      (void)lumen::llava_next_image_token_count({5, 7}, p.image_grid_pinpoints(), p.tile_size(), 1, "default");
  } catch (const lumen::Error&) {
  }
  return 0;
}

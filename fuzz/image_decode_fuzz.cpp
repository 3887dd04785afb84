// libFuzzer target: decode_image_bytes on arbitrary bytes (JPEG, PNG and WebP by magic). Bad
// input must end in a lumen::Error; a crash, a sanitizer report, a libjpeg/libpng exit() or any
// other exception is a bug. A small pixel limit keeps every decode cheap, and a decoded image is
// also pushed through resize and normalize to exercise them on odd sizes.
#include <cstdint>

#include "vision/image.h"
#include "vision/resize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lumen::DecodeOptions options;
  options.max_pixels = 1 << 18;
  // The last byte picks the alpha mode, so both conversion paths are fuzzed.
  if (size > 0 && (data[size - 1] & 1)) options.alpha = lumen::AlphaMode::CompositeOnWhite;
  try {
    const lumen::Image image = lumen::decode_image_bytes(data, size, options, "fuzz input");
    if (image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) __builtin_trap();
    const lumen::Image small = lumen::resize_pil(image, 7, 5, lumen::Resample::Bicubic);
    (void)lumen::to_pixel_values(lumen::center_crop(small, 6, 6), {});
  } catch (const lumen::Error&) {
  }
  return 0;
}

// Internal: one decoder per container format, each returning pixels the way PIL's
// `convert("RGB")` (and, when asked, `convert("RGBA")`'s alpha) would give them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vision/image.h"

namespace lumen::vision_detail {

struct DecodedImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;    // [height, width, 3]: PIL convert("RGB")
  std::vector<uint8_t> alpha;  // [height, width]: PIL convert("RGBA") alpha; empty = opaque
  int exif_orientation = 0;    // exif_orientation() of the EXIF blob, 0 when absent
  int xmp_orientation = 0;     // xmp_orientation() of the XMP packet, 0 when absent
};

// `want_alpha`: fill `alpha` for images with transparency (otherwise it stays empty).
// Errors are thrown as lumen::Error prefixed with `label`.
DecodedImage decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options, bool want_alpha,
                         const std::string& label);
DecodedImage decode_png(const uint8_t* data, size_t size, const DecodeOptions& options, bool want_alpha,
                        const std::string& label);
DecodedImage decode_webp(const uint8_t* data, size_t size, const DecodeOptions& options, bool want_alpha,
                         const std::string& label);

// Throws "<label>: image is W x H = N pixels, more than the limit of M (DecodeOptions::max_pixels)"
// when width*height exceeds the limit, and rejects non-positive sizes.
void check_pixel_limit(int64_t width, int64_t height, const DecodeOptions& options, const std::string& label);

}  // namespace lumen::vision_detail

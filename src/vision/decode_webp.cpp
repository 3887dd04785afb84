// WebP via libwebp. PIL (WebPImagePlugin, _webp.c) decodes with WebPAnimDecoder in MODE_RGBA
// and default options (fancy upsampling); for a still image that is exactly WebPDecodeRGBA,
// and convert("RGB") then drops the alpha.
#include <webp/decode.h>

#include <cstring>

#include "core/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace lumen::vision_detail {

namespace {

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK:
      return "ok";
    case VP8_STATUS_OUT_OF_MEMORY:
      return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
      return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
      return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
      return "suspended";
    case VP8_STATUS_USER_ABORT:
      return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return "truncated data (not enough data)";
  }
  return "unknown error";
}

// The EXIF and "XMP " chunks of an extended (VP8X) file, which is where WebPDemux finds them.
void read_orientation_chunks(const uint8_t* data, size_t size, DecodedImage* out) {
  if (size < 20 || std::memcmp(data + 12, "VP8X", 4) != 0) return;
  size_t pos = 12;
  while (size - pos >= 8) {
    const uint32_t length = le32(data + pos + 4);
    if (length > size - pos - 8) break;
    const uint8_t* body = data + pos + 8;
    if (std::memcmp(data + pos, "EXIF", 4) == 0) {
      out->exif_orientation = exif_orientation(body, length);
    } else if (std::memcmp(data + pos, "XMP ", 4) == 0) {
      out->xmp_orientation = xmp_orientation(body, length);
    }
    pos += 8 + size_t(length) + (length & 1);
    if (pos > size) break;
  }
}

}  // namespace

DecodedImage decode_webp(const uint8_t* data, size_t size, const DecodeOptions& options, bool want_alpha,
                         const std::string& label) {
  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(data, size, &features);
  LUMEN_CHECK(status == VP8_STATUS_OK, label, ": invalid WebP: ", status_text(status));
  LUMEN_CHECK(!features.has_animation, label, ": animated WebP is not supported (needs libwebpdemux)");
  check_pixel_limit(features.width, features.height, options, label);

  const int width = features.width;
  const int height = features.height;
  const size_t n = static_cast<size_t>(width) * height;
  DecodedImage out;
  out.width = width;
  out.height = height;
  if (features.has_alpha) {
    std::vector<uint8_t> rgba(n * 4);
    const int stride = width * 4;
    if (WebPDecodeRGBAInto(data, size, rgba.data(), rgba.size(), stride) == nullptr)
      fail(label, ": invalid WebP: the image data could not be decoded (corrupt or truncated)");
    out.rgb.resize(n * 3);
    if (want_alpha) out.alpha.resize(n);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(&out.rgb[i * 3], &rgba[i * 4], 3);
      if (want_alpha) out.alpha[i] = rgba[i * 4 + 3];
    }
  } else {
    out.rgb.resize(n * 3);
    if (WebPDecodeRGBInto(data, size, out.rgb.data(), out.rgb.size(), width * 3) == nullptr)
      fail(label, ": invalid WebP: the image data could not be decoded (corrupt or truncated)");
  }
  read_orientation_chunks(data, size, &out);
  return out;
}

}  // namespace lumen::vision_detail

#include "vision/image.h"

#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace lumen {

namespace vision_detail {

void check_pixel_limit(int64_t width, int64_t height, const DecodeOptions& options, const std::string& label) {
  LUMEN_CHECK(width > 0 && height > 0, label, ": image has an empty size (", width, " x ", height, ")");
  const int64_t pixels = width * height;  // both < 2^31, so no overflow
  LUMEN_CHECK(pixels <= options.max_pixels, label, ": image is ", width, " x ", height, " = ", pixels,
              " pixels, more than the limit of ", options.max_pixels,
              " (DecodeOptions::max_pixels; a decompression-bomb guard)");
}

namespace {

// Image.alpha_composite(white, rgba) then convert("RGB") (libImaging/AlphaComposite.c with a
// fully opaque white destination): 7 fractional bits and PIL's rounded division by 255.
void composite_on_white(std::vector<uint8_t>* rgb, const std::vector<uint8_t>& alpha) {
  constexpr uint32_t kPrecisionBits = 7;
  auto div255_shift = [](uint32_t a) { return ((a >> 8) + a) >> 8; };
  for (size_t i = 0; i < alpha.size(); ++i) {
    const uint32_t a = alpha[i];
    if (a == 0) {
      (*rgb)[i * 3] = (*rgb)[i * 3 + 1] = (*rgb)[i * 3 + 2] = 255;
      continue;
    }
    const uint32_t blend = 255 * (255 - a);
    const uint32_t outa255 = a * 255 + blend;
    const uint32_t coef1 = a * 255 * 255 * (1u << kPrecisionBits) / outa255;
    const uint32_t coef2 = 255 * (1u << kPrecisionBits) - coef1;
    for (int c = 0; c < 3; ++c) {
      const uint32_t tmp = (*rgb)[i * 3 + c] * coef1 + 255 * coef2;
      (*rgb)[i * 3 + c] = static_cast<uint8_t>(div255_shift(tmp + (0x80u << kPrecisionBits)) >> kPrecisionBits);
    }
  }
}

}  // namespace
}  // namespace vision_detail

const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg:
      return "JPEG";
    case ImageFormat::Png:
      return "PNG";
    case ImageFormat::Webp:
      return "WebP";
    case ImageFormat::Unknown:
      break;
  }
  return "unknown";
}

ImageFormat detect_image_format(const uint8_t* data, size_t size) {
  if (data == nullptr) return ImageFormat::Unknown;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::Jpeg;
  if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::Png;
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
    return ImageFormat::Webp;
  return ImageFormat::Unknown;
}

Image apply_orientation(const Image& in, int orientation) {
  if (orientation < 2 || orientation > 8) return in;
  const int w = in.width, h = in.height;
  const bool swap = orientation >= 5;  // TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90
  Image out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.rgb.resize(in.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // source pixel of output (x, y), per PIL's Transpose methods
      switch (orientation) {
        case 2:  // FLIP_LEFT_RIGHT
          sx = w - 1 - x;
          break;
        case 3:  // ROTATE_180
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;
        case 4:  // FLIP_TOP_BOTTOM
          sy = h - 1 - y;
          break;
        case 5:  // TRANSPOSE
          sx = y;
          sy = x;
          break;
        case 6:  // ROTATE_270 (90 degrees clockwise)
          sx = y;
          sy = h - 1 - x;
          break;
        case 7:  // TRANSVERSE
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;
        case 8:  // ROTATE_90 (90 degrees counter-clockwise)
          sx = w - 1 - y;
          sy = x;
          break;
      }
      std::memcpy(&out.rgb[(static_cast<size_t>(y) * out.width + x) * 3],
                  &in.rgb[(static_cast<size_t>(sy) * w + sx) * 3], 3);
    }
  }
  return out;
}

Image decode_image_bytes(const uint8_t* data, size_t size, const DecodeOptions& options, const std::string& label) {
  LUMEN_CHECK(size > 0, label, ": empty file (0 bytes), not an image");
  const ImageFormat format = detect_image_format(data, size);
  const bool want_alpha = options.alpha == AlphaMode::CompositeOnWhite;
  vision_detail::DecodedImage d;
  switch (format) {
    case ImageFormat::Jpeg:
      d = vision_detail::decode_jpeg(data, size, options, want_alpha, label);
      break;
    case ImageFormat::Png:
      d = vision_detail::decode_png(data, size, options, want_alpha, label);
      break;
    case ImageFormat::Webp:
      d = vision_detail::decode_webp(data, size, options, want_alpha, label);
      break;
    case ImageFormat::Unknown:
      fail(label, ": unknown image format (not JPEG, PNG or WebP by its leading bytes)");
  }
  if (want_alpha && !d.alpha.empty()) vision_detail::composite_on_white(&d.rgb, d.alpha);

  Image image;
  image.width = d.width;
  image.height = d.height;
  image.rgb = std::move(d.rgb);
  if (options.apply_exif_orientation) {
    const int orientation = resolve_orientation(d.exif_orientation, d.xmp_orientation);
    if (orientation != 1) image = apply_orientation(image, orientation);
  }
  return image;
}

Image decode_image_file(const std::string& path, const DecodeOptions& options) {
  auto file = MappedFile::open(path);
  return decode_image_bytes(file->data(), file->size(), options, path);
}

}  // namespace lumen

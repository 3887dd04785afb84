// Image decoding (JPEG, PNG, WebP) that reproduces what transformers gets from PIL:
// `PIL.Image.open(f)`, `ImageOps.exif_transpose` (as `transformers.image_utils.load_image`
// does) and `convert_to_rgb` (`image.convert("RGB")`), bit for bit.
//
//   Image img = decode_image_file("cat.jpg");        // [H, W, 3] uint8, interleaved RGB
//
// Format is detected from the leading bytes, never from the file name. Every failure (unknown
// format, truncated or corrupt data, an image larger than DecodeOptions::max_pixels) throws
// lumen::Error naming the file and the problem; the pixel limit is checked from the header
// before any pixel memory is allocated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lumen {

// An 8-bit RGB image, rows top to bottom, pixels interleaved: rgb[(y * width + x) * 3 + c].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]

  uint8_t at(int x, int y, int c) const { return rgb[(static_cast<size_t>(y) * width + x) * 3 + c]; }
};

enum class ImageFormat { Unknown, Jpeg, Png, Webp };
const char* image_format_name(ImageFormat f);  // "JPEG", "PNG", "WebP", "unknown"
// Looks at the magic bytes only ("\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "RIFF....WEBP").
ImageFormat detect_image_format(const uint8_t* data, size_t size);

// What happens to an alpha channel (RGBA, LA, palette or gray/RGB with tRNS) on the way to RGB.
enum class AlphaMode {
  // PIL `image.convert("RGB")`: alpha is dropped, colour kept as stored. This is
  // transformers' `convert_to_rgb` (5.x) and `load_image`; the fixtures were made with it.
  Drop,
  // Some 4.x transformers releases: `Image.alpha_composite(white RGBA, image.convert("RGBA"))`
  // then `.convert("RGB")`, with PIL's integer rounding (libImaging/AlphaComposite.c).
  CompositeOnWhite,
};

struct DecodeOptions {
  // Largest width*height accepted; checked from the header before allocating. Default is
  // PIL's Image.MAX_IMAGE_PIXELS (PIL warns above it and refuses above twice it; we refuse).
  int64_t max_pixels = 89478485;
  // Apply the EXIF orientation tag (1-8) as PIL.ImageOps.exif_transpose does: EXIF IFD0 from
  // JPEG APP1 / PNG eXIf / WebP EXIF, else `tiff:Orientation` in XMP.
  bool apply_exif_orientation = true;
  AlphaMode alpha = AlphaMode::Drop;
};

// Decodes a whole file. Errors: "<path>: <problem>".
Image decode_image_file(const std::string& path, const DecodeOptions& options = {});
// Decodes an in-memory file; `label` names it in errors.
Image decode_image_bytes(const uint8_t* data, size_t size, const DecodeOptions& options = {},
                         const std::string& label = "<image bytes>");

// PIL's transposition for EXIF orientation `orientation` (2..8; 1 and others return a copy):
// 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE,
// 8 ROTATE_90 (PIL rotations are counter-clockwise).
Image apply_orientation(const Image& image, int orientation);

}  // namespace lumen

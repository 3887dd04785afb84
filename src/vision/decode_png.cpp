// PNG via libpng, converted the way PIL reads each PNG type (PngImagePlugin._MODES) and then
// converts it (Convert.c):
//   gray 1/2/4/8 bit  -> "1"/"L" (scaled to 0..255)   -> RGB by replication
//   gray 16 bit       -> "I;16"                      -> RGB = min(value, 255) (I16_RGB clips)
//   gray+alpha 8/16   -> "LA" / "RGBA" (high byte)    -> RGB by replication, alpha kept
//   RGB 8/16, RGBA    -> "RGB"/"RGBA" (high byte of 16-bit samples)
//   palette           -> "P" (entries past PLTE are black, tRNS gives palette alphas)
// Transparency from tRNS for gray/RGB follows PIL literally: the raw tRNS value is compared
// with the stored 8-bit pixel (or the 16-bit value for "I;16").
//
// libpng reports errors through a callback that must not return; ours longjmps back to the
// phase function that called libpng (only trivially destructible locals live there).
#include <png.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace lumen::vision_detail {

namespace {

struct PngJob {
  png_structp png;
  png_infop info;
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
  png_uint_32 width;
  png_uint_32 height;
  int bit_depth;
  int color_type;
  int num_palette;
  png_color palette[256];
  int num_trans;  // tRNS entries (palette) or 1 (gray/RGB); 0 = no tRNS
  uint8_t trans_alpha[256];
  png_color_16 trans_color;
};

extern "C" void on_png_error(png_structp png, png_const_charp msg) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof(job->message), "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

extern "C" void on_png_warning(png_structp, png_const_charp) {}

extern "C" void on_png_read(png_structp png, png_bytep out, size_t n) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (job->size - job->pos < n) png_error(png, "truncated PNG data (unexpected end of file)");
  std::memcpy(out, job->data + job->pos, n);
  job->pos += n;
}

bool read_header_phase(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_set_read_fn(job->png, job, on_png_read);
  // libpng's default 1,000,000-pixel side limit is not PIL's; DecodeOptions::max_pixels governs.
  png_set_user_limits(job->png, 0x7fffffff, 0x7fffffff);
  png_read_info(job->png, job->info);
  int interlace = 0, compression = 0, filter = 0;
  png_get_IHDR(job->png, job->info, &job->width, &job->height, &job->bit_depth, &job->color_type, &interlace,
               &compression, &filter);
  if (job->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_colorp palette = nullptr;
    int n = 0;
    if (png_get_PLTE(job->png, job->info, &palette, &n) & PNG_INFO_PLTE) {
      job->num_palette = n < 0 ? 0 : n > 256 ? 256 : n;
      std::memcpy(job->palette, palette, sizeof(png_color) * job->num_palette);
    }
  }
  png_bytep trans_alpha = nullptr;
  png_color_16p trans_color = nullptr;
  int num_trans = 0;
  if (png_get_tRNS(job->png, job->info, &trans_alpha, &num_trans, &trans_color) & PNG_INFO_tRNS) {
    if (job->color_type == PNG_COLOR_TYPE_PALETTE) {
      job->num_trans = num_trans < 0 ? 0 : num_trans > 256 ? 256 : num_trans;
      if (trans_alpha) std::memcpy(job->trans_alpha, trans_alpha, job->num_trans);
    } else if (trans_color) {
      job->num_trans = 1;
      job->trans_color = *trans_color;
    }
  }
  return true;
}

// Sets the transforms that give one byte per sample (two for 16-bit gray) and reads all rows.
bool read_image_phase(PngJob* job, png_bytepp rows, size_t row_bytes) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  if (job->color_type == PNG_COLOR_TYPE_PALETTE) {
    png_set_packing(job->png);  // one index per byte
  } else if (job->color_type == PNG_COLOR_TYPE_GRAY && job->bit_depth < 8) {
    png_set_expand_gray_1_2_4_to_8(job->png);  // 0x55 / 0x11 / 0xff scaling, as PIL's L;2, L;4, 1
  } else if (job->bit_depth == 16 && job->color_type != PNG_COLOR_TYPE_GRAY) {
    png_set_strip_16(job->png);  // PIL's "RGB;16B", "RGBA;16B", "LA;16B" keep the high byte
  }
  png_set_interlace_handling(job->png);
  png_read_update_info(job->png, job->info);
  if (png_get_rowbytes(job->png, job->info) != row_bytes) {
    std::snprintf(job->message, sizeof(job->message), "unexpected row size after conversion");
    return false;
  }
  png_read_image(job->png, rows);
  return true;
}

struct JobGuard {
  PngJob* job;
  ~JobGuard() {
    if (job->png) png_destroy_read_struct(&job->png, job->info ? &job->info : nullptr, nullptr);
  }
};

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Inflates a zlib stream of at most `limit` bytes (PIL caps text chunks at 1 MiB too).
bool inflate_limited(const uint8_t* in, size_t n, size_t limit, std::vector<uint8_t>* out) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return false;
  out->resize(limit);
  zs.next_in = const_cast<Bytef*>(in);
  zs.avail_in = static_cast<uInt>(n);
  zs.next_out = out->data();
  zs.avail_out = static_cast<uInt>(limit);
  int rc = inflate(&zs, Z_FINISH);
  const size_t produced = limit - zs.avail_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return false;
  out->resize(produced);
  return true;
}

// Walks the chunks for what PIL's getexif() reads: eXIf (the last one) and the iTXt
// "XML:com.adobe.xmp" packet. A malformed tail just ends the walk; libpng judges the pixels.
void read_orientation_chunks(const uint8_t* data, size_t size, DecodedImage* out) {
  size_t pos = 8;
  while (size - pos >= 12) {
    const uint32_t length = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    if (length > size - pos - 12) break;
    const uint8_t* body = data + pos + 8;
    if (std::memcmp(type, "eXIf", 4) == 0) {
      out->exif_orientation = exif_orientation(body, length);
    } else if (std::memcmp(type, "iTXt", 4) == 0) {
      static const char kKey[] = "XML:com.adobe.xmp";  // keyword, then its NUL
      if (length >= sizeof(kKey) + 2 && std::memcmp(body, kKey, sizeof(kKey)) == 0) {
        const uint8_t compressed = body[sizeof(kKey)];
        size_t at = sizeof(kKey) + 2;              // compression flag, method
        for (int field = 0; field < 2; ++field) {  // language tag, translated keyword
          while (at < length && body[at] != 0) ++at;
          ++at;
        }
        if (at <= length) {
          if (!compressed) {
            out->xmp_orientation = xmp_orientation(body + at, length - at);
          } else {
            std::vector<uint8_t> text;
            if (inflate_limited(body + at, length - at, 1 << 20, &text))
              out->xmp_orientation = xmp_orientation(text.data(), text.size());
          }
        }
      }
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      break;
    }
    pos += size_t(length) + 12;
  }
}

}  // namespace

DecodedImage decode_png(const uint8_t* data, size_t size, const DecodeOptions& options, bool want_alpha,
                        const std::string& label) {
  PngJob job;
  std::memset(&job, 0, sizeof(job));
  job.data = data;
  job.size = size;
  JobGuard guard{&job};
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_png_error, on_png_warning);
  LUMEN_CHECK(job.png != nullptr, label, ": cannot create a PNG decoder (out of memory)");
  job.info = png_create_info_struct(job.png);
  LUMEN_CHECK(job.info != nullptr, label, ": cannot create a PNG decoder (out of memory)");

  if (!read_header_phase(&job)) fail(label, ": invalid PNG: ", job.message);
  const int width = static_cast<int>(job.width);
  const int height = static_cast<int>(job.height);
  check_pixel_limit(job.width, job.height, options, label);

  const int ct = job.color_type;
  const bool gray16 = ct == PNG_COLOR_TYPE_GRAY && job.bit_depth == 16;
  int samples = 1;  // bytes per pixel after the transforms of read_image_phase
  if (ct == PNG_COLOR_TYPE_GRAY) samples = gray16 ? 2 : 1;
  if (ct == PNG_COLOR_TYPE_GRAY_ALPHA) samples = 2;
  if (ct == PNG_COLOR_TYPE_RGB) samples = 3;
  if (ct == PNG_COLOR_TYPE_RGB_ALPHA) samples = 4;
  LUMEN_CHECK(ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA || ct == PNG_COLOR_TYPE_RGB ||
                  ct == PNG_COLOR_TYPE_RGB_ALPHA || ct == PNG_COLOR_TYPE_PALETTE,
              label, ": unsupported PNG colour type ", ct);
  const size_t n = static_cast<size_t>(width) * height;
  const size_t row_bytes = static_cast<size_t>(width) * samples;
  std::vector<uint8_t> raw(row_bytes * height);
  std::vector<png_bytep> rows(height);
  for (int y = 0; y < height; ++y) rows[y] = raw.data() + static_cast<size_t>(y) * row_bytes;
  if (!read_image_phase(&job, rows.data(), row_bytes)) fail(label, ": invalid PNG: ", job.message);

  DecodedImage out;
  out.width = width;
  out.height = height;
  read_orientation_chunks(data, size, &out);
  const bool alpha =
      want_alpha && (ct == PNG_COLOR_TYPE_GRAY_ALPHA || ct == PNG_COLOR_TYPE_RGB_ALPHA || job.num_trans > 0);
  if (alpha) out.alpha.assign(n, 255);
  out.rgb.resize(n * 3);
  uint8_t* rgb = out.rgb.data();

  switch (ct) {
    case PNG_COLOR_TYPE_PALETTE: {
      uint8_t table[256 * 3] = {};
      for (int i = 0; i < job.num_palette; ++i) {
        table[i * 3] = job.palette[i].red;
        table[i * 3 + 1] = job.palette[i].green;
        table[i * 3 + 2] = job.palette[i].blue;
      }
      for (size_t i = 0; i < n; ++i) std::memcpy(rgb + i * 3, table + raw[i] * 3, 3);
      if (alpha)
        for (size_t i = 0; i < n; ++i) out.alpha[i] = raw[i] < job.num_trans ? job.trans_alpha[raw[i]] : 255;
      break;
    }
    case PNG_COLOR_TYPE_GRAY: {
      // PIL's transparency value: tRNS gray as stored; mode "1" maps any non-zero to 255.
      int trans = job.trans_color.gray;
      if (job.bit_depth == 1) trans = trans ? 255 : 0;
      for (size_t i = 0; i < n; ++i) {
        int v = gray16 ? (raw[i * 2] << 8 | raw[i * 2 + 1]) : raw[i];
        if (alpha && v == trans) out.alpha[i] = 0;
        const uint8_t g = static_cast<uint8_t>(v > 255 ? 255 : v);
        rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = g;
      }
      break;
    }
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      for (size_t i = 0; i < n; ++i) {
        rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = raw[i * 2];
        if (alpha) out.alpha[i] = raw[i * 2 + 1];
      }
      break;
    case PNG_COLOR_TYPE_RGB:
      std::memcpy(rgb, raw.data(), n * 3);
      if (alpha) {
        const png_color_16& t = job.trans_color;
        for (size_t i = 0; i < n; ++i)
          if (rgb[i * 3] == t.red && rgb[i * 3 + 1] == t.green && rgb[i * 3 + 2] == t.blue) out.alpha[i] = 0;
      }
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      for (size_t i = 0; i < n; ++i) {
        std::memcpy(rgb + i * 3, &raw[i * 4], 3);
        if (alpha) out.alpha[i] = raw[i * 4 + 3];
      }
      break;
  }
  return out;
}

}  // namespace lumen::vision_detail

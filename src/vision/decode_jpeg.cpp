// JPEG via libjpeg(-turbo) with the settings PIL's JpegDecode.c leaves at their defaults
// (JDCT_ISLOW, fancy upsampling, no scaling), so the output is PIL's bit for bit.
//
// libjpeg reports fatal errors through error_exit, whose default calls exit(). Ours longjmps
// back to the phase function that called libjpeg. Those phase functions hold only trivially
// destructible locals, so the jump skips no destructor; the C++ caller then throws.
#include <csetjmp>
#include <cstdio>
#include <cstring>

// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

#include "core/error.h"
#include "vision/decoders.h"
#include "vision/exif.h"

namespace lumen::vision_detail {

namespace {

// Progressive files may carry any number of scans; each one re-walks the coefficient buffer.
// libjpeg-turbo's own tools suggest a limit to stop crafted files from spinning for minutes.
constexpr int kMaxScans = 1000;

struct JpegJob {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  bool created;
  const uint8_t* data;
  size_t size;
  int exif_orientation;
  int xmp_orientation;
};

JpegJob* job_of(j_common_ptr cinfo) { return static_cast<JpegJob*>(cinfo->client_data); }

extern "C" void on_jpeg_error(j_common_ptr cinfo) {
  JpegJob* job = job_of(cinfo);
  (*cinfo->err->format_message)(cinfo, job->message);
  std::longjmp(job->jump, 1);
}

// Warnings are ignored as PIL ignores them (corrupt-but-decodable data still decodes), except
// running out of data: libjpeg would pad with grey, PIL reports the file as truncated.
extern "C" void on_jpeg_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    JpegJob* job = job_of(cinfo);
    std::snprintf(job->message, sizeof(job->message), "truncated JPEG data (premature end of file)");
    std::longjmp(job->jump, 1);
  }
}

extern "C" void on_jpeg_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (dinfo->input_scan_number > kMaxScans) {
    JpegJob* job = job_of(cinfo);
    std::snprintf(job->message, sizeof(job->message), "progressive JPEG has more than %d scans", kMaxScans);
    std::longjmp(job->jump, 1);
  }
}

// Reads the header and the APP1 metadata, picks the output colour space PIL asks for.
// Only trivially destructible locals here (see the file comment).
bool read_header_phase(JpegJob* job) {
  if (setjmp(job->jump)) return false;
  job->cinfo.err = jpeg_std_error(&job->err);
  job->err.error_exit = on_jpeg_error;
  job->err.emit_message = on_jpeg_message;
  jpeg_create_decompress(&job->cinfo);
  job->created = true;
  job->cinfo.client_data = job;
  job->progress.progress_monitor = on_jpeg_progress;
  job->cinfo.progress = &job->progress;
  jpeg_mem_src(&job->cinfo, job->data, static_cast<unsigned long>(job->size));
  jpeg_save_markers(&job->cinfo, JPEG_APP0 + 1, 0xFFFF);
  if (jpeg_read_header(&job->cinfo, TRUE) != JPEG_HEADER_OK) {
    std::snprintf(job->message, sizeof(job->message), "JPEG stream has no image");
    return false;
  }

  // JpegImagePlugin.APP: the first "Exif\0\0" APP1 is the EXIF block (later ones are appended
  // to it, which never matters for IFD0); the last XMP APP1 is the XMP packet.
  static const char kXmpId[] = "http://ns.adobe.com/xap/1.0/";
  for (jpeg_saved_marker_ptr m = job->cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker != JPEG_APP0 + 1) continue;
    if (m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      if (job->exif_orientation == 0) job->exif_orientation = exif_orientation(m->data, m->data_length);
    } else if (m->data_length >= sizeof(kXmpId) && std::memcmp(m->data, kXmpId, sizeof(kXmpId)) == 0) {
      job->xmp_orientation =
          xmp_orientation(m->data + sizeof(kXmpId), m->data_length - static_cast<unsigned>(sizeof(kXmpId)));
    }
  }

  // JpegImagePlugin maps layers to mode: 1 -> L, 3 -> RGB, 4 -> CMYK (read as "CMYK;I").
  switch (job->cinfo.num_components) {
    case 1:
      job->cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case 3:
      job->cinfo.out_color_space = JCS_RGB;
      break;
    case 4:
      job->cinfo.out_color_space = JCS_CMYK;
      break;
    default:
      std::snprintf(job->message, sizeof(job->message), "cannot handle %d-component JPEG", job->cinfo.num_components);
      return false;
  }
  jpeg_calc_output_dimensions(&job->cinfo);
  return true;
}

// Decodes every scanline into `out` ([output_height, output_width, output_components]).
bool decode_phase(JpegJob* job, uint8_t* out, size_t row_bytes) {
  if (setjmp(job->jump)) return false;
  jpeg_start_decompress(&job->cinfo);
  while (job->cinfo.output_scanline < job->cinfo.output_height) {
    JSAMPROW row = out + static_cast<size_t>(job->cinfo.output_scanline) * row_bytes;
    if (jpeg_read_scanlines(&job->cinfo, &row, 1) != 1) {
      std::snprintf(job->message, sizeof(job->message), "JPEG decoder stopped early");
      return false;
    }
  }
  // No jpeg_finish_decompress: it only reads up to EOI, and a file whose pixels are complete
  // but whose EOI is missing still loads in PIL.
  return true;
}

struct JobGuard {
  JpegJob* job;
  ~JobGuard() {
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
  }
};

}  // namespace

DecodedImage decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options, bool want_alpha,
                         const std::string& label) {
  JpegJob job;
  std::memset(&job, 0, sizeof(job));
  job.data = data;
  job.size = size;
  JobGuard guard{&job};

  if (!read_header_phase(&job)) fail(label, ": invalid JPEG: ", job.message);
  const int width = static_cast<int>(job.cinfo.output_width);
  const int height = static_cast<int>(job.cinfo.output_height);
  check_pixel_limit(width, height, options, label);
  const int channels = job.cinfo.output_components;
  LUMEN_CHECK(channels == 1 || channels == 3 || channels == 4, label, ": unexpected JPEG output with ", channels,
              " components");

  const size_t row_bytes = static_cast<size_t>(width) * channels;
  std::vector<uint8_t> raw(row_bytes * height);
  if (!decode_phase(&job, raw.data(), row_bytes)) fail(label, ": invalid JPEG: ", job.message);

  DecodedImage out;
  out.width = width;
  out.height = height;
  out.exif_orientation = job.exif_orientation;
  out.xmp_orientation = job.xmp_orientation;
  const size_t n = static_cast<size_t>(width) * height;
  if (channels == 3) {
    out.rgb = std::move(raw);
  } else if (channels == 1) {
    out.rgb.resize(n * 3);
    for (size_t i = 0; i < n; ++i) out.rgb[i * 3] = out.rgb[i * 3 + 1] = out.rgb[i * 3 + 2] = raw[i];
  } else {
    // "CMYK;I" unpacking (Adobe inverted polarity) then Convert.c cmyk2rgb:
    // nk = 255 - k; channel = clip(nk - nk * c / 255) with PIL's rounded MULDIV255.
    out.rgb.resize(n * 3);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = &raw[i * 4];
      const int nk = 255 - (255 - p[3]);
      for (int c = 0; c < 3; ++c) {
        const int v = 255 - p[c];
        int t = v * nk + 128;
        t = ((t >> 8) + t) >> 8;
        const int r = nk - t;
        out.rgb[i * 3 + c] = static_cast<uint8_t>(r < 0 ? 0 : r > 255 ? 255 : r);
      }
    }
  }
  (void)want_alpha;  // JPEG has no alpha
  return out;
}

}  // namespace lumen::vision_detail

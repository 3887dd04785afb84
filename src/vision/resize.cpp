#include "vision/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "core/threads.h"

// PIL's arithmetic is plain double math compiled without FMA; a fused multiply-add rounds once
// instead of twice and can move a coefficient by one unit, hence one output value by one.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace lumen {

Resample resample_from_pil(int64_t value) {
  LUMEN_CHECK(value >= 0 && value <= 5, "resample: unknown PIL resampling filter ", value,
              " (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)");
  return static_cast<Resample>(value);
}

const char* resample_name(Resample r) {
  switch (r) {
    case Resample::Nearest:
      return "nearest";
    case Resample::Lanczos:
      return "lanczos";
    case Resample::Bilinear:
      return "bilinear";
    case Resample::Bicubic:
      return "bicubic";
    case Resample::Box:
      return "box";
    case Resample::Hamming:
      return "hamming";
  }
  return "unknown";
}

namespace {

// ---- Filters of libImaging/Resample.c (same expressions, same constants) ----

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // float constants, as in PIL
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

Filter filter_for(Resample r) {
  switch (r) {
    case Resample::Box:
      return {box_filter, 0.5};
    case Resample::Bilinear:
      return {bilinear_filter, 1.0};
    case Resample::Hamming:
      return {hamming_filter, 1.0};
    case Resample::Bicubic:
      return {bicubic_filter, 2.0};
    case Resample::Lanczos:
      return {lanczos_filter, 3.0};
    case Resample::Nearest:
      break;
  }
  fail("resize: no convolution filter for ", resample_name(r));
}

// 8-bit results, two guard bits for filters with negative lobes: 32 - 8 - 2 fractional bits.
constexpr int kPrecisionBits = 32 - 8 - 2;

// Fixed-point taps of one resampling pass. Output i reads inputs first[i] .. first[i]+count[i]-1
// with weights taps[offset[i] + j]; stored packed, so a huge downscale costs O(input) memory.
struct Taps {
  std::vector<int> first, count;
  std::vector<size_t> offset;
  std::vector<int32_t> taps;
};

// precompute_coeffs + normalize_coeffs_8bpc of Resample.c for the box [in0, in1).
Taps precompute_taps(int in_size, float in0, float in1, int out_size, const Filter& filter) {
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;  // antialias only when shrinking
  const double support = filter.support * filterscale;
  Taps t;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.offset.resize(out_size);
  t.taps.reserve(static_cast<size_t>(out_size) * (static_cast<size_t>(std::ceil(support)) * 2 + 1));
  std::vector<double> w;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as PIL's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    w.assign(std::max(xmax, 0), 0.0);
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double v = filter.fn((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    t.first[xx] = xmin;
    t.count[xx] = std::max(xmax, 0);
    t.offset[xx] = t.taps.size();
    for (int x = 0; x < xmax; ++x) {
      double k = w[x];
      if (ww != 0.0) k /= ww;
      // Round half away from zero into 22-bit fixed point (normalize_coeffs_8bpc).
      t.taps.push_back(k < 0 ? static_cast<int32_t>(-0.5 + k * (1 << kPrecisionBits))
                             : static_cast<int32_t>(0.5 + k * (1 << kPrecisionBits)));
    }
  }
  return t;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift, as PIL's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Horizontal taps with each weight repeated for the 3 interleaved channels, so a run of input
// bytes p[0 .. 3n) is multiplied element-wise: wide[3x + c] = taps[x]. Each output's run is
// zero-padded to a multiple of 24 (= 3 channels x 8 lanes): every vector lane then always holds
// the same channel, and the padding may read bytes past the run (they are multiplied by 0).
constexpr int kBlock = 24;

struct WideTaps {
  std::vector<size_t> offset;  // start of output i's run in `wide`
  std::vector<int> padded;     // its length, a multiple of kBlock
  std::vector<int32_t> wide;
};

WideTaps widen(const Taps& t) {
  WideTaps w;
  w.offset.resize(t.first.size());
  w.padded.resize(t.first.size());
  for (size_t i = 0; i < t.first.size(); ++i) {
    w.offset[i] = w.wide.size();
    for (int x = 0; x < t.count[i]; ++x)
      for (int c = 0; c < 3; ++c) w.wide.push_back(t.taps[t.offset[i] + x]);
    while ((w.wide.size() - w.offset[i]) % kBlock) w.wide.push_back(0);
    w.padded[i] = static_cast<int>(w.wide.size() - w.offset[i]);
  }
  return w;
}

// sums[r][c] += sum over j = c (mod 3), j < len, of rows[r][j] * k[j], for R rows sharing the
// taps. `vec_len` (a multiple of kBlock, <= the padded length) is how far the rows may be read
// with vectors; the rest up to `len` is done one value at a time. Integer sums are exact, so
// the association does not change PIL's result.
template <int R>
inline void dot3(const uint8_t* const* rows, const int32_t* k, int len, int vec_len, int32_t (*sums)[3]) {
  int j = 0;
#if defined(__AVX2__)
  __m256i acc[R][3];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = acc[r][2] = _mm256_setzero_si256();
  for (; j < vec_len; j += kBlock) {
    for (int b = 0; b < 3; ++b) {
      const __m256i kv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + j + 8 * b));
      for (int r = 0; r < R; ++r) {
        const __m256i pv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[r] + j + 8 * b)));
        acc[r][b] = _mm256_add_epi32(acc[r][b], _mm256_mullo_epi32(pv, kv));
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) int32_t lanes[kBlock];
    for (int b = 0; b < 3; ++b) _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8 * b), acc[r][b]);
    for (int i = 0; i < kBlock; i += 3) {
      sums[r][0] += lanes[i];
      sums[r][1] += lanes[i + 1];
      sums[r][2] += lanes[i + 2];
    }
  }
#else
  (void)vec_len;
#endif
  for (; j < len; j += 3)
    for (int r = 0; r < R; ++r) {
      sums[r][0] += rows[r][j] * k[j];
      sums[r][1] += rows[r][j + 1] * k[j + 1];
      sums[r][2] += rows[r][j + 2] * k[j + 2];
    }
}

// Rows [y0, y0 + rows) of `src` (width src_w) resampled horizontally into `dst` (width dst_w).
// Two rows at a time share each tap load.
void horizontal_pass(const uint8_t* src, int src_w, int y0, int rows, uint8_t* dst, int dst_w, const Taps& t,
                     const uint8_t* src_end) {
  const WideTaps w = widen(t);
  const size_t src_stride = static_cast<size_t>(src_w) * 3, dst_stride = static_cast<size_t>(dst_w) * 3;
  auto run = [&](auto rows_per_step, int64_t yy) {
    constexpr int R = decltype(rows_per_step)::value;
    const uint8_t* in[R];
    uint8_t* out[R];
    for (int r = 0; r < R; ++r) {
      in[r] = src + static_cast<size_t>(y0 + yy + r) * src_stride;
      out[r] = dst + static_cast<size_t>(yy + r) * dst_stride;
    }
    for (int xx = 0; xx < dst_w; ++xx) {
      const size_t first = static_cast<size_t>(t.first[xx]) * 3;
      const int len = t.count[xx] * 3;
      // Vector reads may run past the taps into the next bytes, but never past the image.
      const size_t room = static_cast<size_t>(src_end - (in[R - 1] + first));
      const int vec_len = static_cast<size_t>(w.padded[xx]) <= room ? w.padded[xx] : len / kBlock * kBlock;
      const uint8_t* p[R];
      int32_t sums[R][3];
      for (int r = 0; r < R; ++r) {
        p[r] = in[r] + first;
        sums[r][0] = sums[r][1] = sums[r][2] = 1 << (kPrecisionBits - 1);
      }
      dot3<R>(p, &w.wide[w.offset[xx]], len, vec_len, sums);
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < 3; ++c) out[r][xx * 3 + c] = clip8(sums[r][c]);
    }
  };
  const int64_t pairs = rows / 2;
  parallel_for(
      pairs,
      [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) run(std::integral_constant<int, 2>{}, 2 * i);
      },
      4);
  if (rows % 2) run(std::integral_constant<int, 1>{}, rows - 1);
}

// `src` (rows of width w) resampled vertically into `dst` (dst_h rows); taps index src rows.
void vertical_pass(const uint8_t* src, int w, uint8_t* dst, int dst_h, const Taps& t) {
  const size_t stride = static_cast<size_t>(w) * 3;
  parallel_for(
      dst_h,
      [&](int64_t r0, int64_t r1) {
        std::vector<int32_t> acc(stride);  // one row of sums, reused for every output row
        for (int64_t yy = r0; yy < r1; ++yy) {
          std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
          const int32_t* k = &t.taps[t.offset[yy]];
          const uint8_t* base = src + static_cast<size_t>(t.first[yy]) * stride;
          for (int y = 0; y < t.count[yy]; ++y) {
            const uint8_t* row = base + static_cast<size_t>(y) * stride;
            const int32_t ky = k[y];
            int32_t* a = acc.data();
            for (size_t i = 0; i < stride; ++i) a[i] += row[i] * ky;
          }
          uint8_t* out = dst + static_cast<size_t>(yy) * stride;
          for (size_t i = 0; i < stride; ++i) out[i] = clip8(acc[i]);
        }
      },
      4);
}

// _imaging.c _resize with NEAREST: an affine scale through ImagingScaleAffine, sampling at
// positions accumulated in double exactly as PIL steps them.
Image resize_nearest(const Image& in, int width, int height) {
  const double ax = static_cast<double>(static_cast<float>(in.width)) / width;
  const double ay = static_cast<double>(static_cast<float>(in.height)) / height;
  auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
  std::vector<int> xsrc(width), ysrc(height);
  double xo = ax * 0.5;
  for (int x = 0; x < width; ++x, xo += ax) xsrc[x] = coord(xo);
  double yo = ay * 0.5;
  for (int y = 0; y < height; ++y, yo += ay) ysrc[y] = coord(yo);
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.assign(static_cast<size_t>(width) * height * 3, 0);  // PIL fills unmapped pixels with 0
  for (int y = 0; y < height; ++y) {
    if (ysrc[y] < 0 || ysrc[y] >= in.height) continue;
    const uint8_t* row = &in.rgb[static_cast<size_t>(ysrc[y]) * in.width * 3];
    uint8_t* dst = &out.rgb[static_cast<size_t>(y) * width * 3];
    for (int x = 0; x < width; ++x)
      if (xsrc[x] >= 0 && xsrc[x] < in.width) std::memcpy(dst + x * 3, row + static_cast<size_t>(xsrc[x]) * 3, 3);
  }
  return out;
}

// Outputs come from config sizes, which a bad config can make absurd: refuse rather than try
// to allocate them (2^28 pixels is 768 MiB of RGB, far beyond any model input).
constexpr int64_t kMaxOutputPixels = int64_t(1) << 28;

void check_output_size(int width, int height, const char* what) {
  LUMEN_CHECK(width > 0 && height > 0, what, ": target size must be positive, got ", width, " x ", height);
  LUMEN_CHECK(int64_t(width) * height <= kMaxOutputPixels, what, ": target size ", width, " x ", height,
              " is larger than ", kMaxOutputPixels, " pixels");
}

void check_image(const Image& image, const char* what) {
  LUMEN_CHECK(
      image.width > 0 && image.height > 0 && image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
      what, ": invalid image ", image.width, " x ", image.height, " with ", image.rgb.size(), " bytes");
}

}  // namespace

Image resize_pil(const Image& in, int width, int height, Resample filter) {
  check_image(in, "resize");
  check_output_size(width, height, "resize");
  if (width == in.width && height == in.height) return in;  // Image.resize returns a copy
  if (filter == Resample::Nearest) return resize_nearest(in, width, height);

  const Filter f = filter_for(filter);
  // The default box is (0, 0, w, h) held in C floats, as _imaging.c passes it.
  const bool need_horizontal = width != in.width;
  const bool need_vertical = height != in.height;
  Taps vert = precompute_taps(in.height, 0.0f, static_cast<float>(in.height), height, f);
  // Only the input rows the vertical pass reads are resampled horizontally.
  const int ybox_first = vert.first[0];
  const int ybox_last = vert.first[height - 1] + vert.count[height - 1];

  std::vector<uint8_t> temp;
  const uint8_t* src = in.rgb.data();
  int src_w = in.width;
  if (need_horizontal) {
    Taps horiz = precompute_taps(in.width, 0.0f, static_cast<float>(in.width), width, f);
    const int rows = ybox_last - ybox_first;
    temp.resize(static_cast<size_t>(rows) * width * 3);
    horizontal_pass(in.rgb.data(), in.width, ybox_first, rows, temp.data(), width, horiz,
                    in.rgb.data() + in.rgb.size());
    for (int& y : vert.first) y -= ybox_first;
    src = temp.data();
    src_w = width;
  }
  Image out;
  out.width = width;
  out.height = height;
  if (need_vertical) {
    out.rgb.resize(static_cast<size_t>(width) * height * 3);
    vertical_pass(src, src_w, out.rgb.data(), height, vert);
  } else {
    out.rgb = std::move(temp);  // horizontal only: ybox covers every row
  }
  return out;
}

Image center_crop(const Image& in, int crop_height, int crop_width) {
  check_image(in, "center_crop");
  check_output_size(crop_width, crop_height, "center_crop");
  // Python floor division: (H - crop) // 2 rounds toward minus infinity. When the crop is
  // larger, transformers pads the image into a zero canvas at ceil((crop - H) / 2), which is
  // exactly -((H - crop) // 2), so output row y always shows image row y + top (zero if outside).
  auto floor_half = [](int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  const int top = floor_half(in.height - crop_height);
  const int left = floor_half(in.width - crop_width);
  Image out;
  out.width = crop_width;
  out.height = crop_height;
  out.rgb.assign(static_cast<size_t>(crop_width) * crop_height * 3, 0);
  const int x0 = std::max(0, -left), x1 = std::min(crop_width, in.width - left);
  for (int y = 0; y < crop_height; ++y) {
    const int sy = y + top;
    if (sy < 0 || sy >= in.height || x1 <= x0) continue;
    std::memcpy(&out.rgb[(static_cast<size_t>(y) * crop_width + x0) * 3],
                &in.rgb[(static_cast<size_t>(sy) * in.width + (x0 + left)) * 3], static_cast<size_t>(x1 - x0) * 3);
  }
  return out;
}

Tensor to_pixel_values(const Image& image, const NormalizeParams& p) {
  check_image(image, "to_pixel_values");
  // Every output value is a function of one byte and its channel: tabulate the 3 x 256 values
  // with numpy's exact op sequence, then scatter HWC -> CHW.
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    const float mean = static_cast<float>(p.mean[c]);
    const float std = static_cast<float>(p.std[c]);
    for (int v = 0; v < 256; ++v) {
      float x = p.do_rescale ? static_cast<float>(static_cast<double>(v) * p.rescale_factor) : static_cast<float>(v);
      if (p.do_normalize) {
        const float centered = x - mean;
        x = centered / std;
      }
      table[c][v] = x;
    }
  }
  const int64_t h = image.height, w = image.width;
  Tensor out = Tensor::zeros(DType::F32, {1, 3, h, w});
  float* o = out.data<float>();
  const uint8_t* src = image.rgb.data();
  const size_t plane = static_cast<size_t>(h * w);
  for (size_t i = 0; i < plane; ++i) {
    o[i] = table[0][src[i * 3]];
    o[plane + i] = table[1][src[i * 3 + 1]];
    o[2 * plane + i] = table[2][src[i * 3 + 2]];
  }
  return out;
}

}  // namespace lumen

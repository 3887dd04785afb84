#include "grounding/draw.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace lumen::grounding {

namespace {

// The classic 5x7 LCD font, ASCII 32..126: 5 columns per glyph, bit 0 = top row.
constexpr uint8_t kFont[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x00, 0x08, 0x14, 0x22, 0x41}, {0x14, 0x14, 0x14, 0x14, 0x14},
    {0x41, 0x22, 0x14, 0x08, 0x00}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x01, 0x01},
    {0x3E, 0x41, 0x41, 0x51, 0x32}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x04, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x7F, 0x20, 0x18, 0x20, 0x7F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x03, 0x04, 0x78, 0x04, 0x03}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x00, 0x7F, 0x41, 0x41},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x41, 0x41, 0x7F, 0x00, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x08, 0x14, 0x54, 0x54, 0x3C},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x44, 0x3D, 0x00},
    {0x00, 0x7F, 0x10, 0x28, 0x44}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0x7C, 0x14, 0x14, 0x14, 0x08},
    {0x08, 0x14, 0x14, 0x18, 0x7C}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C},
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x08, 0x04, 0x08, 0x10, 0x08},
};

constexpr std::array<std::array<uint8_t, 3>, 12> kPalette = {{{230, 25, 75},
                                                              {60, 180, 75},
                                                              {0, 130, 200},
                                                              {245, 130, 48},
                                                              {145, 30, 180},
                                                              {70, 240, 240},
                                                              {240, 50, 230},
                                                              {210, 245, 60},
                                                              {0, 128, 128},
                                                              {170, 110, 40},
                                                              {128, 0, 0},
                                                              {0, 0, 128}}};

void put(Image& img, int x, int y, std::array<uint8_t, 3> c) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  uint8_t* p = &img.rgb[(static_cast<size_t>(y) * static_cast<size_t>(img.width) + static_cast<size_t>(x)) * 3];
  p[0] = c[0];
  p[1] = c[1];
  p[2] = c[2];
}

void fill_rect(Image& img, int x0, int y0, int x1, int y1, std::array<uint8_t, 3> c) {
  x0 = std::max(x0, 0);
  y0 = std::max(y0, 0);
  x1 = std::min(x1, img.width);
  y1 = std::min(y1, img.height);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) put(img, x, y, c);
}

int to_px(double v, int hi) {
  if (std::isnan(v)) return 0;
  return static_cast<int>(std::clamp(std::lround(v), 0L, static_cast<long>(hi)));
}

// Black or white, whichever reads better on c.
std::array<uint8_t, 3> ink_for(std::array<uint8_t, 3> c) {
  const double lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
  return lum > 140 ? std::array<uint8_t, 3>{0, 0, 0} : std::array<uint8_t, 3>{255, 255, 255};
}

// The phrase, else the element type, else "#n". (Built with snprintf: string concatenation here
// trips GCC 12's -Wrestrict false positive, GCC bug 105651.)
std::string label_text(const Entity& e, size_t i) {
  if (!e.phrase.empty()) return e.phrase;
  if (!e.label.empty()) return e.label;
  char buf[32];
  std::snprintf(buf, sizeof buf, "#%zu", i + 1);
  return std::string(buf);
}

}  // namespace

std::array<uint8_t, 3> entity_color(size_t i) {
  auto c = kPalette[i % kPalette.size()];
  if ((i / kPalette.size()) % 2 == 1)
    for (auto& v : c) v = static_cast<uint8_t>(v / 2 + 64);
  return c;
}

int text_width(const std::string& text, int scale) { return static_cast<int>(text.size()) * 6 * scale; }
int text_height(int scale) { return 8 * scale; }

int draw_text(Image& image, int x, int y, const std::string& text, int scale, std::array<uint8_t, 3> color) {
  int cx = x;
  for (char ch : text) {
    const unsigned char u = static_cast<unsigned char>(ch);
    const uint8_t* g = kFont[(u >= 32 && u <= 126) ? u - 32 : '?' - 32];
    for (int col = 0; col < 5; ++col)
      for (int row = 0; row < 7; ++row)
        if (g[col] & (1 << row))
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx) put(image, cx + col * scale + dx, y + row * scale + dy, color);
    cx += 6 * scale;
  }
  return cx - x;
}

Image draw_entities(const Image& image, const std::vector<Entity>& entities, const DrawOptions& o,
                    std::vector<LabelBox>* labels) {
  Image out = image;
  if (out.width <= 0 || out.height <= 0) return out;
  const int shorter = std::min(out.width, out.height);
  const int lw = o.line_width > 0 ? o.line_width : std::max(2, shorter / 200);
  const int scale = o.font_scale > 0 ? o.font_scale : std::max(2, shorter / 250);
  // Boxes and points first, labels on top so no later box hides a label's text.
  struct Pending {
    int x, y;
    std::string text;
    std::array<uint8_t, 3> color;
  };
  std::vector<Pending> pending;
  for (size_t i = 0; i < entities.size(); ++i) {
    const Entity& e = entities[i];
    const auto c = entity_color(i);
    const std::string text = label_text(e, i);
    for (const Box& b : e.boxes) {
      const int x0 = to_px(std::min(b.x0, b.x1), out.width - 1), x1 = to_px(std::max(b.x0, b.x1), out.width - 1);
      const int y0 = to_px(std::min(b.y0, b.y1), out.height - 1), y1 = to_px(std::max(b.y0, b.y1), out.height - 1);
      fill_rect(out, x0, y0, x1 + 1, std::min(y0 + lw, y1 + 1), c);
      fill_rect(out, x0, std::max(y1 + 1 - lw, y0), x1 + 1, y1 + 1, c);
      fill_rect(out, x0, y0, std::min(x0 + lw, x1 + 1), y1 + 1, c);
      fill_rect(out, std::max(x1 + 1 - lw, x0), y0, x1 + 1, y1 + 1, c);
      pending.push_back({x0, y0, text, c});
    }
    for (const Point& p : e.points) {
      const int x = to_px(p.x, out.width - 1), y = to_px(p.y, out.height - 1), r = 2 * lw + 1;
      fill_rect(out, x - r, y - lw / 2, x + r + 1, y - lw / 2 + lw, c);
      fill_rect(out, x - lw / 2, y - r, x - lw / 2 + lw, y + r + 1, c);
      pending.push_back({x, y, text, c});
    }
  }
  for (const auto& p : pending) {
    const int pad = scale;
    const int w = text_width(p.text, scale) + 2 * pad, h = text_height(scale) + pad;
    // Above the box when there is room, else inside its top edge; kept within the image.
    int lx = std::clamp(p.x, 0, std::max(0, out.width - w));
    int ly = p.y - h >= 0 ? p.y - h : p.y;
    ly = std::clamp(ly, 0, std::max(0, out.height - h));
    fill_rect(out, lx, ly, lx + w, ly + h, p.color);
    draw_text(out, lx + pad, ly + pad, p.text, scale, ink_for(p.color));
    if (labels) labels->push_back({lx, ly, std::min(lx + w, out.width), std::min(ly + h, out.height)});
  }
  return out;
}

void write_png(const std::string& path, const Image& image) {
  LUMEN_CHECK(image.width > 0 && image.height > 0 &&
                  image.rgb.size() == static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3,
              path, ": cannot write an empty or inconsistent image (", image.width, "x", image.height, ")");
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(image.width);
  img.height = static_cast<png_uint_32>(image.height);
  img.format = PNG_FORMAT_RGB;
  const std::string tmp = path + ".tmp";
  if (!png_image_write_to_file(&img, tmp.c_str(), 0, image.rgb.data(), 0, nullptr)) {
    std::remove(tmp.c_str());
    fail(path, ": cannot write PNG: ", img.message);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": cannot move the written PNG into place");
  }
}

}  // namespace lumen::grounding

// Draws grounded entities on an image: each entity's boxes outlined and its points marked in
// a colour of its own, its phrase written on a filled label above the box (a built-in 5x7
// bitmap font, scaled with the image, so no font files are needed), and PNG output.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "grounding/grounding.h"
#include "vision/image.h"

namespace lumen::grounding {

struct DrawOptions {
  int line_width = 0;  // 0 = from the image size (about 1/200 of the shorter side, at least 2)
  int font_scale = 0;  // pixels per font dot; 0 = from the image size (at least 2)
};

// The colour of entity i (distinct for the first 12, then repeating with a shade change).
std::array<uint8_t, 3> entity_color(size_t i);

// Where draw_entities put the label of an entity (for tests and front ends).
struct LabelBox {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // filled background, [x0, x1) x [y0, y1)
};

// A copy of `image` with the entities' boxes (original-image pixels) and points drawn and
// labelled. `labels` (optional) receives each box's label rectangle in drawing order.
Image draw_entities(const Image& image, const std::vector<Entity>& entities, const DrawOptions& options = {},
                    std::vector<LabelBox>* labels = nullptr);

// Writes RGB 8-bit PNG (libpng); errors name the file.
void write_png(const std::string& path, const Image& image);
// Renders `text` (printable ASCII; others drawn as '?') at (x, y) top-left with `scale`
// pixels per dot; returns the width drawn. Clipped to the image.
int draw_text(Image& image, int x, int y, const std::string& text, int scale, std::array<uint8_t, 3> color);
int text_width(const std::string& text, int scale);
int text_height(int scale);

}  // namespace lumen::grounding

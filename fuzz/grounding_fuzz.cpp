// libFuzzer target: every grounding parser on arbitrary model output (any bytes, not only
// valid UTF-8), under a non-trivial geometry, and each parsed box written back by the
// formatters. Parsers must never throw; formatters may only throw lumen::Error (for boxes
// they cannot write). Spans must lie inside the cleaned text, boxes inside the image.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "grounding/grounding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lumen::grounding;
  if (size > 1 << 14) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const ImageGeometry geometries[] = {ImageGeometry::resize_center_crop(640, 480, 298, 224, 224, 224),
                                      ImageGeometry::pad_to_square(300, 120, 336)};
  for (const ImageGeometry& g : geometries) {
    for (Format f : all_formats()) {
      GroundedText t = parse(f, text, g);
      for (const Entity& e : t.entities) {
        if (e.byte_start < 0 || e.byte_end < e.byte_start || e.byte_end > static_cast<int64_t>(t.text.size())) {
          if (f != Format::Kosmos2) std::abort();  // KOSMOS-2 keeps the reference's spans (may be -1)
        }
        for (const Box& b : e.boxes) {
          if (!(b.x0 >= 0 && b.x1 <= g.width && b.y0 >= 0 && b.y1 <= g.height)) std::abort();
          try {
            (void)format_box(f, b, g, e.phrase);
          } catch (const lumen::Error&) {
          }
        }
        for (const Point& p : e.points) {
          if (!(p.x >= 0 && p.x <= g.width && p.y >= 0 && p.y <= g.height)) std::abort();
          try {
            (void)format_point(f, p, g, e.phrase);
          } catch (const lumen::Error&) {
          }
        }
      }
    }
  }
  return 0;
}

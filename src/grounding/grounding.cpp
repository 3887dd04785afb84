#include "grounding/grounding.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>

#include "core/error.h"
#include "vision/image_processor.h"

namespace lumen::grounding {

// ---- geometry ------------------------------------------------------------------------------

double iou(const Box& a, const Box& b) {
  const double ix0 = std::max(a.x0, b.x0), iy0 = std::max(a.y0, b.y0);
  const double ix1 = std::min(a.x1, b.x1), iy1 = std::min(a.y1, b.y1);
  const double inter = (ix1 > ix0 && iy1 > iy0) ? (ix1 - ix0) * (iy1 - iy0) : 0.0;
  const double uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

ImageGeometry ImageGeometry::identity(double width, double height) { return resize(width, height, width, height); }

ImageGeometry ImageGeometry::resize(double width, double height, double view_w, double view_h) {
  LUMEN_CHECK(width > 0 && height > 0 && view_w > 0 && view_h > 0, "image geometry: sizes must be positive (image ",
              width, "x", height, ", view ", view_w, "x", view_h, ")");
  ImageGeometry g;
  g.width = width;
  g.height = height;
  g.view_w = view_w;
  g.view_h = view_h;
  g.scale_x = view_w / width;
  g.scale_y = view_h / height;
  return g;
}

ImageGeometry ImageGeometry::resize_center_crop(double width, double height, int resized_w, int resized_h, int crop_w,
                                                int crop_h) {
  ImageGeometry g = resize(width, height, resized_w, resized_h);
  LUMEN_CHECK(crop_w > 0 && crop_h > 0, "image geometry: crop size must be positive");
  g.view_w = crop_w;
  g.view_h = crop_h;
  // image_transforms.center_crop: top = (orig_h - crop_h) // 2 (floor, also when negative:
  // the image is then padded and placed at -top).
  const auto floor_half = [](int v) { return static_cast<int>(std::floor(v / 2.0)); };
  g.offset_x = -floor_half(resized_w - crop_w);
  g.offset_y = -floor_half(resized_h - crop_h);
  return g;
}

ImageGeometry ImageGeometry::pad_to_square(double width, double height, double view) {
  const double side = std::max(width, height);
  ImageGeometry g = resize(width, height, view, view);
  g.scale_x = g.scale_y = view / side;
  g.offset_x = std::floor((side - width) / 2) * g.scale_x;
  g.offset_y = std::floor((side - height) / 2) * g.scale_y;
  return g;
}

ImageGeometry ImageGeometry::letterbox(double width, double height, double view_w, double view_h) {
  ImageGeometry g = resize(width, height, view_w, view_h);
  const double s = std::min(view_w / width, view_h / height);
  g.scale_x = g.scale_y = s;
  g.offset_x = (view_w - width * s) / 2;
  g.offset_y = (view_h - height * s) / 2;
  return g;
}

ImageGeometry ImageGeometry::from_processor(const ImageProcessor& p, int width, int height) {
  LUMEN_CHECK(!p.is_anyres(), "image geometry: tiling (AnyRes) processors have no single view");
  int rh = height, rw = width;
  if (p.do_resize()) std::tie(rh, rw) = p.resize_output_size(height, width);
  if (p.do_center_crop()) return resize_center_crop(width, height, rw, rh, p.crop_width(), p.crop_height());
  return resize(width, height, rw, rh);
}

namespace {
double clampd(double v, double lo, double hi) { return std::isnan(v) ? lo : std::min(hi, std::max(lo, v)); }
}  // namespace

Point ImageGeometry::to_original(const Point& n) const {
  Point p;
  p.x = clampd((n.x * view_w - offset_x) / scale_x, 0, width);
  p.y = clampd((n.y * view_h - offset_y) / scale_y, 0, height);
  return p;
}

Box ImageGeometry::to_original(const Box& n) const {
  const Point a = to_original(Point{n.x0, n.y0}), b = to_original(Point{n.x1, n.y1});
  return Box{a.x, a.y, b.x, b.y};
}

Point ImageGeometry::to_normalized(const Point& o) const {
  return Point{(o.x * scale_x + offset_x) / view_w, (o.y * scale_y + offset_y) / view_h};
}

Box ImageGeometry::to_normalized(const Box& o) const {
  const Point a = to_normalized(Point{o.x0, o.y0}), b = to_normalized(Point{o.x1, o.y1});
  return Box{a.x, a.y, b.x, b.y};
}

// ---- text helpers --------------------------------------------------------------------------

namespace {

// UTF-8 -> code points; invalid bytes become U+FFFD (one per byte), so nothing is lost track of.
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc >> 6) != 2) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
               (cp >= 0xD800 && cp <= 0xDFFF)))
      ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
    } else {
      out.push_back(cp);
      i += static_cast<size_t>(len);
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

int64_t utf8_length(std::u32string_view s) {
  int64_t n = 0;
  for (char32_t c : s) n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  return n;
}

// Python's str.isspace().
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Python's \d in a str pattern: Unicode category Nd.
int digit_value(char32_t c) {
  if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
  if (c < 0x80) return -1;
  if (u_charType(static_cast<UChar32>(c)) != U_DECIMAL_DIGIT_NUMBER) return -1;
  return u_charDigitValue(static_cast<UChar32>(c));
}

bool starts_with(const std::u32string& s, size_t i, std::u32string_view p) {
  return i <= s.size() && s.size() - i >= p.size() && std::u32string_view(s).substr(i, p.size()) == p;
}

// Strips Python-whitespace at both ends.
std::u32string_view py_strip(std::u32string_view s, size_t* leading = nullptr, size_t* trailing = nullptr) {
  size_t a = 0, b = s.size();
  while (a < b && py_isspace(s[a])) ++a;
  while (b > a && py_isspace(s[b - 1])) --b;
  if (leading) *leading = a;
  if (trailing) *trailing = s.size() - b;
  return s.substr(a, b - a);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

// ---- KOSMOS-2 ------------------------------------------------------------------------------

namespace {

// re.sub("<.*?>", "", s) on code points: from each '<', the shortest run to a '>' without a
// newline ('.' does not match \n) is removed; a '<' without one stays.
std::u32string strip_tags32(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == U'<') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != U'>' && s[j] != U'\n') ++j;
      if (j < s.size() && s[j] == U'>') {
        i = j + 1;
        continue;
      }
    }
    out.push_back(s[i]);
    ++i;
  }
  return out;
}

struct PatchNumber {
  int64_t value = 0;
  bool overflow = false;
};

// "<patch_index_" \d+ ">" at i; returns the end or npos.
size_t match_patch(const std::u32string& s, size_t i, PatchNumber* num) {
  static const std::u32string_view kOpen = U"<patch_index_";
  if (!starts_with(s, i, kOpen)) return std::u32string::npos;
  size_t j = i + kOpen.size();
  const size_t d0 = j;
  PatchNumber n;
  while (j < s.size()) {
    const int d = digit_value(s[j]);
    if (d < 0) break;
    if (n.value > (std::numeric_limits<int64_t>::max() - d) / 10) n.overflow = true;
    if (!n.overflow) n.value = n.value * 10 + d;
    ++j;
  }
  if (j == d0 || j >= s.size() || s[j] != U'>') return std::u32string::npos;
  if (n.overflow) n.value = std::numeric_limits<int64_t>::max();
  *num = n;
  return j + 1;
}

struct ObjectMatch {
  size_t end = 0;
  std::vector<std::pair<PatchNumber, PatchNumber>> pairs;
};

// <object>(?:PAIR</delimiter_of_multi_objects/>)*PAIR</object> at i. The regex's backtracking
// cannot succeed where this greedy scan fails: after the last pair only </object> may follow.
std::optional<ObjectMatch> match_object(const std::u32string& s, size_t i) {
  static const std::u32string_view kObj = U"<object>", kEnd = U"</object>",
                                   kDelim = U"</delimiter_of_multi_objects/>";
  if (!starts_with(s, i, kObj)) return std::nullopt;
  size_t p = i + kObj.size();
  ObjectMatch m;
  auto pair_at = [&](size_t at, size_t* end) -> bool {
    PatchNumber a, b;
    size_t e1 = match_patch(s, at, &a);
    if (e1 == std::u32string::npos) return false;
    size_t e2 = match_patch(s, e1, &b);
    if (e2 == std::u32string::npos) return false;
    m.pairs.push_back({a, b});
    *end = e2;
    return true;
  };
  if (!pair_at(p, &p)) return std::nullopt;
  while (starts_with(s, p, kDelim)) {
    size_t q;
    if (!pair_at(p + kDelim.size(), &q)) return std::nullopt;
    p = q;
  }
  if (!starts_with(s, p, kEnd)) return std::nullopt;
  m.end = p + kEnd.size();
  return m;
}

struct Kosmos2Match {
  size_t start = 0, end = 0;
  bool has_phrase = false;
  size_t phrase_start = 0, phrase_end = 0;
  std::vector<std::pair<PatchNumber, PatchNumber>> pairs;
};

std::optional<Kosmos2Match> match_entity(const std::u32string& s, size_t i) {
  static const std::u32string_view kPhrase = U"<phrase>", kPhraseEnd = U"</phrase>";
  if (starts_with(s, i, kPhrase)) {
    const size_t j = i + kPhrase.size();
    size_t k = j;
    while (k < s.size() && s[k] != U'<') ++k;
    if (k > j && starts_with(s, k, kPhraseEnd)) {
      if (auto o = match_object(s, k + kPhraseEnd.size())) {
        Kosmos2Match m;
        m.start = i;
        m.end = o->end;
        m.has_phrase = true;
        m.phrase_start = j;
        m.phrase_end = k;
        m.pairs = std::move(o->pairs);
        return m;
      }
    }
  }
  if (auto o = match_object(s, i)) {
    Kosmos2Match m;
    m.start = i;
    m.end = o->end;
    m.pairs = std::move(o->pairs);
    return m;
  }
  return std::nullopt;
}

struct RawEntity32 {
  std::u32string phrase;
  int64_t start = 0, end = 0;
  std::vector<std::pair<int64_t, int64_t>> pairs;
  bool overflow = false;
};

std::vector<RawEntity32> extract32(const std::u32string& s) {
  std::vector<RawEntity32> out;
  size_t i = 0;
  while (i < s.size()) {
    // Only '<' can start a match.
    if (s[i] != U'<') {
      ++i;
      continue;
    }
    auto m = match_entity(s, i);
    if (!m) {
      ++i;
      continue;
    }
    std::vector<std::pair<int64_t, int64_t>> pairs;
    bool overflow = false;
    for (const auto& [a, b] : m->pairs) {
      pairs.push_back({a.value, b.value});
      overflow = overflow || a.overflow || b.overflow;
    }
    if (m->has_phrase) {
      RawEntity32 e;
      e.phrase = s.substr(m->phrase_start, m->phrase_end - m->phrase_start);
      e.start = static_cast<int64_t>(m->phrase_start);
      e.end = static_cast<int64_t>(m->phrase_end);
      e.pairs = pairs;
      e.overflow = overflow;
      out.push_back(std::move(e));
    } else {
      // A phrase-less object: one fake entity per box, named by its (unpadded) indices, with an
      // empty span at <object>.
      for (const auto& pr : pairs) {
        RawEntity32 e;
        const std::string name =
            "<patch_index_" + std::to_string(pr.first) + "><patch_index_" + std::to_string(pr.second) + ">";
        e.phrase = decode_utf8(name);
        e.start = e.end = static_cast<int64_t>(m->start);
        e.pairs = {pr};
        e.overflow = overflow;
        out.push_back(std::move(e));
      }
    }
    i = m->end;
  }
  return out;
}

// Python floor division and modulo (grid > 0; idx may be any int64).
int64_t py_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t py_mod(int64_t a, int64_t b) { return a - py_div(a, b) * b; }

}  // namespace

std::string kosmos2_strip_tags(std::string_view text) { return encode_utf8(strip_tags32(decode_utf8(text))); }

std::vector<Kosmos2RawEntity> kosmos2_extract_entities_with_patch_indices(std::string_view text) {
  std::vector<Kosmos2RawEntity> out;
  for (auto& e : extract32(decode_utf8(text))) {
    Kosmos2RawEntity r;
    r.phrase = encode_utf8(e.phrase);
    r.start = e.start;
    r.end = e.end;
    r.patch_pairs = e.pairs;
    out.push_back(std::move(r));
  }
  return out;
}

Box kosmos2_patch_index_to_coordinate(int64_t ul_idx, int64_t lr_idx, int64_t grid) {
  LUMEN_CHECK(grid > 0, "KOSMOS-2 grid must be positive, got ", grid);
  const double cell = 1.0 / static_cast<double>(grid);
  const int64_t ul_x = py_mod(ul_idx, grid), ul_y = py_div(ul_idx, grid);
  const int64_t lr_x = py_mod(lr_idx, grid), lr_y = py_div(lr_idx, grid);
  Box b;
  if (ul_idx == lr_idx || ul_x == lr_x || ul_y == lr_y) {
    b.x0 = static_cast<double>(ul_x) * cell;
    b.y0 = static_cast<double>(ul_y) * cell;
    b.x1 = static_cast<double>(lr_x) * cell + cell;
    b.y1 = static_cast<double>(lr_y) * cell + cell;
  } else {
    b.x0 = static_cast<double>(ul_x) * cell + cell / 2;
    b.y0 = static_cast<double>(ul_y) * cell + cell / 2;
    b.x1 = static_cast<double>(lr_x) * cell + cell / 2;
    b.y1 = static_cast<double>(lr_y) * cell + cell / 2;
  }
  return b;
}

std::pair<int64_t, int64_t> kosmos2_coordinate_to_patch_index(const Box& b, int64_t grid) {
  LUMEN_CHECK(b.x1 > b.x0 && b.y1 > b.y0,
              "KOSMOS-2: the box should be (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got (", b.x0, ", ", b.y0, ", ",
              b.x1, ", ", b.y1, ")");
  LUMEN_CHECK(grid > 0, "KOSMOS-2 grid must be positive, got ", grid);
  const double g = static_cast<double>(grid);
  const auto ul_x = static_cast<int64_t>(std::floor(b.x0 * g)), ul_y = static_cast<int64_t>(std::floor(b.y0 * g));
  const auto lr_x = static_cast<int64_t>(std::ceil(b.x1 * g - 1)), lr_y = static_cast<int64_t>(std::ceil(b.y1 * g - 1));
  return {ul_y * grid + ul_x, lr_y * grid + lr_x};
}

GroundedText kosmos2_clean_text_and_extract_entities(std::string_view text, int64_t grid,
                                                     const ImageGeometry& geometry) {
  GroundedText out;
  const std::u32string s = decode_utf8(text);
  const std::u32string processed = strip_tags32(s);
  // _cleanup_spaces
  size_t leading = 0;
  const std::u32string_view cleaned = py_strip(processed, &leading, nullptr);
  out.text = encode_utf8(cleaned);
  for (auto& raw : extract32(s)) {
    // adjust_entity_positions: lengths of the prefixes with tags removed.
    const auto adj_start = static_cast<int64_t>(strip_tags32(std::u32string_view(s).substr(0, static_cast<size_t>(raw.start))).size());
    const auto adj_end = static_cast<int64_t>(strip_tags32(std::u32string_view(s).substr(0, static_cast<size_t>(raw.end))).size());
    size_t name_lead = 0, name_trail = 0;
    const std::u32string_view name = py_strip(raw.phrase, &name_lead, &name_trail);
    Entity e;
    e.phrase = encode_utf8(name);
    e.start = adj_start - static_cast<int64_t>(leading) + static_cast<int64_t>(name_lead);
    e.end = adj_end - static_cast<int64_t>(leading) - static_cast<int64_t>(name_trail);
    // Byte offsets where the span lies inside the cleaned text (it always does for phrases).
    const auto clamp_cp = [&](int64_t v) { return std::clamp<int64_t>(v, 0, static_cast<int64_t>(cleaned.size())); };
    e.byte_start = utf8_length(cleaned.substr(0, static_cast<size_t>(clamp_cp(e.start))));
    e.byte_end = utf8_length(cleaned.substr(0, static_cast<size_t>(clamp_cp(e.end))));
    if (raw.overflow)
      out.warnings.push_back("entity '" + e.phrase + "': a patch index does not fit 64 bits; clamped");
    for (const auto& [a, b] : raw.pairs) {
      const Box n = kosmos2_patch_index_to_coordinate(a, b, grid);
      if (a < 0 || b < 0 || a >= grid * grid || b >= grid * grid)
        out.warnings.push_back("entity '" + e.phrase + "': patch index pair (" + std::to_string(a) + ", " +
                               std::to_string(b) + ") is outside the " + std::to_string(grid) + "x" +
                               std::to_string(grid) + " grid; kept as the reference computes it");
      e.norm_boxes.push_back(n);
      e.boxes.push_back(geometry.to_original(n));
    }
    out.entities.push_back(std::move(e));
  }
  return out;
}

GroundedText kosmos2_post_process_generation(std::string_view text, const ImageGeometry& geometry, int64_t grid) {
  // caption = text.split("</image>")[-1]
  const size_t p = text.rfind("</image>");
  const std::string_view caption = p == std::string_view::npos ? text : text.substr(p + 8);
  return kosmos2_clean_text_and_extract_entities(caption, grid, geometry);
}

// ---- the other formats ---------------------------------------------------------------------

namespace {

// Builds the cleaned text while the parser walks the input (byte offsets, ASCII markup).
struct Cleaner {
  std::string out;
  GroundedText result;
  const ImageGeometry* geometry = nullptr;
  size_t last_entity_end = 0;  // in `out`: where the previous markup was removed

  Entity& add_entity(std::string phrase, size_t byte_start, size_t byte_end) {
    Entity e;
    e.phrase = std::move(phrase);
    e.byte_start = static_cast<int64_t>(byte_start);
    e.byte_end = static_cast<int64_t>(byte_end);
    result.entities.push_back(std::move(e));
    return result.entities.back();
  }
  void add_box(Entity& e, const Box& n) {
    e.norm_boxes.push_back(n);
    e.boxes.push_back(geometry->to_original(n));
  }
  void add_point(Entity& e, const Point& n) {
    e.norm_points.push_back(n);
    e.points.push_back(geometry->to_original(n));
  }
  void warn(std::string w) {
    if (result.warnings.size() < 64) result.warnings.push_back(std::move(w));
  }
  // The phrase a box refers to when the format has no phrase markup: the words written since
  // the previous box, after the last sentence break, trimmed.
  void phrase_before(size_t* start, size_t* end) const {
    size_t b = out.size();
    while (b > last_entity_end && (out[b - 1] == ' ' || out[b - 1] == '\t' || out[b - 1] == '\n')) --b;
    size_t a = b;
    while (a > last_entity_end) {
      const char c = out[a - 1];
      if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == '\n' || c == '(' ||
          c == ')' || c == ']' || c == '[')
        break;
      --a;
    }
    while (a < b && (out[a] == ' ' || out[a] == '\t')) ++a;
    *start = a;
    *end = b;
  }
  GroundedText finish() {
    result.text = out;
    // Code-point spans from byte spans.
    for (auto& e : result.entities) {
      auto cps = [&](int64_t bytes) {
        int64_t n = 0;
        for (int64_t i = 0; i < bytes && i < static_cast<int64_t>(out.size()); ++i)
          if ((static_cast<unsigned char>(out[static_cast<size_t>(i)]) & 0xC0) != 0x80) ++n;
        return n;
      };
      e.start = cps(e.byte_start);
      e.end = cps(e.byte_end);
    }
    return std::move(result);
  }
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// An unsigned decimal number at i ("12", "0.125", ".5"); returns the end or npos.
size_t scan_number(std::string_view s, size_t i, double* v, bool allow_fraction = true) {
  size_t j = i;
  while (j < s.size() && is_digit(s[j])) ++j;
  size_t int_end = j;
  if (allow_fraction && j < s.size() && s[j] == '.') {
    size_t k = j + 1;
    while (k < s.size() && is_digit(s[k])) ++k;
    if (k > j + 1) j = k;
  }
  if (j == i || (int_end == i && j == i)) return std::string_view::npos;
  if (j - i > 40) return std::string_view::npos;  // absurd lengths are not coordinates
  *v = std::strtod(std::string(s.substr(i, j - i)).c_str(), nullptr);
  return j;
}

size_t skip_spaces(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return i;
}

// A list "n, n, n, n" (2 or 4 numbers) at i, ending before `close`; returns end (at close) or npos.
size_t scan_tuple(std::string_view s, size_t i, char sep_group, char close, std::vector<std::vector<double>>* groups,
                  bool allow_fraction) {
  groups->clear();
  std::vector<double> cur;
  size_t j = skip_spaces(s, i);
  while (true) {
    double v;
    size_t k = scan_number(s, j, &v, allow_fraction);
    if (k == std::string_view::npos) return std::string_view::npos;
    cur.push_back(v);
    if (cur.size() > 4) return std::string_view::npos;
    j = skip_spaces(s, k);
    if (j >= s.size()) return std::string_view::npos;
    if (s[j] == ',') {
      j = skip_spaces(s, j + 1);
      continue;
    }
    if (s[j] == sep_group && sep_group != 0) {
      if (cur.size() != 2 && cur.size() != 4) return std::string_view::npos;
      groups->push_back(cur);
      cur.clear();
      j = skip_spaces(s, j + 1);
      continue;
    }
    if (s[j] == close) {
      if (cur.size() != 2 && cur.size() != 4) return std::string_view::npos;
      groups->push_back(cur);
      return j;
    }
    return std::string_view::npos;
  }
}

// Adds a group (2 numbers = point, 4 = box) in units of `scale` to entity e; reports and skips
// values outside [0, limit] and boxes with x1 < x0 or y1 < y0.
void add_group(Cleaner& c, Entity& e, const std::vector<double>& g, double scale, double limit, const char* what) {
  for (double v : g)
    if (!(v >= 0 && v <= limit)) {
      c.warn(std::string(what) + ": coordinate " + fmt("%g", v) + " is outside [0, " + fmt("%g", limit) +
             "]; skipped");
      return;
    }
  if (g.size() == 2) {
    c.add_point(e, Point{g[0] / scale, g[1] / scale});
    return;
  }
  if (g[2] < g[0] || g[3] < g[1]) {
    c.warn(std::string(what) + ": box with x1 < x0 or y1 < y0 (" + fmt("%g", g[0]) + ", " + fmt("%g", g[1]) + ", " +
           fmt("%g", g[2]) + ", " + fmt("%g", g[3]) + "); skipped");
    return;
  }
  c.add_box(e, Box{g[0] / scale, g[1] / scale, g[2] / scale, g[3] / scale});
}

// Shikra / LLaVA-1.5 ([a,b,c,d] and [a,b] in [0,1]), CogVLM ([[...]] on 000..999), SeeClick ((x, y)).
GroundedText parse_bracketed(Format f, std::string_view s, const ImageGeometry& g, const FormatOptions& o) {
  Cleaner c;
  c.geometry = &g;
  const bool cog = f == Format::CogVLM, seeclick = f == Format::SeeClick;
  const char open = seeclick ? '(' : '[';
  const char close = seeclick ? ')' : ']';
  const double scale = cog ? static_cast<double>(o.cogvlm_scale) : 1.0;
  const double limit = cog ? static_cast<double>(o.cogvlm_scale) - 1 : 1.0;
  const char* what = format_name(f);
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != open || (cog && (i + 1 >= s.size() || s[i + 1] != '['))) {
      c.out.push_back(s[i++]);
      continue;
    }
    std::vector<std::vector<double>> groups;
    size_t end = std::string_view::npos;
    size_t consumed = 0;
    if (cog) {
      // [[a,b,c,d];[a,b,c,d]] (CogVLM writes several boxes of one phrase separated by ';')
      size_t j = i + 1;
      std::vector<std::vector<double>> all;
      bool ok = true;
      while (ok) {
        if (j >= s.size() || s[j] != '[') {
          ok = false;
          break;
        }
        std::vector<std::vector<double>> one;
        size_t k = scan_tuple(s, j + 1, 0, ']', &one, /*allow_fraction=*/false);
        if (k == std::string_view::npos) {
          ok = false;
          break;
        }
        all.insert(all.end(), one.begin(), one.end());
        j = k + 1;
        if (j < s.size() && s[j] == ';') {
          ++j;
          continue;
        }
        if (j < s.size() && s[j] == ']') {
          end = j;
          break;
        }
        ok = false;
      }
      if (ok && end != std::string_view::npos) {
        groups = all;
        consumed = end + 1 - i;
      }
    } else {
      end = scan_tuple(s, i + 1, ';', close, &groups, /*allow_fraction=*/true);
      if (end != std::string_view::npos) consumed = end + 1 - i;
    }
    if (consumed == 0) {
      c.out.push_back(s[i++]);
      continue;
    }
    // Drop the space between phrase and coordinates ("a dog [0.1, ...]") and SeeClick's "click".
    if (seeclick) {
      size_t b = c.out.size();
      while (b > c.last_entity_end && c.out[b - 1] == ' ') --b;
      if (b >= c.last_entity_end + 5 && c.out.compare(b - 5, 5, "click") == 0) c.out.resize(b - 5);
    }
    while (!c.out.empty() && c.out.size() > c.last_entity_end && c.out.back() == ' ') c.out.pop_back();
    size_t ps, pe;
    c.phrase_before(&ps, &pe);
    Entity& e = c.add_entity(c.out.substr(ps, pe - ps), ps, pe);
    for (const auto& grp : groups) add_group(c, e, grp, scale, limit, what);
    c.last_entity_end = c.out.size();
    i += consumed;
  }
  return c.finish();
}

// Qwen-VL: <ref>phrase</ref><box>(x1,y1),(x2,y2)</box>..., boxes without a ref join the previous one.
GroundedText parse_qwen(std::string_view s, const ImageGeometry& g, const FormatOptions& o) {
  Cleaner c;
  c.geometry = &g;
  const double scale = static_cast<double>(o.qwen_scale);
  int64_t current = -1;  // entity the next <box> belongs to
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 5, "<ref>") == 0) {
      const size_t close = s.find("</ref>", i + 5);
      if (close == std::string_view::npos) {
        c.warn("qwen_vl: <ref> without </ref>; left as text");
        c.out.append(s.substr(i, 5));
        i += 5;
        continue;
      }
      const size_t a = c.out.size();
      c.out.append(s.substr(i + 5, close - i - 5));
      c.add_entity(std::string(s.substr(i + 5, close - i - 5)), a, c.out.size());
      current = static_cast<int64_t>(c.result.entities.size()) - 1;
      i = close + 6;
      continue;
    }
    if (s.compare(i, 5, "<box>") == 0) {
      // (x1,y1),(x2,y2)</box>
      size_t j = i + 5;
      std::vector<double> v;
      bool ok = true;
      for (int pt = 0; pt < 2 && ok; ++pt) {
        if (pt == 1) {
          if (j < s.size() && s[j] == ',') ++j;
          else ok = false;
        }
        if (!ok || j >= s.size() || s[j] != '(') {
          ok = false;
          break;
        }
        double x, y;
        size_t k = scan_number(s, j + 1, &x, false);
        if (k == std::string_view::npos || k >= s.size() || s[k] != ',') {
          ok = false;
          break;
        }
        size_t k2 = scan_number(s, k + 1, &y, false);
        if (k2 == std::string_view::npos || k2 >= s.size() || s[k2] != ')') {
          ok = false;
          break;
        }
        v.push_back(x);
        v.push_back(y);
        j = k2 + 1;
      }
      if (ok && s.compare(j, 6, "</box>") == 0) {
        if (current < 0) {
          c.add_entity("", c.out.size(), c.out.size());
          current = static_cast<int64_t>(c.result.entities.size()) - 1;
        }
        add_group(c, c.result.entities[static_cast<size_t>(current)], v, scale, scale, "qwen_vl");
        i = j + 6;
        continue;
      }
      c.warn("qwen_vl: malformed <box> at byte " + std::to_string(i) + "; removed");
      const size_t close = s.find("</box>", i);
      i = close == std::string_view::npos ? i + 5 : close + 6;
      continue;
    }
    // Text between entities ends the "current" ref for later stray boxes only at a new <ref>.
    c.out.push_back(s[i++]);
  }
  return c.finish();
}

// Token groups: PaliGemma <locDDDD> (y0 x0 y1 x1, label after) and Pix2Seq/Florence <loc_K>
// (x0 y0 x1 y1, phrase before).
GroundedText parse_loc_tokens(Format f, std::string_view s, const ImageGeometry& g, const FormatOptions& o) {
  Cleaner c;
  c.geometry = &g;
  const bool pali = f == Format::PaliGemma;
  const std::string prefix = pali ? "<loc" : "<loc_";
  const double bins = static_cast<double>(pali ? o.paligemma_bins : o.pix2seq_bins);
  auto token_at = [&](size_t i, int64_t* v, size_t* end) -> bool {
    if (s.compare(i, prefix.size(), prefix) != 0) return false;
    size_t j = i + prefix.size();
    const size_t d0 = j;
    while (j < s.size() && is_digit(s[j]) && j - d0 < 8) ++j;
    if (j == d0 || j >= s.size() || s[j] != '>') return false;
    if (pali && j - d0 != 4) return false;
    *v = std::stoll(std::string(s.substr(d0, j - d0)));
    *end = j + 1;
    return true;
  };
  size_t i = 0;
  while (i < s.size()) {
    int64_t v;
    size_t e;
    if (!token_at(i, &v, &e)) {
      // PaliGemma segmentation tokens are not boxes: removed.
      if (pali && s.compare(i, 4, "<seg") == 0) {
        size_t j = i + 4;
        while (j < s.size() && is_digit(s[j])) ++j;
        if (j > i + 4 && j < s.size() && s[j] == '>') {
          i = j + 1;
          continue;
        }
      }
      c.out.push_back(s[i++]);
      continue;
    }
    std::vector<int64_t> vals{v};
    size_t j = e;
    while (vals.size() < 4 && token_at(j, &v, &e)) {
      vals.push_back(v);
      j = e;
    }
    i = j;
    if (vals.size() != 4 && !(vals.size() == 2 && !pali)) {
      c.warn(std::string(format_name(f)) + ": " + std::to_string(vals.size()) +
             " location token(s) where a box needs 4; removed");
      continue;
    }
    bool in_range = true;
    for (int64_t x : vals)
      if (x < 0 || x >= static_cast<int64_t>(bins)) in_range = false;
    if (!in_range) {
      c.warn(std::string(format_name(f)) + ": location token outside 0.." + std::to_string(static_cast<int64_t>(bins) - 1) +
             "; skipped");
      continue;
    }
    if (pali) {
      // y0 x0 y1 x1, each value / bins (big_vision's PaliGemma detection decoding).
      const Box n{vals[1] / bins, vals[0] / bins, vals[3] / bins, vals[2] / bins};
      Entity& ent = c.add_entity("", c.out.size(), c.out.size());
      if (n.x1 < n.x0 || n.y1 < n.y0) {
        c.warn("paligemma: box with x1 < x0 or y1 < y0; skipped");
      } else {
        c.add_box(ent, n);
      }
      // The label: the text after the group up to ';', a newline, the next <loc or the end.
      size_t k = i;
      while (k < s.size() && s[k] != ';' && s[k] != '\n' && s.compare(k, 4, "<loc") != 0) ++k;
      std::string_view label = s.substr(i, k - i);
      size_t a = 0, b = label.size();
      while (a < b && label[a] == ' ') ++a;
      while (b > a && label[b - 1] == ' ') --b;
      c.out.append(label.substr(0, a));
      const size_t ls = c.out.size();
      c.out.append(label.substr(a, b - a));
      Entity& last = c.result.entities.back();
      last.phrase = std::string(label.substr(a, b - a));
      last.byte_start = static_cast<int64_t>(ls);
      last.byte_end = static_cast<int64_t>(c.out.size());
      c.out.append(label.substr(b));
      i = k;
      c.last_entity_end = c.out.size();
      continue;
    }
    // Pix2Seq / Florence-2: bin centres (k + 0.5) / bins, x first; the phrase precedes.
    size_t ps, pe;
    c.phrase_before(&ps, &pe);
    Entity& ent = c.add_entity(c.out.substr(ps, pe - ps), ps, pe);
    if (vals.size() == 2) {
      c.add_point(ent, Point{(vals[0] + 0.5) / bins, (vals[1] + 0.5) / bins});
    } else if (vals[2] < vals[0] || vals[3] < vals[1]) {
      c.warn("pix2seq: box with x1 < x0 or y1 < y0; skipped");
    } else {
      c.add_box(ent, Box{(vals[0] + 0.5) / bins, (vals[1] + 0.5) / bins, (vals[2] + 0.5) / bins, (vals[3] + 0.5) / bins});
    }
    c.last_entity_end = c.out.size();
  }
  return c.finish();
}

// KOSMOS-2.5 OCR: <bbox><x_A><y_B><x_C><y_D></bbox>line text; pixels of the resized view.
// As the model card's post-processing: boxes with x0 >= x1 or y0 >= y1 are dropped.
GroundedText parse_kosmos25(std::string_view s, const ImageGeometry& g) {
  Cleaner c;
  c.geometry = &g;
  auto coord = [&](size_t i, char axis, int64_t* v, size_t* end) -> bool {
    const std::string p = std::string("<") + axis + "_";
    if (s.compare(i, 3, p) != 0) return false;
    size_t j = i + 3;
    const size_t d0 = j;
    while (j < s.size() && is_digit(s[j]) && j - d0 < 9) ++j;
    if (j == d0 || j >= s.size() || s[j] != '>') return false;
    *v = std::stoll(std::string(s.substr(d0, j - d0)));
    *end = j + 1;
    return true;
  };
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 6, "<bbox>") != 0) {
      c.out.push_back(s[i++]);
      continue;
    }
    int64_t v[4];
    size_t j = i + 6, e;
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      ok = coord(j, k % 2 == 0 ? 'x' : 'y', &v[k], &e);
      if (ok) j = e;
    }
    if (!ok || s.compare(j, 7, "</bbox>") != 0) {
      c.warn("kosmos2_5: malformed <bbox> at byte " + std::to_string(i) + "; removed");
      const size_t close = s.find("</bbox>", i);
      i = close == std::string_view::npos ? i + 6 : close + 7;
      continue;
    }
    i = j + 7;
    size_t k = i;
    while (k < s.size() && s[k] != '\n' && s.compare(k, 6, "<bbox>") != 0) ++k;
    const size_t ls = c.out.size();
    c.out.append(s.substr(i, k - i));
    Entity& ent = c.add_entity(std::string(s.substr(i, k - i)), ls, c.out.size());
    if (v[0] >= v[2] || v[1] >= v[3]) {
      c.warn("kosmos2_5: box with x0 >= x1 or y0 >= y1; dropped (as the reference post-processing)");
    } else {
      c.add_box(ent, Box{v[0] / g.view_w, v[1] / g.view_h, v[2] / g.view_w, v[3] / g.view_h});
    }
    i = k;
  }
  return c.finish();
}

// ScreenAI-style schema: one element per line, "TYPE [text] x0 y0 x1 y1" on 0..999.
GroundedText parse_screenai(std::string_view s, const ImageGeometry& g, const FormatOptions& o) {
  Cleaner c;
  c.geometry = &g;
  const double scale = static_cast<double>(o.screenai_scale);
  size_t i = 0;
  while (i <= s.size()) {
    size_t nl = s.find('\n', i);
    if (nl == std::string_view::npos) nl = s.size();
    std::string_view line = s.substr(i, nl - i);
    // Split into words.
    std::vector<std::pair<size_t, size_t>> words;
    for (size_t k = 0; k < line.size();) {
      while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
      const size_t a = k;
      while (k < line.size() && line[k] != ' ' && line[k] != '\t') ++k;
      if (k > a) words.push_back({a, k});
    }
    auto is_int = [&](std::pair<size_t, size_t> w) {
      for (size_t k = w.first; k < w.second; ++k)
        if (!is_digit(line[k])) return false;
      return w.second - w.first <= 9;
    };
    auto is_type = [&](std::pair<size_t, size_t> w) {
      for (size_t k = w.first; k < w.second; ++k)
        if (!((line[k] >= 'A' && line[k] <= 'Z') || line[k] == '_')) return false;
      return true;
    };
    const size_t n = words.size();
    if (n >= 5 && is_type(words[0]) && is_int(words[n - 1]) && is_int(words[n - 2]) && is_int(words[n - 3]) &&
        is_int(words[n - 4])) {
      std::vector<double> v;
      for (size_t k = n - 4; k < n; ++k)
        v.push_back(std::stod(std::string(line.substr(words[k].first, words[k].second - words[k].first))));
      const size_t line_start = c.out.size();
      const std::string_view head = line.substr(0, words[n - 5].second);
      c.out.append(head);
      const std::string type(line.substr(words[0].first, words[0].second - words[0].first));
      size_t ps = line_start + words[0].first, pe = line_start + words[0].second;
      if (n > 5) {
        ps = line_start + words[1].first;
        pe = line_start + words[n - 5].second;
      }
      Entity& e = c.add_entity(c.out.substr(ps, pe - ps), ps, pe);
      e.label = type;
      add_group(c, e, v, scale, scale - 1, "screenai");
    } else {
      c.out.append(line);
    }
    if (nl < s.size()) c.out.push_back('\n');
    i = nl + 1;
  }
  return c.finish();
}

}  // namespace

const char* format_name(Format f) {
  switch (f) {
    case Format::Kosmos2: return "kosmos2";
    case Format::PaliGemma: return "paligemma";
    case Format::Pix2Seq: return "pix2seq";
    case Format::Kosmos25: return "kosmos2_5";
    case Format::Shikra: return "shikra";
    case Format::QwenVL: return "qwen_vl";
    case Format::CogVLM: return "cogvlm";
    case Format::Llava15: return "llava_1_5";
    case Format::SeeClick: return "seeclick";
    case Format::ScreenAI: return "screenai";
  }
  return "?";
}

std::vector<Format> all_formats() {
  return {Format::Kosmos2, Format::PaliGemma, Format::Pix2Seq, Format::Kosmos25, Format::Shikra,
          Format::QwenVL,  Format::CogVLM,    Format::Llava15, Format::SeeClick, Format::ScreenAI};
}

std::optional<Format> format_from_name(std::string_view name) {
  for (Format f : all_formats())
    if (name == format_name(f)) return f;
  if (name == "kosmos-2") return Format::Kosmos2;
  if (name == "kosmos-2.5" || name == "kosmos2.5") return Format::Kosmos25;
  if (name == "qwen" || name == "qwen-vl") return Format::QwenVL;
  if (name == "llava" || name == "llava-1.5") return Format::Llava15;
  if (name == "florence2") return Format::Pix2Seq;
  return std::nullopt;
}

GroundedText parse(Format f, std::string_view text, const ImageGeometry& g, const FormatOptions& o) {
  switch (f) {
    case Format::Kosmos2: return kosmos2_post_process_generation(text, g, o.kosmos2_grid);
    case Format::PaliGemma:
    case Format::Pix2Seq: return parse_loc_tokens(f, text, g, o);
    case Format::Kosmos25: return parse_kosmos25(text, g);
    case Format::QwenVL: return parse_qwen(text, g, o);
    case Format::ScreenAI: return parse_screenai(text, g, o);
    case Format::Shikra:
    case Format::CogVLM:
    case Format::Llava15:
    case Format::SeeClick: return parse_bracketed(f, text, g, o);
  }
  return {};
}

// ---- formatters ----------------------------------------------------------------------------

namespace {

int64_t quantize(double v, double bins) {
  return std::clamp<int64_t>(static_cast<int64_t>(std::floor(v * bins + 1e-9)), 0, static_cast<int64_t>(bins) - 1);
}
int64_t round_scaled(double v, double scale, int64_t hi) {
  return std::clamp<int64_t>(static_cast<int64_t>(std::llround(v * scale)), 0, hi);
}
std::string pad(int64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*lld", width, static_cast<long long>(v));
  return buf;
}
double unit(double v) { return std::clamp(v, 0.0, 1.0); }

}  // namespace

std::string format_box(Format f, const Box& original, const ImageGeometry& g, std::string_view phrase,
                       const FormatOptions& o) {
  LUMEN_CHECK(original.x1 >= original.x0 && original.y1 >= original.y0, format_name(f),
              ": box needs x1 >= x0 and y1 >= y0, got (", original.x0, ", ", original.y0, ", ", original.x1, ", ",
              original.y1, ")");
  const Box n0 = g.to_normalized(original);
  const Box n{unit(n0.x0), unit(n0.y0), unit(n0.x1), unit(n0.y1)};
  const std::string p(phrase);
  switch (f) {
    case Format::Kosmos2: {
      const auto [a, b] = kosmos2_coordinate_to_patch_index(n, o.kosmos2_grid);
      std::string s = p.empty() ? "" : "<phrase>" + p + "</phrase>";
      return s + "<object><patch_index_" + pad(a, 4) + "><patch_index_" + pad(b, 4) + "></object>";
    }
    case Format::PaliGemma: {
      const double bins = static_cast<double>(o.paligemma_bins);
      std::string s = "<loc" + pad(quantize(n.y0, bins), 4) + "><loc" + pad(quantize(n.x0, bins), 4) + "><loc" +
                      pad(quantize(n.y1, bins), 4) + "><loc" + pad(quantize(n.x1, bins), 4) + ">";
      return p.empty() ? s : s + " " + p;
    }
    case Format::Pix2Seq: {
      const double bins = static_cast<double>(o.pix2seq_bins);
      return p + "<loc_" + std::to_string(quantize(n.x0, bins)) + "><loc_" + std::to_string(quantize(n.y0, bins)) +
             "><loc_" + std::to_string(quantize(n.x1, bins)) + "><loc_" + std::to_string(quantize(n.y1, bins)) + ">";
    }
    case Format::Kosmos25: {
      const auto px = [&](double v, double side) { return std::to_string(std::llround(v * side)); };
      return "<bbox><x_" + px(n.x0, g.view_w) + "><y_" + px(n.y0, g.view_h) + "><x_" + px(n.x1, g.view_w) + "><y_" +
             px(n.y1, g.view_h) + "></bbox>" + p;
    }
    case Format::Shikra:
      return p + "[" + fmt("%.3f", n.x0) + "," + fmt("%.3f", n.y0) + "," + fmt("%.3f", n.x1) + "," + fmt("%.3f", n.y1) +
             "]";
    case Format::QwenVL: {
      const double s = static_cast<double>(o.qwen_scale);
      const auto q = [&](double v) { return std::to_string(round_scaled(v, s, o.qwen_scale)); };
      return (p.empty() ? "" : "<ref>" + p + "</ref>") + "<box>(" + q(n.x0) + "," + q(n.y0) + "),(" + q(n.x1) + "," +
             q(n.y1) + ")</box>";
    }
    case Format::CogVLM: {
      const double s = static_cast<double>(o.cogvlm_scale);
      const auto q = [&](double v) { return pad(round_scaled(v, s, o.cogvlm_scale - 1), 3); };
      return p + "[[" + q(n.x0) + "," + q(n.y0) + "," + q(n.x1) + "," + q(n.y1) + "]]";
    }
    case Format::Llava15:
      return (p.empty() ? "" : p + " ") + "[" + fmt("%.2f", n.x0) + ", " + fmt("%.2f", n.y0) + ", " + fmt("%.2f", n.x1) +
             ", " + fmt("%.2f", n.y1) + "]";
    case Format::SeeClick:
      return (p.empty() ? "" : p + " ") + "(" + fmt("%.2f", n.x0) + "," + fmt("%.2f", n.y0) + "," + fmt("%.2f", n.x1) +
             "," + fmt("%.2f", n.y1) + ")";
    case Format::ScreenAI: {
      const double s = static_cast<double>(o.screenai_scale);
      const auto q = [&](double v) { return std::to_string(round_scaled(v, s, o.screenai_scale - 1)); };
      return "TEXT" + (p.empty() ? "" : " " + p) + " " + q(n.x0) + " " + q(n.y0) + " " + q(n.x1) + " " + q(n.y1);
    }
  }
  return "";
}

std::string format_point(Format f, const Point& original, const ImageGeometry& g, std::string_view phrase,
                         const FormatOptions& o) {
  const Point n0 = g.to_normalized(original);
  const Point n{unit(n0.x), unit(n0.y)};
  const std::string p(phrase);
  switch (f) {
    case Format::Shikra: return p + "[" + fmt("%.3f", n.x) + "," + fmt("%.3f", n.y) + "]";
    case Format::CogVLM: {
      const double s = static_cast<double>(o.cogvlm_scale);
      return p + "[[" + pad(round_scaled(n.x, s, o.cogvlm_scale - 1), 3) + "," +
             pad(round_scaled(n.y, s, o.cogvlm_scale - 1), 3) + "]]";
    }
    case Format::SeeClick: return (p.empty() ? "" : p + " ") + "click (" + fmt("%.2f", n.x) + ", " + fmt("%.2f", n.y) + ")";
    case Format::Pix2Seq: {
      const double bins = static_cast<double>(o.pix2seq_bins);
      return p + "<loc_" + std::to_string(quantize(n.x, bins)) + "><loc_" + std::to_string(quantize(n.y, bins)) + ">";
    }
    default: break;
  }
  fail(format_name(f), ": the format has no way to write a point");
}

}  // namespace lumen::grounding

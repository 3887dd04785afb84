// Grounding: the ways models write where things are, both directions.
//
//   special tokens   KOSMOS-2 <phrase>..</phrase><object><patch_index_A><patch_index_B></object>
//                    (P x P grid), PaliGemma <locYYYY> (y before x, 1024 bins), Pix2Seq-style
//                    1000-bin <loc_K> tokens (x first, Florence-2 spelling), KOSMOS-2.5
//                    <bbox><x_A><y_B><x_C><y_D></bbox> (pixels of the model's resized view)
//   text coordinates Shikra [x0,y0,x1,y1] / [x,y] in [0,1] with 3 decimals, Qwen-VL
//                    <ref>..</ref><box>(x1,y1),(x2,y2)</box> on 0..1000, CogVLM
//                    [[x0,y0,x1,y1]] on 000..999, LLaVA-1.5 [0.12, 0.34, 0.56, 0.78],
//                    SeeClick click (x, y), ScreenAI schema lines "BUTTON text x0 y0 x1 y1"
//
// Every parser returns the text with the markup removed and entities {phrase, span, boxes,
// points}: `norm_*` in the model's own normalised frame (what the format encodes, [0,1] of the
// image the model saw), and `boxes`/`points` in original-image pixels through an ImageGeometry
// that undoes the processor's resize / center crop / padding. Parsers never throw on model
// output: malformed or out-of-range pieces are skipped (or kept, where the reference keeps
// them) and described in `warnings`. Formatters write a region into a prompt (referring
// questions) in the same format.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lumen {
class ImageProcessor;
}

namespace lumen::grounding {

struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  double width() const { return x1 - x0; }
  double height() const { return y1 - y0; }
  double area() const { return width() > 0 && height() > 0 ? width() * height() : 0.0; }
};
struct Point {
  double x = 0, y = 0;
};

double iou(const Box& a, const Box& b);

// How the image the model saw (its "view", view_w x view_h pixels) relates to the original
// image (width x height): view = original * scale + offset, per axis. Resize scales; a center
// crop is a negative offset; padding (letterbox, LLaVA's expand2square) a positive one.
struct ImageGeometry {
  double width = 1, height = 1;        // original image
  double view_w = 1, view_h = 1;       // the model's input
  double scale_x = 1, scale_y = 1;
  double offset_x = 0, offset_y = 0;

  // The model saw the whole image as is (normalised coordinates are fractions of it).
  static ImageGeometry identity(double width, double height);
  // Resized (squashed) to view_w x view_h (SigLIP, BLIP, KOSMOS-2's 224x224 processor).
  static ImageGeometry resize(double width, double height, double view_w, double view_h);
  // Resized to (resized_w, resized_h), then center-cropped to crop_w x crop_h as
  // transformers' center_crop does (top = (resized_h - crop_h) // 2; a crop larger than the
  // image pads).
  static ImageGeometry resize_center_crop(double width, double height, int resized_w, int resized_h, int crop_w,
                                          int crop_h);
  // Padded to a centered square of the longer side (LLaVA-1.5 expand2square: offset
  // (side - w) // 2), then resized to view x view.
  static ImageGeometry pad_to_square(double width, double height, double view);
  // Scaled to fit view_w x view_h keeping the aspect ratio, centered, the rest padded.
  static ImageGeometry letterbox(double width, double height, double view_w, double view_h);
  // What an image processor does to an image of this size (resize, center crop).
  static ImageGeometry from_processor(const ImageProcessor& processor, int width, int height);

  // [0,1] of the view -> original pixels, clamped to the image.
  Box to_original(const Box& normalized) const;
  Point to_original(const Point& normalized) const;
  // Original pixels -> [0,1] of the view (for formatters).
  Box to_normalized(const Box& original) const;
  Point to_normalized(const Point& original) const;
};

struct Entity {
  std::string phrase;
  // [start, end) in the cleaned text, counted in Unicode code points (Python str offsets, as
  // the KOSMOS-2 reference reports them), and the same span in UTF-8 bytes.
  int64_t start = 0, end = 0;
  int64_t byte_start = 0, byte_end = 0;
  std::string label;                  // element type (ScreenAI "BUTTON"), else empty
  std::vector<Box> norm_boxes;        // the model's normalised frame
  std::vector<Point> norm_points;
  std::vector<Box> boxes;             // original-image pixels
  std::vector<Point> points;
};

struct GroundedText {
  std::string text;  // markup removed
  std::vector<Entity> entities;
  std::vector<std::string> warnings;  // what was malformed and how it was treated
};

enum class Format { Kosmos2, PaliGemma, Pix2Seq, Kosmos25, Shikra, QwenVL, CogVLM, Llava15, SeeClick, ScreenAI };
const char* format_name(Format f);  // "kosmos2", "paligemma", "pix2seq", "kosmos2_5", "shikra", ...
std::optional<Format> format_from_name(std::string_view name);
std::vector<Format> all_formats();

struct FormatOptions {
  int64_t kosmos2_grid = 32;        // patches per side (sqrt of the number of patch-index tokens)
  int64_t paligemma_bins = 1024;
  int64_t pix2seq_bins = 1000;
  int64_t qwen_scale = 1000;        // Qwen-VL: 0..1000
  int64_t cogvlm_scale = 1000;      // CogVLM: 000..999 read as /1000
  int64_t screenai_scale = 1000;    // ScreenAI schema: 0..999 read as /1000
};

// Parses model output written in format f. Never throws.
GroundedText parse(Format f, std::string_view text, const ImageGeometry& geometry, const FormatOptions& o = {});

// Writes a region (original-image pixels) the way format f writes it; `phrase` is included
// where the format has a place for it. A point is written where the format has points
// (Shikra, CogVLM, SeeClick); other formats throw lumen::Error for points.
std::string format_box(Format f, const Box& original, const ImageGeometry& geometry, std::string_view phrase = {},
                       const FormatOptions& o = {});
std::string format_point(Format f, const Point& original, const ImageGeometry& geometry, std::string_view phrase = {},
                         const FormatOptions& o = {});

// ---- KOSMOS-2, exactly as transformers' processing_kosmos2.py -------------------------------

// One entity of extract_entities_with_patch_indices: phrase (None -> "<patch_index_A><patch_index_B>"
// per box), span in the input (code points), patch-index pairs.
struct Kosmos2RawEntity {
  std::string phrase;
  int64_t start = 0, end = 0;
  std::vector<std::pair<int64_t, int64_t>> patch_pairs;
};
std::vector<Kosmos2RawEntity> kosmos2_extract_entities_with_patch_indices(std::string_view text);
// patch_index_to_coordinate: normalised (x1, y1, x2, y2) of a pair on a grid x grid layout.
Box kosmos2_patch_index_to_coordinate(int64_t ul_idx, int64_t lr_idx, int64_t grid);
// coordinate_to_patch_index; throws lumen::Error unless x2 > x1 and y2 > y1 (as the reference).
std::pair<int64_t, int64_t> kosmos2_coordinate_to_patch_index(const Box& normalized, int64_t grid);
// clean_text_and_extract_entities_with_bboxes: cleaned text, entities with norm_boxes (the
// reference's tuples); boxes in pixels through `geometry`.
GroundedText kosmos2_clean_text_and_extract_entities(std::string_view text, int64_t grid,
                                                     const ImageGeometry& geometry);
// Kosmos2Processor.post_process_generation: the part after the last "</image>", cleaned.
GroundedText kosmos2_post_process_generation(std::string_view text, const ImageGeometry& geometry,
                                             int64_t grid = 32);
// re.sub("<.*?>", "", text): every <...> tag on one line removed.
std::string kosmos2_strip_tags(std::string_view text);

}  // namespace lumen::grounding

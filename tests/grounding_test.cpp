// Grounding formats: KOSMOS-2 against the reference processor's documented results
// (transformers processing_kosmos2.py docstrings, the model docs and test_processor_kosmos2.py's
// patch indices), every other format parsed and written back, geometry, bad input, drawing.
#include <gtest/gtest.h>

#include <cmath>

#include "grounding/draw.h"
#include "grounding/grounding.h"
#include "runtime/grounding_session.h"
#include "tests/test_util.h"
#include "vision/image.h"

namespace lumen::grounding {
namespace {

const ImageGeometry kUnit = ImageGeometry::identity(1, 1);  // pixels == normalised coordinates

void expect_box(const Box& b, double x0, double y0, double x1, double y1, double tol = 1e-12) {
  EXPECT_NEAR(b.x0, x0, tol);
  EXPECT_NEAR(b.y0, y0, tol);
  EXPECT_NEAR(b.x1, x1, tol);
  EXPECT_NEAR(b.y1, y1, tol);
}

const char* kSnowman =
    "<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> warming "
    "himself by<phrase> a fire</phrase><object><patch_index_0005><patch_index_0911></object>.";

// extract_entities_with_patch_indices docstring:
// [(' a snowman', (31, 41), [(44, 863)]), (' a fire', (130, 137), [(5, 911)])]
TEST(Kosmos2Grounding, ExtractEntitiesDocstring) {
  auto e = kosmos2_extract_entities_with_patch_indices(kSnowman);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].phrase, " a snowman");
  EXPECT_EQ(e[0].start, 31);
  EXPECT_EQ(e[0].end, 41);
  ASSERT_EQ(e[0].patch_pairs.size(), 1u);
  EXPECT_EQ(e[0].patch_pairs[0], std::make_pair(int64_t{44}, int64_t{863}));
  EXPECT_EQ(e[1].phrase, " a fire");
  EXPECT_EQ(e[1].start, 130);
  EXPECT_EQ(e[1].end, 137);
  EXPECT_EQ(e[1].patch_pairs[0], std::make_pair(int64_t{5}, int64_t{911}));
}

// clean_text_and_extract_entities_with_bboxes docstring.
TEST(Kosmos2Grounding, CleanTextDocstring) {
  GroundedText g = kosmos2_clean_text_and_extract_entities(kSnowman, 32, kUnit);
  EXPECT_EQ(g.text, "An image of a snowman warming himself by a fire.");
  ASSERT_EQ(g.entities.size(), 2u);
  EXPECT_EQ(g.entities[0].phrase, "a snowman");
  EXPECT_EQ(g.entities[0].start, 12);
  EXPECT_EQ(g.entities[0].end, 21);
  expect_box(g.entities[0].norm_boxes.at(0), 0.390625, 0.046875, 0.984375, 0.828125);
  EXPECT_EQ(g.entities[1].phrase, "a fire");
  EXPECT_EQ(g.entities[1].start, 41);
  EXPECT_EQ(g.entities[1].end, 47);
  expect_box(g.entities[1].norm_boxes.at(0), 0.171875, 0.015625, 0.484375, 0.890625);
  EXPECT_TRUE(g.warnings.empty());
}

// The model docs' example: the generated text still holds the image placeholders' words.
TEST(Kosmos2Grounding, PostProcessGenerationDropsTheImagePart) {
  const std::string generated =
      std::string("<image>. the, to and of as in I that' for is was- on\xE2\x80\x99 it with The as at bet he have from by "
                  "are \" you his \xE2\x80\x9C this said not has an ( but had we her they will my or were their): up "
                  "about out who one all been she can more would It</image>") +
      kSnowman;
  GroundedText g = kosmos2_post_process_generation(generated, kUnit);
  EXPECT_EQ(g.text, "An image of a snowman warming himself by a fire.");
  ASSERT_EQ(g.entities.size(), 2u);
  EXPECT_EQ(g.entities[1].start, 41);
  // In pixels: a 640x480 image resized to 224x224 (microsoft/kosmos-2-patch14-224).
  GroundedText px = kosmos2_post_process_generation(generated, ImageGeometry::resize(640, 480, 224, 224));
  expect_box(px.entities[0].boxes.at(0), 0.390625 * 640, 0.046875 * 480, 0.984375 * 640, 0.828125 * 480, 1e-9);
}

// test_processor_kosmos2.py's two puppies: several boxes per phrase, a phrase at the end.
TEST(Kosmos2Grounding, MultipleBoxesPerPhrase) {
  const char* text =
      "<grounding><phrase> Two puppies</phrase><object><patch_index_0079><patch_index_1016></"
      "delimiter_of_multi_objects/><patch_index_0135><patch_index_1008></object> sit in a field of<phrase> "
      "grass</phrase><object><patch_index_0480><patch_index_1023></object> .";
  GroundedText g = kosmos2_clean_text_and_extract_entities(text, 32, kUnit);
  EXPECT_EQ(g.text, "Two puppies sit in a field of grass .");
  ASSERT_EQ(g.entities.size(), 2u);
  EXPECT_EQ(g.entities[0].phrase, "Two puppies");
  EXPECT_EQ(g.entities[0].start, 0);
  EXPECT_EQ(g.entities[0].end, 11);
  ASSERT_EQ(g.entities[0].norm_boxes.size(), 2u);
  expect_box(g.entities[0].norm_boxes[0], 0.484375, 0.078125, 0.765625, 0.984375);
  expect_box(g.entities[0].norm_boxes[1], 0.234375, 0.140625, 0.515625, 0.984375);
  EXPECT_EQ(g.entities[1].phrase, "grass");
  EXPECT_EQ(g.entities[1].start, 30);
  EXPECT_EQ(g.entities[1].end, 35);
  expect_box(g.entities[1].norm_boxes.at(0), 0.015625, 0.484375, 0.984375, 0.984375);
}

TEST(Kosmos2Grounding, PatchIndexCoordinates) {
  // Same cell: the whole cell. Same row or column: cell edges. Otherwise: cell centres.
  expect_box(kosmos2_patch_index_to_coordinate(44, 44, 32), 0.375, 0.03125, 0.40625, 0.0625);
  expect_box(kosmos2_patch_index_to_coordinate(32, 40, 32), 0.0, 0.03125, 0.28125, 0.0625);
  expect_box(kosmos2_patch_index_to_coordinate(0, 1023, 32), 0.015625, 0.015625, 0.984375, 0.984375);
  // coordinate_to_patch_index inverts the docstring's boxes and test_processor's indices.
  EXPECT_EQ(kosmos2_coordinate_to_patch_index({0.390625, 0.046875, 0.984375, 0.828125}, 32),
            std::make_pair(int64_t{44}, int64_t{863}));
  EXPECT_EQ(kosmos2_coordinate_to_patch_index({0.484375, 0.078125, 0.765625, 0.984375}, 32),
            std::make_pair(int64_t{79}, int64_t{1016}));
  EXPECT_THROW(kosmos2_coordinate_to_patch_index({0.5, 0.1, 0.4, 0.9}, 32), Error);  // x2 <= x1 raises
}

TEST(Kosmos2Grounding, FormatterWritesWhatTheProcessorInserts) {
  // _insert_patch_index_tokens for bbox (79, 1016) after "<phrase> Two puppies</phrase>".
  const ImageGeometry g = ImageGeometry::identity(1000, 1000);
  const Box px{484.375, 78.125, 765.625, 984.375};
  EXPECT_EQ(format_box(Format::Kosmos2, px, g, " Two puppies"),
            "<phrase> Two puppies</phrase><object><patch_index_0079><patch_index_1016></object>");
  GroundedText back = parse(Format::Kosmos2, "<grounding>" + format_box(Format::Kosmos2, px, g, " Two puppies"), g);
  ASSERT_EQ(back.entities.size(), 1u);
  expect_box(back.entities[0].boxes[0], px.x0, px.y0, px.x1, px.y1, 1e-9);
}

TEST(Kosmos2Grounding, ReferenceEdgeCases) {
  // An object without a phrase: a fake entity named by its unpadded indices, whose span is
  // computed before the leading space is stripped (so it can be -1, as the reference gives).
  GroundedText g = kosmos2_clean_text_and_extract_entities(
      "<object><patch_index_0044><patch_index_0863></object> a dog", 32, kUnit);
  EXPECT_EQ(g.text, "a dog");
  ASSERT_EQ(g.entities.size(), 1u);
  EXPECT_EQ(g.entities[0].phrase, "<patch_index_44><patch_index_863>");
  EXPECT_EQ(g.entities[0].start, -1);
  EXPECT_EQ(g.entities[0].end, -1);
  // A phrase without an object is no entity; a truncated tag without '>' stays in the text.
  g = kosmos2_clean_text_and_extract_entities("<phrase> a cat</phrase> and<phrase> a dog</phrase><object><patch_index_0001><patch_index_00",
                                              32, kUnit);
  EXPECT_TRUE(g.entities.empty());
  EXPECT_EQ(g.text, "a cat and a dog<patch_index_00");
  // A phrase containing '<' cannot match; the object after it still does, without a phrase.
  g = kosmos2_clean_text_and_extract_entities("<phrase>a<b</phrase><object><patch_index_0001><patch_index_0002></object>",
                                              32, kUnit);
  ASSERT_EQ(g.entities.size(), 1u);
  EXPECT_EQ(g.entities[0].phrase, "<patch_index_1><patch_index_2>");
  // A dangling delimiter voids the whole object.
  g = kosmos2_clean_text_and_extract_entities(
      "<phrase>x</phrase><object><patch_index_0001><patch_index_0002></delimiter_of_multi_objects/></object>", 32, kUnit);
  EXPECT_TRUE(g.entities.empty());
  // Tags do not span lines ('.' stops at \n).
  EXPECT_EQ(kosmos2_strip_tags("a<b\nc>d<e>f"), "a<b\nc>df");
  // Indices outside the grid are computed as the reference does (and reported).
  g = kosmos2_clean_text_and_extract_entities("<phrase>x</phrase><object><patch_index_1500><patch_index_1600></object>",
                                              32, kUnit);
  ASSERT_EQ(g.entities.size(), 1u);
  expect_box(g.entities[0].norm_boxes[0], 0.890625, 1.453125, 0.015625, 1.578125);
  EXPECT_FALSE(g.warnings.empty());
  // Python's \d takes any Unicode decimal digit: Arabic-Indic 44.
  g = kosmos2_clean_text_and_extract_entities(
      "<phrase>y</phrase><object><patch_index_\xD9\xA4\xD9\xA4><patch_index_0044></object>", 32, kUnit);
  ASSERT_EQ(g.entities.size(), 1u);
  expect_box(g.entities[0].norm_boxes[0], 0.375, 0.03125, 0.40625, 0.0625);
}

TEST(Kosmos2Grounding, SpansCountCodePoints) {
  GroundedText g = kosmos2_clean_text_and_extract_entities(
      "<grounding> Un caf\xC3\xA9<phrase> \xE2\x98\x95 chaud</phrase><object><patch_index_0000><patch_index_1023></object>",
      32, kUnit);
  EXPECT_EQ(g.text, "Un caf\xC3\xA9 \xE2\x98\x95 chaud");
  ASSERT_EQ(g.entities.size(), 1u);
  EXPECT_EQ(g.entities[0].start, 8);  // "Un café " is 8 characters
  EXPECT_EQ(g.entities[0].end, 15);
  EXPECT_EQ(g.entities[0].byte_start, 9);
  EXPECT_EQ(g.entities[0].byte_end, 18);
}

// ---- the other formats ---------------------------------------------------------------------

TEST(Formats, PaliGemmaLocTokensAreYFirst) {
  const ImageGeometry g = ImageGeometry::identity(1024, 512);
  GroundedText t = parse(Format::PaliGemma, "<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc1023><loc1023> sky", g);
  ASSERT_EQ(t.entities.size(), 2u);
  EXPECT_EQ(t.entities[0].phrase, "cat");
  expect_box(t.entities[0].norm_boxes[0], 0.125, 0.25, 0.5, 0.75);
  expect_box(t.entities[0].boxes[0], 128, 128, 512, 384);
  EXPECT_EQ(t.entities[1].phrase, "sky");
  EXPECT_EQ(t.text, " cat ;  sky");  // the tokens removed, the text around them kept
  EXPECT_EQ(format_box(Format::PaliGemma, {128, 128, 512, 384}, g, "cat"), "<loc0256><loc0128><loc0768><loc0512> cat");
  // Partial groups and segmentation tokens.
  t = parse(Format::PaliGemma, "<loc0100><loc0200> half <seg012><seg044>", g);
  EXPECT_TRUE(t.entities.empty());
  EXPECT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(t.text, " half ");
}

TEST(Formats, Pix2SeqBinCentres) {
  const ImageGeometry g = ImageGeometry::identity(1000, 1000);
  GroundedText t = parse(Format::Pix2Seq, "a car<loc_100><loc_200><loc_300><loc_400>a wheel<loc_150><loc_350>", g);
  ASSERT_EQ(t.entities.size(), 2u);
  EXPECT_EQ(t.entities[0].phrase, "a car");
  expect_box(t.entities[0].boxes[0], 100.5, 200.5, 300.5, 400.5, 1e-9);
  EXPECT_EQ(t.entities[1].phrase, "a wheel");
  ASSERT_EQ(t.entities[1].points.size(), 1u);
  EXPECT_NEAR(t.entities[1].points[0].x, 150.5, 1e-9);
  EXPECT_EQ(format_box(Format::Pix2Seq, {100.5, 200.5, 300.5, 400.5}, g, "a car"), "a car<loc_100><loc_200><loc_300><loc_400>");
  t = parse(Format::Pix2Seq, "x<loc_1200><loc_1><loc_2><loc_3>", g);
  EXPECT_TRUE(t.entities.empty());
  EXPECT_FALSE(t.warnings.empty());
}

TEST(Formats, Kosmos25PixelsOfTheResizedView) {
  // A 2000x1000 page that the processor saw as 1000x500.
  const ImageGeometry g = ImageGeometry::resize(2000, 1000, 1000, 500);
  GroundedText t = parse(Format::Kosmos25,
                         "<bbox><x_10><y_20><x_110><y_40></bbox>Hello\n<bbox><x_50><y_5><x_40><y_9></bbox>bad\n", g);
  ASSERT_EQ(t.entities.size(), 2u);
  EXPECT_EQ(t.entities[0].phrase, "Hello");
  expect_box(t.entities[0].boxes.at(0), 20, 40, 220, 80, 1e-9);
  EXPECT_TRUE(t.entities[1].boxes.empty());  // x0 >= x1: dropped as the reference does
  EXPECT_EQ(t.text, "Hello\nbad\n");
  EXPECT_EQ(format_box(Format::Kosmos25, {20, 40, 220, 80}, g, "Hello"), "<bbox><x_10><y_20><x_110><y_40></bbox>Hello");
}

TEST(Formats, ShikraBoxesAndPoints) {
  const ImageGeometry g = ImageGeometry::identity(200, 100);
  GroundedText t = parse(Format::Shikra, "The man[0.100,0.200,0.500,0.900] holds a cup[0.250,0.500].", g);
  EXPECT_EQ(t.text, "The man holds a cup.");
  ASSERT_EQ(t.entities.size(), 2u);
  EXPECT_EQ(t.entities[0].phrase, "The man");
  expect_box(t.entities[0].boxes[0], 20, 20, 100, 90, 1e-9);
  EXPECT_EQ(t.entities[1].phrase, "holds a cup");
  EXPECT_NEAR(t.entities[1].points.at(0).x, 50, 1e-9);
  EXPECT_EQ(format_box(Format::Shikra, {20, 20, 100, 90}, g, "The man"), "The man[0.100,0.200,0.500,0.900]");
  EXPECT_EQ(format_point(Format::Shikra, {50, 50}, g), "[0.250,0.500]");
  // Several boxes for one phrase; out-of-range and reversed boxes are reported and skipped.
  t = parse(Format::Shikra, "two dogs[0.1,0.1,0.2,0.2;0.3,0.3,0.4,0.4] a[1.5,0,1,1] b[0.5,0.5,0.1,0.9]", g);
  ASSERT_EQ(t.entities.size(), 3u);
  EXPECT_EQ(t.entities[0].boxes.size(), 2u);
  EXPECT_TRUE(t.entities[1].boxes.empty());
  EXPECT_TRUE(t.entities[2].boxes.empty());
  EXPECT_EQ(t.warnings.size(), 2u);
}

TEST(Formats, QwenVlRefBox) {
  const ImageGeometry g = ImageGeometry::identity(500, 250);
  GroundedText t =
      parse(Format::QwenVL, "<ref>the dog</ref><box>(100,200),(300,800)</box><box>(0,0),(1000,1000)</box> runs", g);
  EXPECT_EQ(t.text, "the dog runs");
  ASSERT_EQ(t.entities.size(), 1u);
  EXPECT_EQ(t.entities[0].phrase, "the dog");
  EXPECT_EQ(t.entities[0].start, 0);
  EXPECT_EQ(t.entities[0].end, 7);
  ASSERT_EQ(t.entities[0].boxes.size(), 2u);
  expect_box(t.entities[0].boxes[0], 50, 50, 150, 200, 1e-9);
  EXPECT_EQ(format_box(Format::QwenVL, {50, 50, 150, 200}, g, "the dog"),
            "<ref>the dog</ref><box>(100,200),(300,800)</box>");
  t = parse(Format::QwenVL, "<ref>x</ref><box>(1,2),(3</box> and <ref>unclosed", g);
  EXPECT_FALSE(t.warnings.empty());
  EXPECT_TRUE(t.entities.at(0).boxes.empty());
}

TEST(Formats, CogVlmDoubleBrackets) {
  const ImageGeometry g = ImageGeometry::identity(1000, 1000);
  GroundedText t = parse(Format::CogVLM, "A cat[[100,200,300,400];[500,500,600,600]] on a mat[[050,060]].", g);
  EXPECT_EQ(t.text, "A cat on a mat.");
  ASSERT_EQ(t.entities.size(), 2u);
  EXPECT_EQ(t.entities[0].phrase, "A cat");
  ASSERT_EQ(t.entities[0].boxes.size(), 2u);
  expect_box(t.entities[0].boxes[0], 100, 200, 300, 400, 1e-9);
  EXPECT_EQ(t.entities[1].points.size(), 1u);
  EXPECT_EQ(format_box(Format::CogVLM, {100, 200, 300, 400}, g, "A cat"), "A cat[[100,200,300,400]]");
  EXPECT_EQ(format_box(Format::CogVLM, {0, 0, 1000, 1000}, g), "[[000,000,999,999]]");
}

TEST(Formats, Llava15PaddedSquare) {
  // A 200x100 image padded to 200x200 (50 px above and below), seen at 336x336.
  const ImageGeometry g = ImageGeometry::pad_to_square(200, 100, 336);
  GroundedText t = parse(Format::Llava15, "The bird [0.25, 0.25, 0.75, 0.75] sits.", g);
  ASSERT_EQ(t.entities.size(), 1u);
  EXPECT_EQ(t.entities[0].phrase, "The bird");
  expect_box(t.entities[0].boxes[0], 50, 0, 150, 100, 1e-9);
  EXPECT_EQ(t.text, "The bird sits.");
  EXPECT_EQ(format_box(Format::Llava15, {50, 0, 150, 100}, g, "The bird"), "The bird [0.25, 0.25, 0.75, 0.75]");
}

TEST(Formats, SeeClickPoints) {
  const ImageGeometry g = ImageGeometry::identity(1920, 1080);
  GroundedText t = parse(Format::SeeClick, "click (0.50, 0.25)", g);
  ASSERT_EQ(t.entities.size(), 1u);
  ASSERT_EQ(t.entities[0].points.size(), 1u);
  EXPECT_NEAR(t.entities[0].points[0].x, 960, 1e-9);
  EXPECT_NEAR(t.entities[0].points[0].y, 270, 1e-9);
  EXPECT_EQ(format_point(Format::SeeClick, {960, 270}, g), "click (0.50, 0.25)");
  EXPECT_THROW(format_point(Format::QwenVL, {1, 1}, g), Error);
  t = parse(Format::SeeClick, "(0.1,0.2,0.3,0.4)", g);
  ASSERT_EQ(t.entities.size(), 1u);
  EXPECT_EQ(t.entities[0].boxes.size(), 1u);
}

TEST(Formats, ScreenAiSchemaLines) {
  const ImageGeometry g = ImageGeometry::identity(1000, 2000);
  GroundedText t = parse(Format::ScreenAI, "BUTTON Sign in 100 200 300 250\nTEXT hello\nIMAGE 0 0 999 100", g);
  ASSERT_EQ(t.entities.size(), 2u);
  EXPECT_EQ(t.entities[0].label, "BUTTON");
  EXPECT_EQ(t.entities[0].phrase, "Sign in");
  expect_box(t.entities[0].boxes[0], 100, 400, 300, 500, 1e-9);
  EXPECT_EQ(t.entities[1].label, "IMAGE");
  EXPECT_EQ(t.entities[1].phrase, "IMAGE");
  EXPECT_EQ(t.text, "BUTTON Sign in\nTEXT hello\nIMAGE");
  EXPECT_EQ(format_box(Format::ScreenAI, {100, 400, 300, 500}, g, "Sign in"), "TEXT Sign in 100 200 300 250");
}

TEST(Geometry, CenterCropAndLetterboxRoundTrip) {
  // CLIP: 640x480 -> shortest edge 224 -> 298x224 -> center crop 224 (37 px off the left).
  ImageGeometry g = ImageGeometry::resize_center_crop(640, 480, 298, 224, 224, 224);
  EXPECT_DOUBLE_EQ(g.offset_x, -37);
  const Box o = g.to_original(Box{0, 0, 1, 1});
  EXPECT_NEAR(o.x0, 37 * 640.0 / 298, 1e-9);
  EXPECT_NEAR(o.x1, (37 + 224) * 640.0 / 298, 1e-9);
  EXPECT_NEAR(o.y1, 480, 1e-9);
  const Box n = g.to_normalized(o);
  expect_box(n, 0, 0, 1, 1, 1e-12);
  ImageGeometry lb = ImageGeometry::letterbox(200, 100, 400, 400);
  const Box whole = lb.to_original(Box{0, 0, 1, 1});  // padding maps outside: clamped to the image
  expect_box(whole, 0, 0, 200, 100, 1e-9);
  EXPECT_NEAR(iou({0, 0, 10, 10}, {5, 0, 15, 10}), 50.0 / 150.0, 1e-12);
}

TEST(Formats, NoFormatCrashesOnNoise) {
  const std::vector<std::string> inputs = {"", "<", "[", "[[", "<ref>", "<box>(", "<bbox><x_", "<loc", "<loc_9999999999>",
                                           "<phrase></phrase><object></object>", std::string("\xff\xfe<phrase>\x80</phrase>"),
                                           "[0.1,0.2,0.3", "click (", "BUTTON 1 2 3", "<patch_index_99999999999999999999999>"};
  for (Format f : all_formats())
    for (const auto& s : inputs) {
      GroundedText t = parse(f, s, ImageGeometry::identity(10, 10));
      for (const auto& e : t.entities)
        for (const auto& b : e.boxes) EXPECT_TRUE(std::isfinite(b.x0) && std::isfinite(b.y1));
    }
}

// ---- drawing --------------------------------------------------------------------------------

TEST(Draw, BoxesAndLabelsLandWhereTheEntitiesSay) {
  Image img;
  img.width = 320;
  img.height = 240;
  img.rgb.assign(320 * 240 * 3, 200);
  // KOSMOS-2 output on a 320x240 image resized to 224x224.
  GroundedText g = kosmos2_post_process_generation(kSnowman, ImageGeometry::resize(320, 240, 224, 224));
  ASSERT_EQ(g.entities.size(), 2u);
  std::vector<LabelBox> labels;
  Image drawn = draw_entities(img, g.entities, {}, &labels);
  const std::string dir = testing_util::temp_dir("draw");
  write_png(dir + "/out.png", drawn);
  Image back = decode_image_file(dir + "/out.png");
  ASSERT_EQ(back.width, 320);
  ASSERT_EQ(back.height, 240);
  for (size_t i = 0; i < g.entities.size(); ++i) {
    const Box& b = g.entities[i].boxes[0];
    const auto c = entity_color(i);
    // The left edge at mid-height carries the entity's colour.
    const int x = static_cast<int>(std::lround(b.x0)), y = static_cast<int>((b.y0 + b.y1) / 2);
    for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(back.at(x, y, ch), c[static_cast<size_t>(ch)]) << "entity " << i;
    // The middle of the box interior is untouched.
    const int cx = static_cast<int>((b.x0 + b.x1) / 2);
    bool inside_other = false;
    for (size_t j = 0; j < g.entities.size(); ++j)
      if (j != i) {
        const Box& o = g.entities[j].boxes[0];
        inside_other = inside_other || (cx >= o.x0 - 3 && cx <= o.x1 + 3 && y >= o.y0 - 3 && y <= o.y1 + 3);
      }
    if (!inside_other) {
      EXPECT_EQ(back.at(cx, y, 0), 200);
    }
  }
  // Each label has its colour as background and ink pixels of the text on it.
  ASSERT_EQ(labels.size(), 2u);
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto c = entity_color(i);
    int bg = 0, ink = 0;
    for (int y = labels[i].y0; y < labels[i].y1; ++y)
      for (int x = labels[i].x0; x < labels[i].x1; ++x) {
        const bool is_bg = back.at(x, y, 0) == c[0] && back.at(x, y, 1) == c[1] && back.at(x, y, 2) == c[2];
        (is_bg ? bg : ink) += 1;
      }
    EXPECT_GT(bg, 0) << "label " << i;
    EXPECT_GT(ink, 20) << "label " << i << " has no text";
  }
}

TEST(GroundCli, ParsesDrawsAndReportsJson) {
  const std::string dir = testing_util::temp_dir("ground_cli");
  Image img;
  img.width = 300;
  img.height = 200;
  img.rgb.assign(300 * 200 * 3, 255);
  write_png(dir + "/in.png", img);
  auto r = testing_util::run_cli("ground -i " + dir + "/in.png --format qwen_vl --geometry identity --output "
                                 "'<ref>the box</ref><box>(100,100),(500,900)</box>' --draw " + dir + "/out.png --json",
                                 /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["grounding"]["text"], "the box");
  auto box = j["grounding"]["entities"][0]["boxes"][0];
  EXPECT_NEAR(box[0].get<double>(), 30, 1e-9);
  EXPECT_NEAR(box[3].get<double>(), 180, 1e-9);
  Image drawn = decode_image_file(dir + "/out.png");
  EXPECT_EQ(drawn.at(30, 100, 0), entity_color(0)[0]);
  EXPECT_EQ(drawn.at(30, 100, 1), entity_color(0)[1]);
  auto bad = testing_util::run_cli("ground -i " + dir + "/in.png --format nope --output x");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("unknown box format 'nope'"), std::string::npos) << bad.output;
}

TEST(EvalRefexp, AccuracyAtHalfIoUOnASyntheticSet) {
  const std::string dir = testing_util::temp_dir("refexp");
  Image img;
  img.width = 100;
  img.height = 100;
  img.rgb.assign(100 * 100 * 3, 90);
  write_png(dir + "/a.png", img);
  // Four examples: exact, IoU 0.6 (counts), IoU 1/3 (does not), no box at all.
  {
    std::FILE* f = std::fopen((dir + "/data.jsonl").c_str(), "w");
    std::fputs("{\"image\": \"a.png\", \"expression\": \"left cat\", \"box\": [10, 10, 50, 50]}\n"
               "{\"image\": \"a.png\", \"expression\": \"right cat\", \"box\": [0, 0, 60, 100]}\n"
               "\n"
               "{\"image\": \"a.png\", \"expression\": \"dog\", \"box\": [0, 0, 50, 100]}\n"
               "{\"image\": \"a.png\", \"expression\": \"bird\", \"box\": [0, 0, 10, 10]}\n",
               f);
    std::fclose(f);
    f = std::fopen((dir + "/out.jsonl").c_str(), "w");
    std::fputs("\"<ref>left cat</ref><box>(100,100),(500,500)</box>\"\n"
               "{\"output\": \"<ref>right cat</ref><box>(0,0),(1000,1000)</box>\"}\n"
               "\"<ref>dog</ref><box>(250,0),(750,1000)</box>\"\n"
               "\"I cannot see a bird.\"\n",
               f);
    std::fclose(f);
  }
  auto r = testing_util::run_cli("eval refexp --data " + dir + "/data.jsonl --outputs " + dir +
                                     "/out.jsonl --format qwen_vl --geometry identity -q",
                                 /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["examples"], 4);
  EXPECT_EQ(j["correct"], 2);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.5);
  EXPECT_EQ(j["no_box"], 1);
  EXPECT_NEAR(j["mean_iou"].get<double>(), (1.0 + 0.6 + 1.0 / 3.0) / 4.0, 1e-9);
  // Bad lines name the file and line.
  {
    std::FILE* f = std::fopen((dir + "/bad.jsonl").c_str(), "w");
    std::fputs("{\"image\": \"a.png\", \"box\": [1, 2, 3, 4]}\n", f);
    std::fclose(f);
  }
  auto bad = testing_util::run_cli("eval refexp --data " + dir + "/bad.jsonl --outputs " + dir +
                                   "/out.jsonl --format qwen_vl -q");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("bad.jsonl:1"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace lumen::grounding

// LLaVA-NeXT AnyRes arithmetic (src/vision/anyres.h) against values worked out by hand from
// transformers' formulas, and against the llava_next_forward fixture meta
// (tests/data/preprocess/llava_next_forward/meta.json, copied by scripts/make_vision_test_data.py).
#include "vision/anyres.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "formats/json_config.h"

namespace lumen {
namespace {

// LlavaNextImageProcessor's default image_grid_pinpoints (llava-v1.6 checkpoints).
const std::vector<ImageSize> kPinpoints = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};

TEST(Anyres, SelectBestResolutionByHand) {
  // 640x427 (W x H): [672, 672] keeps all 273280 pixels (scale min(672/640, 672/427) = 1.05
  // gives 672x448 >= the original), the 2-tile grids at most 503x336 = 169008.
  EXPECT_EQ(select_best_resolution({427, 640}, kPinpoints), (ImageSize{672, 672}));
  // 1000x200: [336, 1008] scales by min(1.008, 1.68) = 1.008 -> 1008x201, keeping all 200000.
  EXPECT_EQ(select_best_resolution({200, 1000}, kPinpoints), (ImageSize{336, 1008}));
  // 333x500: [672, 336] scales by 336/333 -> 336x504 >= all 166500 pixels, wasting 59292;
  // [672, 672] and [1008, 336] keep them too but waste more.
  EXPECT_EQ(select_best_resolution({500, 333}, kPinpoints), (ImageSize{672, 336}));
  // 37x53 is smaller than every pinpoint: all keep 1961 pixels, and [336, 672] and [672, 336]
  // waste the same; the first one wins (strict comparisons), a wide grid for a tall image.
  EXPECT_EQ(select_best_resolution({53, 37}, kPinpoints), (ImageSize{336, 672}));
  // A single pinpoint is always chosen, even when the image is far larger.
  EXPECT_EQ(select_best_resolution({5000, 10}, {{336, 336}}), (ImageSize{336, 336}));
  EXPECT_THROW(select_best_resolution({10, 10}, {}), Error);
  EXPECT_THROW(select_best_resolution({0, 10}, kPinpoints), Error);
}

TEST(Anyres, PatchOutputSizeByHand) {
  // 640x427 into 672x672: width limits (1.05 < 1.57): 672 x ceil(427 * 1.05) = 672 x 449.
  EXPECT_EQ(patch_output_size({427, 640}, {672, 672}), (ImageSize{449, 672}));
  // 37x53 into 336x672 (H x W): height limits (336/53 = 6.34 < 672/37): ceil(37 * 6.34) = 235.
  EXPECT_EQ(patch_output_size({53, 37}, {336, 672}), (ImageSize{336, 235}));
  // 66x40 into 56x56: width limits: 56 x ceil(40 * 56/66 = 33.9) = 34.
  EXPECT_EQ(patch_output_size({40, 66}, {56, 56}), (ImageSize{34, 56}));
  // Same aspect ratio: exactly the target.
  EXPECT_EQ(patch_output_size({100, 200}, {336, 672}), (ImageSize{336, 672}));
}

TEST(Anyres, GridShapeAndTileCount) {
  EXPECT_EQ(anyres_grid_shape({427, 640}, kPinpoints, 336), (AnyresGrid{2, 2}));
  EXPECT_EQ(anyres_grid_shape({200, 1000}, kPinpoints, 336), (AnyresGrid{1, 3}));
  EXPECT_EQ(anyres_grid_shape({500, 333}, kPinpoints, 336), (AnyresGrid{2, 1}));
  // The fixture entries' tile counts: 5, 4, 3 and 3 (pixel_values_slow [1, tiles, 3, 336, 336]).
  EXPECT_EQ(anyres_num_tiles({427, 640}, kPinpoints, 336), 5);
  EXPECT_EQ(anyres_num_tiles({200, 1000}, kPinpoints, 336), 4);
  EXPECT_EQ(anyres_num_tiles({500, 333}, kPinpoints, 336), 3);
  EXPECT_EQ(anyres_num_tiles({53, 37}, kPinpoints, 336), 3);
  // A chosen pinpoint that the tile does not divide is an error, not a ragged grid.
  EXPECT_THROW(anyres_grid_shape({427, 640}, kPinpoints, 320), Error);
  EXPECT_THROW(anyres_grid_shape({427, 640}, kPinpoints, 0), Error);
}

TEST(Anyres, UnpaddedFeatureGridByHand) {
  // 640x427 on a 2x2 grid of 24x24 features: W/H = 1.499 > 1, new = int(round(427 * 48/640, 7))
  // = int(32.025) = 32, pad = (48 - 32) // 2 = 8: rows 8..40 kept.
  EXPECT_EQ(unpadded_feature_grid(427, 640, 48, 48), (UnpaddedGrid{32, 48, 8, 0}));
  // 333x500 (W x H) on a 2x1 grid (48 rows x 24 cols): W/H = 0.666 > 24/48, rows cropped:
  // new = int(round(500 * 24/333, 7)) = int(36.04) = 36, pad = (48 - 36) // 2 = 6.
  EXPECT_EQ(unpadded_feature_grid(500, 333, 48, 24), (UnpaddedGrid{36, 24, 6, 0}));
  // Taller than the grid: the columns are cropped. 37x53 on 24 rows x 48 cols: new =
  // int(round(37 * 24/53, 7)) = int(16.75) = 16, pad = (48 - 16) // 2 = 16.
  EXPECT_EQ(unpadded_feature_grid(53, 37, 24, 48), (UnpaddedGrid{24, 16, 0, 16}));
  // Equal aspect ratios take the column branch and crop nothing.
  EXPECT_EQ(unpadded_feature_grid(100, 100, 48, 48), (UnpaddedGrid{48, 48, 0, 0}));
  // round(_, 7) matters: 55 * (48 / 176) is 14.999999999999998 in float64; rounded it is 15,
  // pad (48 - 15) // 2 = 16 and 16 rows remain (plain int() would give 14 rows, pad 17).
  EXPECT_EQ(unpadded_feature_grid(55, 176, 48, 48), (UnpaddedGrid{16, 48, 16, 0}));
  EXPECT_EQ(unpadded_feature_grid(176, 55, 48, 48), (UnpaddedGrid{48, 16, 0, 16}));
  EXPECT_EQ(python_int_round7(14.999999999999998), 15);
  EXPECT_EQ(python_int_round7(14.99999994), 14);  // rounds to 14.9999999
  EXPECT_EQ(python_int_round7(14.99999996), 15);
  EXPECT_EQ(python_int_round7(3.7), 3);
  EXPECT_THROW(unpadded_feature_grid(0, 5, 4, 4), Error);
}

TEST(Anyres, ImageTokenCountByHand) {
  // llava-v1.6 (336 px tiles, 14 px patches, s = 24): base 576 + rows * (cols + 1).
  EXPECT_EQ(llava_next_image_token_count({427, 640}, kPinpoints, 336, 14, "default"), 576 + 32 * 49);
  EXPECT_EQ(llava_next_image_token_count({500, 333}, kPinpoints, 336, 14, "default"), 576 + 36 * 25);
  // 1000x200 on 1x3 tiles = 24 x 72 features: new = int(round(200 * 72/1000, 7)) = 14,
  // pad = (24 - 14) // 2 = 5, 14 rows of 72 + 1.
  EXPECT_EQ(llava_next_image_token_count({200, 1000}, kPinpoints, 336, 14, "default"), 576 + 14 * 73);
  // A tower without CLS (SigLIP) uses "full" with no additional token: the same count.
  EXPECT_EQ(llava_next_image_token_count({427, 640}, kPinpoints, 336, 14, "full", 0), 576 + 32 * 49);
  // Combinations that leave other than s*s features per tile would break the model's grid.
  EXPECT_THROW(llava_next_image_token_count({427, 640}, kPinpoints, 336, 14, "full", 1), Error);
  EXPECT_THROW(llava_next_image_token_count({427, 640}, kPinpoints, 336, 14, "default", 0), Error);
  EXPECT_THROW(llava_next_image_token_count({427, 640}, kPinpoints, 336, 14, "cls_patch"), Error);
  EXPECT_THROW(llava_next_image_token_count({427, 640}, kPinpoints, 336, 0, "default"), Error);
  EXPECT_THROW(llava_next_image_token_count({427, 640}, {}, 336, 14, "default"), Error);
}

TEST(Anyres, MatchesTheLlavaNextFixtureMeta) {
  const std::string path = std::string(LUMEN_TEST_DATA) + "/preprocess/llava_next_forward/meta.json";
  const nlohmann::json meta = JsonView::load_file(path);
  const std::vector<ImageSize> pinpoints = parse_grid_pinpoints(meta["image_grid_pinpoints"], "image_grid_pinpoints");
  const ImageSize original{meta["image_sizes_hw"][0][0].get<int64_t>(), meta["image_sizes_hw"][0][1].get<int64_t>()};
  // source_image_wh is (width, height) of the same image.
  EXPECT_EQ(original.width, meta["source_image_wh"][0].get<int64_t>());
  EXPECT_EQ(original.height, meta["source_image_wh"][1].get<int64_t>());
  const int64_t tile = meta["vision_image_size"].get<int64_t>(), patch = meta["vision_patch_size"].get<int64_t>();
  const nlohmann::json& d = meta["token_count_detail"];
  const ImageSize best = select_best_resolution(original, pinpoints);
  EXPECT_EQ(best.height, d["best_resolution_hw"][0].get<int64_t>());
  EXPECT_EQ(best.width, d["best_resolution_hw"][1].get<int64_t>());
  const AnyresGrid grid = anyres_grid_shape(original, pinpoints, tile);
  EXPECT_EQ(grid.rows, d["grid_tiles_hw"][0].get<int64_t>());
  EXPECT_EQ(grid.cols, d["grid_tiles_hw"][1].get<int64_t>());
  const int64_t s = tile / patch;
  EXPECT_EQ(s * s, d["base_tokens"].get<int64_t>());
  const UnpaddedGrid u = unpadded_feature_grid(original.height, original.width, grid.rows * s, grid.cols * s);
  EXPECT_EQ(u.rows, d["unpadded_rows"].get<int64_t>());
  EXPECT_EQ(u.cols, d["unpadded_cols"].get<int64_t>());
  EXPECT_EQ(llava_next_image_token_count(original, pinpoints, tile, patch,
                                         meta["vision_feature_select_strategy"].get<std::string>()),
            meta["num_image_tokens"].get<int64_t>());
}

TEST(Anyres, PinpointParsingErrors) {
  using nlohmann::json;
  EXPECT_EQ(parse_grid_pinpoints(json::parse("[[336, 672], [672, 336]]"), "p"),
            (std::vector<ImageSize>{{336, 672}, {672, 336}}));
  auto message = [](const json& v) {
    try {
      parse_grid_pinpoints(v, "cfg.json: image_grid_pinpoints");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(json::array()).find("empty"), std::string::npos);
  // The original LLaVA repository writes a Python string; transformers requires a list.
  EXPECT_NE(message(json("[(336, 672), (672, 336)]")).find("expected a list"), std::string::npos);
  EXPECT_NE(message(json::parse("[[336]]")).find("image_grid_pinpoints[0]"), std::string::npos);
  EXPECT_NE(message(json::parse("[[336, 672], [0, 336]]")).find("image_grid_pinpoints[1][0]"), std::string::npos);
  EXPECT_NE(message(json::parse("[[336, -2]]")).find("positive"), std::string::npos);
  EXPECT_NE(message(json::parse("[[336, 33.5]]")).find("positive integer"), std::string::npos);
  EXPECT_NE(message(json::parse("[[100000, 100000]]")).find("larger than"), std::string::npos);
  EXPECT_NO_THROW(check_pinpoints_tile(kPinpoints, 336, "x"));
  EXPECT_NO_THROW(check_pinpoints_tile(kPinpoints, 112, "x"));
  try {
    check_pinpoints_tile({{336, 672}, {336, 1000}}, 336, "cfg.json: image_grid_pinpoints");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[336, 1000] (image_grid_pinpoints[1]) is not a multiple of the tile size 336"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lumen

// LLaVA / LLaVA-NeXT against the reference fixtures, and the decoder LM's invariants that the
// public fixtures do not reach: grouped-query attention, incremental decoding over the KV
// cache, and the errors for prompts that do not match their images.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include "blocks/decoder_lm.h"
#include "families/family.h"
#include "families/family_util.h"
#include "core/mapped_file.h"
#include "families/llava/llava.h"
#include "formats/json_config.h"
#include "runtime/verify.h"
#include "tests/test_util.h"

namespace lumen {
namespace {

using testing_util::expect_family_passes;
using testing_util::kFixtures;

TEST(Llava, MatchesReference) { expect_family_passes("llava"); }
TEST(LlavaNext, MatchesReference) { expect_family_passes("llava_next"); }

// Serves parameters from a name -> tensor map (shapes checked).
class MapVisitor : public ParamVisitor {
 public:
  explicit MapVisitor(const std::map<std::string, Tensor>& m) : m_(m) {}
  void param(const std::string& name, const Shape& shape, Init, Tensor* slot) override {
    auto it = m_.find(name);
    ASSERT_NE(it, m_.end()) << name;
    ASSERT_EQ(it->second.shape(), shape) << name;
    *slot = it->second;
  }
  void scalar(const std::string& name, const Shape& shape, float, Tensor* slot) override {
    param(name, shape, Init::Zero, slot);
  }
  bool has(const std::string& name) const override { return m_.count(name) > 0; }

 private:
  const std::map<std::string, Tensor>& m_;
};

DecoderLmConfig small_lm_config(int64_t kv_heads) {
  DecoderLmConfig c;
  c.vocab_size = 50;
  c.dim = 32;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = kv_heads;
  c.head_dim = 8;
  c.mlp_dim = 48;
  c.max_positions = 64;
  c.rms_eps = 1e-5f;
  c.rope.theta = 10000;
  return c;
}

std::vector<float> row_logits(const DecoderLm& lm, const Tensor& h, int64_t row) {
  Tensor l = lm.logits(h.data<float>() + row * lm.cfg.dim, 1);
  return std::vector<float>(l.data<float>(), l.data<float>() + l.numel());
}

TEST(DecoderLm, GroupedQueryAttentionEqualsRepeatedHeads) {
  // A GQA model (2 KV heads for 4 query heads) must equal the MHA model whose K/V projections
  // repeat each KV head for its group (transformers' repeat_kv).
  DecoderLmConfig gqa_cfg = small_lm_config(2), mha_cfg = small_lm_config(4);
  RandomInitVisitor init(3);
  DecoderLm gqa;
  {
    ParamScope root(init);
    gqa.visit(root.sub("model"), root, gqa_cfg);
  }
  std::map<std::string, Tensor> weights(init.tensors().begin(), init.tensors().end());
  std::map<std::string, Tensor> repeated = weights;
  const int64_t hd = 8, D = 32;
  for (auto& [name, t] : repeated) {
    if (name.find("k_proj.weight") == std::string::npos && name.find("v_proj.weight") == std::string::npos) continue;
    Tensor r = Tensor::zeros({4 * hd, D});
    for (int64_t h = 0; h < 4; ++h)
      std::memcpy(r.data<float>() + h * hd * D, t.data<float>() + (h / 2) * hd * D, hd * D * sizeof(float));
    t = r;
  }
  MapVisitor mv(repeated);
  DecoderLm mha;
  {
    ParamScope root(mv);
    mha.visit(root.sub("model"), root, mha_cfg);
  }
  std::vector<int64_t> ids = {1, 7, 3, 9, 22, 41, 5, 5, 17};
  const int64_t L = static_cast<int64_t>(ids.size());
  KvCache c1 = gqa.new_cache(L), c2 = mha.new_cache(L);
  Tensor h1 = gqa.forward(gqa.embed(ids.data(), L), c1);
  Tensor h2 = mha.forward(mha.embed(ids.data(), L), c2);
  TensorCheck c = compare_tensors("hidden", h1, h2, 1e-5, 1e-5);
  EXPECT_TRUE(c.pass) << c.max_abs;
}

TEST(DecoderLm, IncrementalDecodingEqualsFullForward) {
  // Prefill then one token at a time over the cache gives the logits of a full forward.
  for (int64_t window : {0, 4}) {
    DecoderLmConfig cfg = small_lm_config(2);
    cfg.sliding_window = window;
    RandomInitVisitor init(11);
    DecoderLm lm;
    ParamScope root(init);
    lm.visit(root.sub("model"), root, cfg);
    std::vector<int64_t> ids = {1, 4, 8, 15, 16, 23, 42, 4, 8, 15};
    const int64_t L = static_cast<int64_t>(ids.size());
    KvCache full = lm.new_cache(L);
    Tensor hf = lm.forward(lm.embed(ids.data(), L), full);
    KvCache inc = lm.new_cache(L);
    lm.forward(lm.embed(ids.data(), 6), inc);
    for (int64_t i = 6; i < L; ++i) {
      Tensor h = lm.forward(lm.embed(&ids[static_cast<size_t>(i)], 1), inc);
      auto a = row_logits(lm, h, 0), b = row_logits(lm, hf, i);
      for (size_t v = 0; v < a.size(); ++v) ASSERT_NEAR(a[v], b[v], 1e-4) << "window " << window << " pos " << i;
    }
    EXPECT_EQ(inc.length, L);
  }
}

TEST(DecoderLm, SlidingWindowChangesLongContextsOnly) {
  // Within the window the Mistral mask is plain causal; beyond it, outputs must differ.
  DecoderLmConfig plain = small_lm_config(2), windowed = small_lm_config(2);
  windowed.sliding_window = 4;
  RandomInitVisitor init(5);
  DecoderLm a;
  ParamScope root(init);
  a.visit(root.sub("model"), root, plain);
  std::map<std::string, Tensor> w(init.tensors().begin(), init.tensors().end());
  MapVisitor mv(w);
  DecoderLm b;
  ParamScope r2(mv);
  b.visit(r2.sub("model"), r2, windowed);
  std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  KvCache ca = a.new_cache(8), cb = b.new_cache(8);
  Tensor ha = a.forward(a.embed(ids.data(), 8), ca), hb = b.forward(b.embed(ids.data(), 8), cb);
  for (int64_t d = 0; d < 32; ++d) EXPECT_NEAR(ha.data<float>()[3 * 32 + d], hb.data<float>()[3 * 32 + d], 1e-6);
  double diff = 0;
  for (int64_t d = 0; d < 32; ++d) diff += std::fabs(ha.data<float>()[7 * 32 + d] - hb.data<float>()[7 * 32 + d]);
  EXPECT_GT(diff, 1e-4);
}

TEST(DecoderLm, ContextOverflowIsAnError) {
  DecoderLmConfig cfg = small_lm_config(2);
  RandomInitVisitor init(1);
  DecoderLm lm;
  ParamScope root(init);
  lm.visit(root.sub("model"), root, cfg);
  EXPECT_THROW(lm.new_cache(65), Error);  // max_positions is 64
  KvCache c = lm.new_cache(4);
  std::vector<int64_t> ids = {1, 2, 3, 4, 5};
  try {
    lm.forward(lm.embed(ids.data(), 5), c);
    FAIL() << "expected a context overflow";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context overflow"), std::string::npos) << e.what();
  }
  std::vector<int64_t> bad = {1, 50};
  EXPECT_THROW(lm.embed(bad.data(), 2), Error);  // id outside the vocabulary
}

TEST(Llava, ImageCountMismatchIsNamed) {
  auto m = load_model(kFixtures + "/models/llava");
  auto& vlm = dynamic_cast<VisionLanguageModel&>(*m);
  ImageInput img;
  img.pixel_values = Tensor::zeros({1, 3, 28, 28});
  img.height = img.width = 28;
  std::vector<int64_t> ids = {1, 5, 6};
  for (int i = 0; i < 16; ++i) ids.push_back(vlm.image_token_id());
  EXPECT_NO_THROW(vlm_prompt_embeddings(vlm, ids, {img}));
  try {
    vlm_prompt_embeddings(vlm, ids, {img, img});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16 image-token positions"), std::string::npos) << e.what();
  }
  ImageInput wrong = img;
  wrong.pixel_values = Tensor::zeros({1, 3, 32, 32});
  EXPECT_THROW(vlm.encode_image(wrong), Error);
}

TEST(LlavaNext, TokenCountFollowsTheImageShape) {
  // FORMAT.md 5.4: the fixture's 66x40 image gives a 2x2 grid unpadded to 4x8 features.
  auto m = load_model(kFixtures + "/models/llava_next");
  auto& vlm = dynamic_cast<VisionLanguageModel&>(*m);
  ImageInput img;
  img.height = 40;
  img.width = 66;
  EXPECT_EQ(vlm.image_token_count(img), 16 + 4 * (8 + 1));
  img.height = 66;  // portrait: the columns are unpadded instead
  img.width = 40;
  EXPECT_EQ(vlm.image_token_count(img), 16 + 8 * (4 + 1));
  img.height = 0;
  EXPECT_THROW(vlm.image_token_count(img), Error);
}

TEST(Llava, MakeTinyLoadsAndEncodesImages) {
  for (bool next : {false, true}) {
    const std::string family = next ? "llava_next" : "llava";
    std::string dir = testing_util::temp_dir("tiny_" + family);
    // A tokenizer.json for add_special_token: the llava fixture has none, so write a minimal one.
    write_file_atomic(dir + "/tokenizer.json",
                      R"({"model": {"type": "WordLevel", "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3}, "unk_token": "<unk>"},
                          "added_tokens": []})");
    MakeTinyOptions o;
    o.out_dir = dir;
    o.seed = 2;
    o.vocab_size = 4;
    find_family(family)->make_tiny(o);
    auto m = load_model(dir);
    auto& vlm = dynamic_cast<VisionLanguageModel&>(*m);
    EXPECT_EQ(vlm.image_token_id(), 4);  // appended after the vocabulary
    EXPECT_EQ(vlm.lm().cfg.vocab_size, 64);
    ImageInput img;
    const int64_t S = 56;
    img.height = S;
    img.width = 2 * S;
    const int64_t tiles = next ? 3 : 1;  // a 1:2 image picks the [S, 2S] pinpoint: base + 1x2
    img.pixel_values = Tensor::zeros({tiles, 3, S, S});
    Tensor f = vlm.encode_image(img);
    EXPECT_EQ(f.dim(0), vlm.image_token_count(img));
    EXPECT_EQ(f.dim(1), vlm.lm().cfg.dim);
  }
}

}  // namespace
}  // namespace lumen

namespace lumen {
namespace {

TEST(DecoderLm, BatchedDecodeEqualsSeparateSequences) {
  // Two sequences at different positions, decoded in one forward_batch, give the logits each
  // gets alone (continuous batching must not mix their caches).
  DecoderLmConfig cfg = small_lm_config(2);
  RandomInitVisitor init(21);
  DecoderLm lm;
  ParamScope root(init);
  lm.visit(root.sub("model"), root, cfg);
  std::vector<int64_t> a = {1, 5, 9, 13}, b = {1, 7, 2, 8, 4, 30, 3};
  KvCache ca = lm.new_cache(16), cb = lm.new_cache(16), ra = lm.new_cache(16), rb = lm.new_cache(16);
  // Prefill both in one batch (chunks of 4 and 7 rows), the references one by one.
  std::vector<int64_t> both(a);
  both.insert(both.end(), b.begin(), b.end());
  lm.forward_batch(lm.embed(both.data(), 11), {{&ca, 4}, {&cb, 7}});
  lm.forward(lm.embed(a.data(), 4), ra);
  lm.forward(lm.embed(b.data(), 7), rb);
  for (int step = 0; step < 3; ++step) {
    std::vector<int64_t> next = {static_cast<int64_t>(10 + step), static_cast<int64_t>(20 + step)};
    Tensor hb = lm.forward_batch(lm.embed(next.data(), 2), {{&ca, 1}, {&cb, 1}});
    Tensor h1 = lm.forward(lm.embed(&next[0], 1), ra);
    Tensor h2 = lm.forward(lm.embed(&next[1], 1), rb);
    for (int64_t d = 0; d < 32; ++d) {
      ASSERT_NEAR(hb.data<float>()[d], h1.data<float>()[d], 1e-5);
      ASSERT_NEAR(hb.data<float>()[32 + d], h2.data<float>()[d], 1e-5);
    }
  }
  EXPECT_EQ(ca.length, 7);
  EXPECT_EQ(cb.length, 10);
}

}  // namespace
}  // namespace lumen

namespace lumen {
namespace {

// A LLaVA model from a preset config with edits, random weights.
std::unique_ptr<LlavaModel> llava_with(const std::function<void(nlohmann::json&)>& edit) {
  MakeTinyOptions o;
  nlohmann::json cfg = llava_preset_config(o, false, 64, 63);
  edit(cfg);
  auto m = std::make_unique<LlavaModel>();
  m->cfg = LlavaConfig::from_hf(cfg, "config.json");
  RandomInitVisitor init(9);
  m->visit(init);
  return m;
}

TEST(Llava, FeatureLayerListConcatenatesHiddenStates) {
  // vision_feature_layer [-2, -1]: hidden_states[-2] and [-1] side by side per patch; the
  // single-layer features are the first half of each row.
  auto one = llava_with([](nlohmann::json&) {});
  auto two = llava_with([](nlohmann::json& c) { c["vision_feature_layer"] = {-2, -1}; });
  ImageInput img;
  img.pixel_values = Tensor::zeros({1, 3, 56, 56});
  for (int64_t i = 0; i < img.pixel_values.numel(); ++i) img.pixel_values.data<float>()[i] = std::sin(0.01f * i);
  two->vision = one->vision;  // same tower, so the features can be compared
  Tensor f1 = one->vision_features(img.pixel_values), f2 = two->vision_features(img.pixel_values);
  const int64_t D = one->cfg.vision.encoder.dim;
  ASSERT_EQ(f2.dim(2), 2 * D);
  ASSERT_EQ(f1.dim(1), 16);  // CLS dropped ("default")
  for (int64_t p = 0; p < 16; ++p)
    for (int64_t d = 0; d < D; ++d) ASSERT_EQ(f2.data<float>()[p * 2 * D + d], f1.data<float>()[p * D + d]);
  // The last layer's half differs from the second-to-last.
  double diff = 0;
  for (int64_t d = 0; d < D; ++d) diff += std::fabs(f2.data<float>()[D + d] - f2.data<float>()[d]);
  EXPECT_GT(diff, 1e-3);
  EXPECT_EQ(two->linear_1.in, 2 * D);
}

TEST(Llava, FullStrategyKeepsTheClassToken) {
  auto m = llava_with([](nlohmann::json& c) { c["vision_feature_select_strategy"] = "full"; });
  ImageInput img;
  img.pixel_values = Tensor::zeros({1, 3, 56, 56});
  img.height = img.width = 56;
  EXPECT_EQ(m->image_token_count(img), 17);
  EXPECT_EQ(m->encode_image(img).dim(0), 17);
}

TEST(Llava, BadConfigsAreNamed) {
  auto expect_error = [](const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
    try {
      llava_with(edit);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([](nlohmann::json& c) { c["vision_feature_layer"] = 7; }, "vision_feature_layer");
  expect_error([](nlohmann::json& c) { c["vision_feature_select_strategy"] = "cls"; }, "vision_feature_select_strategy");
  expect_error([](nlohmann::json& c) { c["text_config"]["model_type"] = "gpt2"; }, "language model 'gpt2'");
  expect_error([](nlohmann::json& c) { c["vision_config"]["model_type"] = "siglip_vision_model"; }, "vision tower");
  expect_error([](nlohmann::json& c) { c["text_config"]["num_key_value_heads"] = 3; }, "num_key_value_heads");
  expect_error([](nlohmann::json& c) { c["text_config"]["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}}; },
               "rope scaling 'yarn'");
}

TEST(Llava, MismatchedHiddenSizesAreNamed) {
  // A checkpoint whose projector was made for another LM width: the loader names the tensor.
  std::string dir = testing_util::temp_dir("llava_mismatch");
  for (const auto& f : {"config.json", "model.safetensors", "preprocessor_config.json", "generation_config.json"})
    std::filesystem::copy_file(kFixtures + "/models/llava/" + f, dir + "/" + f);
  nlohmann::json cfg = JsonView::load_file(dir + "/config.json");
  cfg["text_config"]["hidden_size"] = 96;
  cfg["text_config"]["head_dim"] = 24;
  write_file_atomic(dir + "/config.json", cfg.dump());
  try {
    load_model(dir);
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multi_modal_projector.linear_1.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("config wants"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lumen

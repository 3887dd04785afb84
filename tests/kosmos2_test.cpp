// KOSMOS-2 against the reference fixtures (logits, image_embeds, greedy sequences and step
// logits through the KV cache), plus what the public fixtures do not reach: the position
// scheme around padding, prompt checks, and a make-tiny checkpoint run end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "families/family.h"
#include "families/kosmos2/kosmos2.h"
#include "grounding/draw.h"
#include "runtime/grounding_session.h"
#include "tests/test_util.h"
#include "text/tokenizer.h"

namespace lumen {
namespace {

using testing_util::expect_family_passes;
using testing_util::kFixtures;

TEST(Kosmos2, MatchesReference) { expect_family_passes("kosmos2"); }

TEST(Kosmos2, SinusoidalPositionsFollowM2M100) {
  const int64_t D = 8, pad = 1;
  std::vector<float> row(D);
  kosmos2_sinusoidal_position(pad, D, pad, row.data());
  for (float v : row) EXPECT_EQ(v, 0.f);  // the padding row is zero
  kosmos2_sinusoidal_position(5, D, pad, row.data());
  // half = 4, freq_k = exp(-k * ln(10000) / 3): [sin(5 f_k) for k], then [cos(5 f_k)].
  for (int k = 0; k < 4; ++k) {
    const double f = std::exp(-k * std::log(10000.0) / 3.0);
    EXPECT_NEAR(row[k], std::sin(5 * f), 1e-5);
    EXPECT_NEAR(row[4 + k], std::cos(5 * f), 1e-5);
  }
}

std::unique_ptr<Kosmos2Model> load_fixture_model() {
  auto m = load_model(kFixtures + "/models/kosmos2");
  return std::unique_ptr<Kosmos2Model>(dynamic_cast<Kosmos2Model*>(m.release()));
}

TEST(Kosmos2, CachedDecodeEqualsFullForward) {
  auto m = load_fixture_model();
  ASSERT_TRUE(m);
  const int64_t Q = m->cfg.latent_query_num, D = m->cfg.text.dim;
  Tensor pv = Tensor::zeros({1, 3, m->cfg.vision.image_size, m->cfg.vision.image_size});
  for (int64_t i = 0; i < pv.numel(); ++i) pv.data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
  Tensor img = m->encode_image(pv);
  ASSERT_EQ(img.dim(0), Q);
  std::vector<int64_t> ids = {0, 5};
  std::vector<int64_t> mask = {0, 0};
  for (int64_t q = 0; q < Q; ++q) {
    ids.push_back(10 + q);
    mask.push_back(1);
  }
  for (int64_t t : {6, 7, 30, 31}) {
    ids.push_back(t);
    mask.push_back(0);
  }
  const int64_t L = static_cast<int64_t>(ids.size());
  // Full forward over everything.
  KvCache full = m->text.new_cache(L);
  Tensor h_full = m->text.forward(m->prompt_embeddings(ids, mask, img), ids.data(), full);
  // Prefill all but the last two tokens, then decode them one at a time.
  KvCache c = m->text.new_cache(L);
  std::vector<int64_t> head(ids.begin(), ids.end() - 2), head_mask(mask.begin(), mask.end() - 2);
  m->text.forward(m->prompt_embeddings(head, head_mask, img), head.data(), c);
  Tensor last;
  for (int64_t i = L - 2; i < L; ++i) last = m->text.forward(m->text.embed(&ids[static_cast<size_t>(i)], 1), &ids[static_cast<size_t>(i)], c);
  for (int64_t j = 0; j < D; ++j) EXPECT_NEAR(last.data<float>()[j], h_full.data<float>()[(L - 1) * D + j], 1e-4);
}

// Left padding (HF attention_mask 0 on pad tokens): the pads keep the padding position and
// are hidden from every query, so the real tokens see what an unpadded prompt sees, and
// greedy generation writes the same answer.
TEST(Kosmos2, LeftPaddedPromptEqualsUnpadded) {
  auto m = load_fixture_model();
  ASSERT_TRUE(m);
  const int64_t Q = m->cfg.latent_query_num, V = m->cfg.text.vocab_size, pad = m->cfg.text.pad_token_id;
  Tensor pv = Tensor::zeros({1, 3, m->cfg.vision.image_size, m->cfg.vision.image_size});
  for (int64_t i = 0; i < pv.numel(); ++i) pv.data<float>()[i] = std::cos(0.21f * static_cast<float>(i));
  Tensor img = m->encode_image(pv);
  std::vector<int64_t> ids = {0, 5}, image_mask = {0, 0};
  for (int64_t q = 0; q < Q; ++q) {
    ids.push_back(10 + q);
    image_mask.push_back(1);
  }
  for (int64_t t : {6, 7, 30}) {
    ids.push_back(t);
    image_mask.push_back(0);
  }
  const int64_t L = static_cast<int64_t>(ids.size()), P = 3;
  std::vector<int64_t> padded(P, pad), padded_image(P, 0), keep(P, 0);
  padded.insert(padded.end(), ids.begin(), ids.end());
  padded_image.insert(padded_image.end(), image_mask.begin(), image_mask.end());
  keep.resize(static_cast<size_t>(L + P), 1);

  KvCache c1 = m->text.new_cache(L), c2 = m->text.new_cache(L + P);
  Tensor h1 = m->text.forward(m->prompt_embeddings(ids, image_mask, img), ids.data(), c1);
  Tensor h2 = m->text.forward(m->prompt_embeddings(padded, padded_image, img), padded.data(), c2, keep.data());
  Tensor l1 = m->text.logits(h1.data<float>(), L), l2 = m->text.logits(h2.data<float>() + P * m->cfg.text.dim, L);
  float worst = 0;
  for (int64_t i = 0; i < L * V; ++i) worst = std::max(worst, std::fabs(l1.data<float>()[i] - l2.data<float>()[i]));
  EXPECT_LT(worst, 1e-4f);
  // Without the mask the pads are attended and the logits move: the mask is what hides them.
  KvCache c3 = m->text.new_cache(L + P);
  Tensor h3 = m->text.forward(m->prompt_embeddings(padded, padded_image, img), padded.data(), c3);
  Tensor l3 = m->text.logits(h3.data<float>() + P * m->cfg.text.dim, L);
  float moved = 0;
  for (int64_t i = 0; i < L * V; ++i) moved = std::max(moved, std::fabs(l1.data<float>()[i] - l3.data<float>()[i]));
  EXPECT_GT(moved, 1e-3f);

  Kosmos2Model::GenerateOptions o;
  o.max_new_tokens = 6;
  const auto plain = m->generate(ids, image_mask, img, o);
  o.attention_mask.assign(keep.begin(), keep.begin() + L + P);
  EXPECT_EQ(m->generate(padded, padded_image, img, o), plain);
  o.attention_mask.pop_back();
  EXPECT_THROW(m->generate(padded, padded_image, img, o), Error);
}

TEST(Kosmos2, PromptMaskMustMatchImage) {
  auto m = load_fixture_model();
  ASSERT_TRUE(m);
  Tensor img = Tensor::zeros({m->cfg.latent_query_num, m->cfg.text.dim});
  try {
    m->prompt_embeddings({0, 5, 6}, {0, 1, 0}, img);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("marks 1 positions"), std::string::npos) << e.what();
  }
}

TEST(Kosmos2, MakeTinyGroundsEndToEnd) {
  const std::string dir = testing_util::temp_dir("kosmos2_tiny");
  auto r = testing_util::run_cli("make-tiny --family kosmos2 --out " + dir + " --seed 3");
  ASSERT_EQ(r.status, 0) << r.output;
  // The markup tokens are in the tokenizer and the processor's prompt has the layout of 5.5.
  Tokenizer tok = Tokenizer::from_dir(dir);
  ASSERT_TRUE(tok.token_to_id("<patch_index_1023>").has_value());
  ASSERT_TRUE(tok.token_to_id("<grounding>").has_value());
  GroundingSession s = GroundingSession::open(dir, {});
  Image img;
  img.width = 80;
  img.height = 60;
  img.rgb.assign(80 * 60 * 3, 128);
  GroundingResult g = s.ground(img, "An image of");
  // The decoded sequence holds the processor's prompt; post-processing keeps what follows
  // </image>, without the markup.
  EXPECT_NE(g.raw.find("</image>"), std::string::npos) << g.raw;
  EXPECT_NE(g.raw.find("<grounding>"), std::string::npos) << g.raw;
  EXPECT_EQ(g.grounded.text.rfind("An image of", 0), 0u) << g.grounded.text;
  // Whatever the random model wrote, every box is inside the image.
  for (const auto& e : g.grounded.entities)
    for (const auto& b : e.boxes) {
      EXPECT_GE(b.x0, 0);
      EXPECT_LE(b.x1, 80);
      EXPECT_GE(b.y0, 0);
      EXPECT_LE(b.y1, 60);
    }
  grounding::write_png(dir + "/gray.png", img);
  auto cli = testing_util::run_cli("ground -m " + dir + " -i " + dir +
                                   "/gray.png -p \"A photo of\" --max-new-tokens 6 --json");
  EXPECT_EQ(cli.status, 0) << cli.output;
  EXPECT_NE(cli.output.find("\"grounding\""), std::string::npos) << cli.output;
  // eval refexp running the model: every example scored, accuracy in [0, 1].
  {
    std::FILE* f = std::fopen((dir + "/refexp.jsonl").c_str(), "w");
    std::fputs("{\"image\": \"gray.png\", \"expression\": \"the top half\", \"box\": [0, 0, 80, 30]}\n"
               "{\"image\": \"gray.png\", \"expression\": \"everything\", \"box\": [0, 0, 80, 60]}\n",
               f);
    std::fclose(f);
  }
  auto ev = testing_util::run_cli("eval refexp -m " + dir + " --data " + dir + "/refexp.jsonl --max-new-tokens 6 -q",
                                  /*merge_stderr=*/false);
  ASSERT_EQ(ev.status, 0) << ev.output;
  auto j = nlohmann::json::parse(ev.output);
  EXPECT_EQ(j["examples"], 2);
  EXPECT_GE(j["accuracy"].get<double>(), 0.0);
  EXPECT_LE(j["accuracy"].get<double>(), 1.0);
  EXPECT_EQ(j["correct"].get<int>(), static_cast<int>(std::lround(j["accuracy"].get<double>() * 2)));
}

// `lumen run` on KOSMOS-2: the answer starts with the processed prompt, so a prompt that
// already holds a phrase and its patch pair comes back as that entity, whatever the random
// weights write next; --json carries it in "grounding" with its box in image pixels.
TEST(Kosmos2, RunReturnsGroundedEntities) {
  const std::string dir = testing_util::temp_dir("kosmos2_run");
  auto mk = testing_util::run_cli("make-tiny --family kosmos2 --out " + dir + " --seed 5");
  ASSERT_EQ(mk.status, 0) << mk.output;
  Image img;
  img.width = 64;
  img.height = 32;
  img.rgb.assign(64 * 32 * 3, 90);
  grounding::write_png(dir + "/flat.png", img);
  // Patches 0 and 1023 of the 32x32 grid: the whole image.
  auto r = testing_util::run_cli("run -m " + dir + " -i " + dir +
                                     "/flat.png -p \"<phrase>a wall</phrase><object><patch_index_0000>"
                                     "<patch_index_1023></object> is\" -n 4 --json",
                                 /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["grounding"]["format"], "kosmos2");
  ASSERT_FALSE(j["grounding"]["entities"].empty()) << r.output;
  const auto& e = j["grounding"]["entities"][0];
  EXPECT_EQ(e["phrase"], "a wall");
  const auto box = e["boxes"][0].get<std::vector<double>>();
  ASSERT_EQ(box.size(), 4u);
  EXPECT_NEAR(box[0], 0.0, 1.5);
  EXPECT_NEAR(box[1], 0.0, 1.5);
  EXPECT_NEAR(box[2], 64.0, 1.5);
  EXPECT_NEAR(box[3], 32.0, 1.5);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 4);
  // Flags that mean nothing for KOSMOS-2 are refused by name.
  auto bad = testing_util::run_cli("run -m " + dir + " -i " + dir + "/flat.png -p x --beams 3");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--beams"), std::string::npos) << bad.output;
}

TEST(Kosmos2, MarkupTokensAreAddedWhenTheTokenizerLacksThem) {
  // As Kosmos2Processor.__init__ does: a tokenizer.json saved without the markup still grounds.
  const std::string dir = testing_util::temp_dir("kosmos2_notok");
  auto r = testing_util::run_cli("make-tiny --family kosmos2 --out " + dir + " --seed 4");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string tj = dir + "/tokenizer.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(tj));
  nlohmann::json kept = nlohmann::json::array();
  int64_t phrase_id = -1;
  for (const auto& t : j["added_tokens"]) {
    const std::string c = t["content"];
    if (c == "<phrase>") phrase_id = t["id"];
    if (!t["lstrip"].get<bool>() && c != "<pad>") kept.push_back(t);
  }
  j["added_tokens"] = kept;
  std::ofstream(tj) << j.dump();
  ASSERT_FALSE(Tokenizer::from_dir(dir).token_to_id("<phrase>").has_value());
  GroundingSession s = GroundingSession::open(dir, {});
  ASSERT_NE(s.kosmos2_tokenizer(), nullptr);
  // Re-added in the processor's order from len(tokenizer): the ids make-tiny gave them.
  EXPECT_EQ(s.kosmos2_tokenizer()->token_to_id("<phrase>"), phrase_id);
  EXPECT_EQ(s.kosmos2_tokenizer()->token_to_id("<patch_index_1023>").value_or(-1), phrase_id + 1029);  // <phrase> is 6th of 11 tags, then 1024 patches
  Image img;
  img.width = img.height = 32;
  img.rgb.assign(32 * 32 * 3, 10);
  GroundingResult g = s.ground(img, "<phrase> a thing</phrase>");
  EXPECT_NE(g.raw.find("</image>"), std::string::npos) << g.raw;
}

}  // namespace
}  // namespace lumen

// BLIP and BLIP-2 against the reference fixtures, beam search against exhaustive search, T5's
// relative-position buckets, and the caption / match commands end to end on make-tiny models.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <set>
#include <nlohmann/json.hpp>

#include "blocks/t5.h"
#include "families/blip/blip.h"
#include "families/blip2/blip2.h"
#include "runtime/beam_search.h"
#include "tests/test_util.h"
#include "vision/image_processor.h"

namespace lumen {
namespace {

using testing_util::expect_family_passes;
using testing_util::run_cli;
using testing_util::temp_dir;

TEST(Blip, MatchesReference) { expect_family_passes("blip"); }
TEST(Blip2Opt, MatchesReference) { expect_family_passes("blip2_opt"); }
TEST(Blip2T5, MatchesReference) { expect_family_passes("blip2_t5"); }

// A toy model: the logits of the next token depend on the whole sequence (a hash), so
// beams really diverge.
Tensor toy_logits(const std::vector<std::vector<int64_t>>& seqs, int64_t V) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(seqs.size()), V});
  for (size_t i = 0; i < seqs.size(); ++i) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : seqs[i]) h = (h ^ static_cast<uint64_t>(x + 7)) * 1099511628211ull;
    for (int64_t v = 0; v < V; ++v) {
      uint64_t g = (h ^ static_cast<uint64_t>(v * 31 + 3)) * 6364136223846793005ull;
      t.data<float>()[static_cast<int64_t>(i) * V + v] = static_cast<float>((g >> 40) % 1000) / 250.f;
    }
  }
  return t;
}

double sequence_logprob(const std::vector<int64_t>& prompt, const std::vector<int64_t>& tail, int64_t V) {
  std::vector<int64_t> s = prompt;
  double total = 0;
  for (int64_t t : tail) {
    Tensor lg = toy_logits({s}, V);
    double mx = -1e30, sum = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(lg.data<float>()[v]));
    for (int64_t v = 0; v < V; ++v) sum += std::exp(lg.data<float>()[v] - mx);
    total += lg.data<float>()[t] - mx - std::log(sum);
    s.push_back(t);
  }
  return total;
}

TEST(BeamSearch, WithEnoughBeamsFindsTheBestSequence) {
  const int64_t V = 4, steps = 3;
  const std::vector<int64_t> prompt{1, 2};
  NextTokenLogitsFn fn = [&](const std::vector<std::vector<int64_t>>& s, const std::vector<int64_t>&) {
    return toy_logits(s, V);
  };
  BeamSearchParams p;
  p.num_beams = 64;  // V^steps: nothing is ever pruned
  p.max_new_tokens = steps;
  auto hyps = beam_search(prompt, p, fn);
  ASSERT_EQ(hyps.size(), 1u);
  ASSERT_EQ(hyps[0].sequence.size(), prompt.size() + steps);
  double best = -1e30;
  std::vector<int64_t> best_tail;
  for (int64_t a = 0; a < V; ++a)
    for (int64_t b = 0; b < V; ++b)
      for (int64_t c = 0; c < V; ++c) {
        double lp = sequence_logprob(prompt, {a, b, c}, V);
        if (lp > best) best = lp, best_tail = {a, b, c};
      }
  EXPECT_EQ(std::vector<int64_t>(hyps[0].sequence.begin() + 2, hyps[0].sequence.end()), best_tail);
  EXPECT_NEAR(hyps[0].score, best / steps, 1e-4);  // length_penalty 1: mean log-prob
  // One beam is greedy search.
  p.num_beams = 1;
  EXPECT_EQ(beam_search(prompt, p, fn)[0].sequence, greedy_search(prompt, steps, 0, {}, fn));
}

TEST(BeamSearch, FinishesAtEosAndRespectsMinNewTokens) {
  const int64_t V = 5, eos = 4;
  // EOS is by far the likeliest token at every step.
  NextTokenLogitsFn fn = [&](const std::vector<std::vector<int64_t>>& s, const std::vector<int64_t>&) {
    Tensor t = toy_logits(s, V);
    for (int64_t i = 0; i < t.dim(0); ++i) t.data<float>()[i * V + eos] = 20.f;
    return t;
  };
  BeamSearchParams p;
  p.num_beams = 3;
  p.max_new_tokens = 6;
  p.eos_ids = {eos};
  auto h = beam_search({0}, p, fn);
  EXPECT_EQ(h[0].sequence, (std::vector<int64_t>{0, eos}));
  p.min_new_tokens = 3;
  h = beam_search({0}, p, fn);
  ASSERT_EQ(h[0].sequence.size(), 5u);  // three tokens, then EOS
  EXPECT_EQ(h[0].sequence.back(), eos);
  for (size_t i = 1; i + 1 < h[0].sequence.size(); ++i) EXPECT_NE(h[0].sequence[i], eos);
}

TEST(BeamSearch, NoRepeatNgramBansCompletions) {
  EXPECT_EQ(banned_ngram_tokens({1, 2, 3, 1, 2}, 3), (std::vector<int64_t>{3}));
  EXPECT_EQ(banned_ngram_tokens({1, 2, 1, 2}, 2), (std::vector<int64_t>{1}));  // "2 1" seen: after 2 comes 1
  EXPECT_TRUE(banned_ngram_tokens({1, 2}, 3).empty());
  // A model that always prefers token 1 may write the bigram (1, 1) once, never twice.
  NextTokenLogitsFn fn = [](const std::vector<std::vector<int64_t>>& s, const std::vector<int64_t>&) {
    Tensor t = Tensor::zeros({static_cast<int64_t>(s.size()), 3});
    for (int64_t i = 0; i < t.dim(0); ++i) t.data<float>()[i * 3 + 1] = 5.f;
    return t;
  };
  BeamSearchParams p;
  p.num_beams = 2;
  p.max_new_tokens = 5;
  p.no_repeat_ngram_size = 2;
  const std::vector<int64_t> seq = beam_search({0}, p, fn)[0].sequence;
  ASSERT_EQ(seq.size(), 6u);
  EXPECT_EQ(seq[1], 1);
  EXPECT_EQ(seq[2], 1);  // (1, 1) the first time is allowed
  std::set<std::pair<int64_t, int64_t>> seen;
  for (size_t i = 1; i < seq.size(); ++i)
    EXPECT_TRUE(seen.insert({seq[i - 1], seq[i]}).second) << "bigram repeated at " << i;
  p.no_repeat_ngram_size = 0;
  EXPECT_EQ(beam_search({0}, p, fn)[0].sequence, (std::vector<int64_t>{0, 1, 1, 1, 1, 1}));
}

TEST(T5, RelativePositionBuckets) {
  // Values of T5Attention._relative_position_bucket (32 buckets, distance 128), from a line-by-line
  // Python transcription of it.
  EXPECT_EQ(t5_relative_position_bucket(0, true, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(3, true, 32, 128), 19);
  EXPECT_EQ(t5_relative_position_bucket(-3, true, 32, 128), 3);
  EXPECT_EQ(t5_relative_position_bucket(-20, true, 32, 128), 10);
  EXPECT_EQ(t5_relative_position_bucket(500, true, 32, 128), 31);
  EXPECT_EQ(t5_relative_position_bucket(5, false, 32, 128), 0);  // the decoder ignores the future
  EXPECT_EQ(t5_relative_position_bucket(-40, false, 32, 128), 23);
}

const std::string kImage = std::string(LUMEN_SOURCE_DIR) + "/data/images/example.jpg";

std::string make_tiny(const std::string& family, const std::string& arch) {
  std::string dir = temp_dir("cli_" + family + "_" + arch);
  auto r = run_cli("make-tiny -f " + family + " --arch " + arch + " -o " + dir + " --force --seed 3");
  EXPECT_EQ(r.status, 0) << r.output;
  return dir;
}

nlohmann::json run_json(const std::string& args) {
  auto r = run_cli(args + " --json", /*merge_stderr=*/false);
  EXPECT_EQ(r.status, 0) << r.output;
  return nlohmann::json::parse(r.output);
}

TEST(BlipCli, CaptionMatchesTheLibraryGreedyAndBeam) {
  const std::string dir = make_tiny("blip", "tiny");
  auto model = load_model(dir);
  const auto& blip = dynamic_cast<const BlipModel&>(*model);
  Tensor pv = ImageProcessor::from_file(dir + "/preprocessor_config.json").process({decode_image_file(kImage)}).pixel_values;
  for (int64_t beams : {1, 3}) {
    nlohmann::json j = run_json("caption -m " + dir + " -i " + kImage + " --beams " + std::to_string(beams) +
                                " --max-new-tokens 6 --min-new-tokens 6");
    BlipDecodeOptions o;
    o.num_beams = beams;
    o.max_new_tokens = o.min_new_tokens = 6;
    std::vector<int64_t> want = blip.caption(pv, {blip.cfg.bos_id}, o);  // no prompt: [DEC]
    ASSERT_EQ(want.size(), 7u);
    EXPECT_EQ(j["token_ids"].get<std::vector<int64_t>>(), std::vector<int64_t>(want.begin() + 1, want.end()))
        << "beams " << beams;
  }
}

TEST(BlipCli, MatchGivesProbabilitiesAndCosines) {
  const std::string dir = make_tiny("blip", "tiny-retrieval");
  nlohmann::json j = run_json("match -m " + dir + " -i " + kImage + " --text 'a dog on a sofa' --text 'two cars'");
  ASSERT_EQ(j["results"].size(), 2u);
  for (const auto& r : j["results"]) {
    EXPECT_GT(r["itm_probability"].get<double>(), 0.0);
    EXPECT_LT(r["itm_probability"].get<double>(), 1.0);
    EXPECT_LE(std::fabs(r["cosine"].get<double>()), 1.0 + 1e-5);
  }
  // A captioning checkpoint has no matching head: the error says so.
  auto r = run_cli("match -m " + make_tiny("blip", "tiny") + " -i " + kImage + " --text x");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("BlipForImageTextRetrieval"), std::string::npos) << r.output;
}

TEST(BlipCli, VqaAnswersThePrompt) {
  const std::string dir = make_tiny("blip", "tiny-vqa");
  nlohmann::json j = run_json("caption -m " + dir + " -i " + kImage +
                              " -p 'what is on the sofa?' --beams 1 --max-new-tokens 4 --min-new-tokens 4");
  EXPECT_EQ(j["token_ids"].size(), 4u);
}

TEST(Blip2Cli, CaptionsWithOptAndT5) {
  for (const char* family : {"blip2_opt", "blip2_t5"}) {
    const std::string dir = make_tiny(family, "tiny");
    for (int beams : {1, 2}) {
      nlohmann::json j = run_json("caption -m " + dir + " -i " + kImage + " -p 'a photo of' --beams " +
                                  std::to_string(beams) + " --max-new-tokens 5 --min-new-tokens 5");
      EXPECT_EQ(j["family"], family);
      EXPECT_EQ(j["token_ids"].size(), 5u) << family << " beams " << beams;
    }
  }
}

}  // namespace
}  // namespace lumen

// BLIP and BLIP-2 against the reference fixtures, beam search against exhaustive search, T5's
// relative-position buckets, and the caption / match commands end to end on make-tiny models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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
    o.search.num_beams = beams;
    o.search.max_new_tokens = o.search.min_new_tokens = 6;
    std::vector<int64_t> want = blip.caption(pv, {blip.cfg.bos_id}, o);  // no prompt: [DEC]
    ASSERT_EQ(want.size(), 7u);
    EXPECT_EQ(j["token_ids"].get<std::vector<int64_t>>(), std::vector<int64_t>(want.begin() + 1, want.end()))
        << "beams " << beams;
  }
}

// The decoder's KV cache gives the logits a full re-run over the prefix gives, including after
// beam reorders that permute rows and duplicate a parent.
TEST(BlipDecoderCache, EqualsTheUncachedFullRerun) {
  const std::string dir = make_tiny("blip", "tiny");
  auto model = load_model(dir);
  const auto& blip = dynamic_cast<const BlipModel&>(*model);
  const BertTextModel& dec = *blip.text_decoder;
  Tensor pv =
      ImageProcessor::from_file(dir + "/preprocessor_config.json").process({decode_image_file(kImage)}).pixel_values;
  Tensor img = blip.image_embeds(pv);  // [1, T, Dv]
  const int64_t T = img.dim(1), V = blip.cfg.text.vocab_size;
  Tensor memory = img.reshape({T, img.dim(2)});
  auto max_diff = [](const float* a, const float* b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
    return m;
  };
  // Last-position logits of each sequence, re-running the decoder over all of it.
  auto rerun = [&](const std::vector<std::vector<int64_t>>& seqs) {
    const int64_t n = static_cast<int64_t>(seqs.size()), L = static_cast<int64_t>(seqs[0].size());
    Tensor rep = Tensor::zeros({n * T, memory.dim(1)});
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(rep.data<float>() + i * memory.numel(), memory.data<float>(),
                  static_cast<size_t>(memory.numel()) * sizeof(float));
    std::vector<int64_t> ids;
    for (const auto& q : seqs) ids.insert(ids.end(), q.begin(), q.end());
    Tensor all = blip.decoder_logits(ids.data(), n, L, rep, T);
    Tensor last = Tensor::zeros({n, V});
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(last.data<float>() + i * V, all.data<float>() + (i * L + L - 1) * V,
                  static_cast<size_t>(V) * sizeof(float));
    return last;
  };
  const int64_t rows = 3, prompt_len = 2;
  std::vector<std::vector<int64_t>> seqs(rows, std::vector<int64_t>{blip.cfg.bos_id, 1037});
  BertDecoderCache cache = dec.new_decoder_cache(memory, rows, prompt_len + 6);
  Tensor h = dec.forward_cached(seqs[0].data(), 1, prompt_len, cache);
  cache.broadcast_first_row();
  EXPECT_EQ(cache.copied_positions, (rows - 1) * prompt_len);
  Tensor got = blip.lm_head.forward(h.data<float>() + (prompt_len - 1) * blip.cfg.text.dim, 1);
  EXPECT_LT(max_diff(got.data<float>(), rerun({seqs[0]}).data<float>(), V), 1e-5);
  // Steps: the rows keep their parents, permute them, duplicate one (two rows copy it).
  const std::vector<std::vector<int64_t>> parents{{0, 1, 2}, {2, 0, 1}, {1, 1, 0}, {2, 2, 2}};
  const std::vector<int64_t> copies{0, 0, 1, 2};
  int64_t step = 0;
  for (const auto& parent : parents) {
    std::vector<std::vector<int64_t>> next(rows);
    std::vector<int64_t> last(rows);
    for (int64_t i = 0; i < rows; ++i) {
      next[static_cast<size_t>(i)] = seqs[static_cast<size_t>(parent[static_cast<size_t>(i)])];
      last[static_cast<size_t>(i)] = 2000 + 17 * i + 5 * step;  // distinct tokens per row and step
      next[static_cast<size_t>(i)].push_back(last[static_cast<size_t>(i)]);
    }
    seqs = next;
    const int64_t before = cache.copied_positions;
    cache.reorder(parent);
    EXPECT_EQ(cache.copied_positions - before, copies[static_cast<size_t>(step)] * cache.length) << "step " << step;
    Tensor hs = dec.forward_cached(last.data(), rows, 1, cache);
    Tensor cached = blip.lm_head.forward(hs.data<float>(), rows);
    EXPECT_LT(max_diff(cached.data<float>(), rerun(seqs).data<float>(), rows * V), 1e-5) << "step " << step;
    ++step;
  }
  // Whole decodes: greedy step logits and beam results agree with use_cache off.
  for (int64_t beams : {1, 3}) {
    BlipDecodeOptions o;
    o.search.num_beams = beams;
    o.search.max_new_tokens = 8;
    o.stop_at_eos = false;
    std::vector<std::vector<float>> with_cache, without;
    std::vector<int64_t> a = blip.caption(pv, {blip.cfg.bos_id}, o, &with_cache);
    o.use_cache = false;
    std::vector<int64_t> b = blip.caption(pv, {blip.cfg.bos_id}, o, &without);
    EXPECT_EQ(a, b) << "beams " << beams;
    EXPECT_EQ(a.size(), 9u);
    ASSERT_EQ(with_cache.size(), without.size());
    for (size_t i = 0; i < with_cache.size(); ++i)
      EXPECT_LT(max_diff(with_cache[i].data(), without[i].data(), V), 1e-5) << "step " << i;
  }
}

// `lumen bench blip/blip2` (not timed here): EOS never ends a caption, so every run decodes the
// asked number of tokens, and the report has both phases.
TEST(BlipCli, BenchDecodesAFixedNumberOfTokens) {
  for (const char* family : {"blip", "blip2_opt"}) {
    const std::string what = std::string(family) == "blip" ? "blip" : "blip2";
    nlohmann::json j = run_json("bench " + what + " --model " + make_tiny(family, "tiny") +
                                " --images 1 --warmup 0 --max-new-tokens 7 --beams 2 --threads 1");
    const size_t prompt = what == "blip" ? 1 : j["prompt_tokens"].get<size_t>();
    EXPECT_EQ(j["first_caption_ids"].size(), prompt + 7) << family;
    EXPECT_GT(j["encode_s"].get<double>(), 0.0) << family;
    EXPECT_GT(j["decode_s"].get<double>(), 0.0) << family;
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

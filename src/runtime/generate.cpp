#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

namespace lumen {

TokenSampler::TokenSampler(const SamplingParams& p) : p_(p), rng_(p.seed) {
  LUMEN_CHECK(p.top_p > 0.f && p.top_p <= 1.f, "top_p must be in (0, 1], got ", p.top_p);
  LUMEN_CHECK(p.min_p >= 0.f && p.min_p <= 1.f, "min_p must be in [0, 1], got ", p.min_p);
  LUMEN_CHECK(p.top_k >= 0, "top_k must not be negative, got ", p.top_k);
  LUMEN_CHECK(p.repetition_penalty > 0.f, "repetition_penalty must be positive, got ", p.repetition_penalty);
  LUMEN_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.f, "temperature must be >= 0, got ", p.temperature);
}

int64_t TokenSampler::sample(std::vector<float>& logits, const std::vector<int64_t>& context) {
  const int64_t V = static_cast<int64_t>(logits.size());
  LUMEN_CHECK(V > 0, "no logits to sample from");
  const float ninf = -std::numeric_limits<float>::infinity();
  if (p_.repetition_penalty != 1.f) {
    // RepetitionPenaltyLogitsProcessor: each distinct seen token once.
    std::vector<int64_t> seen(context);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int64_t id : seen) {
      if (id < 0 || id >= V) continue;
      float& s = logits[static_cast<size_t>(id)];
      s = s < 0 ? s * p_.repetition_penalty : s / p_.repetition_penalty;
    }
  }
  if (p_.greedy()) return static_cast<int64_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (float& s : logits) s /= p_.temperature;
  if (p_.top_k > 0 && p_.top_k < V) {
    // Keep every token scoring at least the k-th best (ties kept, as TopKLogitsWarper).
    std::vector<float> sorted(logits);
    std::nth_element(sorted.begin(), sorted.begin() + (p_.top_k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[static_cast<size_t>(p_.top_k - 1)];
    for (float& s : logits)
      if (s < kth) s = ninf;
  }
  // Probabilities of what is left.
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> prob(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += prob[i] = logits[i] == ninf ? 0.0 : std::exp(logits[i] - mx);
  for (double& q : prob) q /= sum;
  if (p_.top_p < 1.f) {
    // TopPLogitsWarper: drop the least likely tokens whose total mass is <= 1 - top_p,
    // always keeping the most likely one.
    std::vector<int64_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return prob[a] < prob[b]; });
    double cum = 0;
    for (size_t r = 0; r + 1 < order.size(); ++r) {
      cum += prob[static_cast<size_t>(order[r])];
      if (cum > 1.0 - p_.top_p) break;
      prob[static_cast<size_t>(order[r])] = 0;
    }
  }
  if (p_.min_p > 0.f) {
    const double top = *std::max_element(prob.begin(), prob.end());
    for (double& q : prob)
      if (q < p_.min_p * top) q = 0;
  }
  const double total = std::accumulate(prob.begin(), prob.end(), 0.0);
  std::uniform_real_distribution<double> uni(0.0, total);
  double u = uni(rng_), acc = 0;
  int64_t last_nonzero = 0;
  for (size_t i = 0; i < prob.size(); ++i) {
    if (prob[i] <= 0) continue;
    last_nonzero = static_cast<int64_t>(i);
    acc += prob[i];
    if (u < acc) return static_cast<int64_t>(i);
  }
  return last_nonzero;  // rounding left u at the very top
}

TextStreamer::TextStreamer(const Tokenizer& tok, std::vector<std::string> stop) : tok_(tok), stop_(std::move(stop)) {
  stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

namespace {

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Bytes at the end of s that start a UTF-8 sequence not yet complete.
size_t incomplete_utf8_tail(const std::string& s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

}  // namespace

std::string TextStreamer::push(int64_t id) {
  if (stopped_) return "";
  ids_.push_back(id);
  const std::string full = tok_.decode(ids_, /*skip_special_tokens=*/true);
  // Decoders only ever extend the text of a longer id list, except for the held-back tail;
  // if one rewrote emitted text, emit nothing new rather than repeat or garble it.
  if (full.size() < text_.size() || full.compare(0, text_.size(), text_) != 0) return "";
  std::string fresh = full.substr(text_.size());
  for (const auto& s : stop_) {
    size_t pos = fresh.find(s);
    if (pos == std::string::npos) continue;
    // The earliest stop string wins.
    std::string out = fresh.substr(0, pos);
    for (const auto& s2 : stop_) {
      size_t p2 = fresh.find(s2);
      if (p2 != std::string::npos && p2 < out.size()) out = fresh.substr(0, p2);
    }
    stopped_ = true;
    text_ += out;
    return out;
  }
  size_t hold = 0;
  // A partial character from byte fallback decodes as U+FFFD until its last byte arrives.
  if (ends_with(fresh, "\xEF\xBF\xBD")) hold = fresh.size();
  hold = std::max(hold, incomplete_utf8_tail(fresh));
  for (const auto& s : stop_)
    for (size_t n = std::min(s.size() - 1, fresh.size()); n > hold; --n)
      if (fresh.compare(fresh.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  std::string out = fresh.substr(0, fresh.size() - hold);
  text_ += out;
  pending_ = fresh.substr(fresh.size() - hold);
  return out;
}

std::string TextStreamer::finish() {
  if (stopped_) return "";
  std::string out = pending_;
  text_ += out;
  pending_.clear();
  return out;
}

GenerationResult generate(const DecoderLm& lm, const Tensor& prompt_embeds, const std::vector<int64_t>& prompt_ids,
                          const Tokenizer& tok, const GenerationParams& params,
                          const std::function<bool(std::string_view)>& on_text) {
  using clock = std::chrono::steady_clock;
  LUMEN_CHECK(params.max_new_tokens >= 0, "max_new_tokens must not be negative");
  const int64_t L = prompt_embeds.dim(0);
  LUMEN_CHECK(L > 0, "empty prompt");
  LUMEN_CHECK(L + params.max_new_tokens <= lm.cfg.max_positions, "context overflow: the prompt has ", L,
              " tokens and up to ", params.max_new_tokens, " new tokens were asked for, but the model's context is ",
              lm.cfg.max_positions, " tokens");
  GenerationResult r;
  r.prompt_tokens = L;
  KvCache cache = lm.new_cache(L + std::max<int64_t>(params.max_new_tokens, 1));
  TokenSampler sampler(params.sampling);
  TextStreamer streamer(tok, params.stop);
  std::vector<int64_t> context(prompt_ids);
  const int64_t V = lm.cfg.vocab_size;
  auto t0 = clock::now();
  Tensor h = lm.forward(prompt_embeds, cache);
  Tensor logits = lm.logits(h.data<float>() + (L - 1) * lm.cfg.dim, 1);
  auto t1 = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  r.finish_reason = "length";
  std::vector<float> lg(static_cast<size_t>(V));
  auto emit = [&](const std::string& piece) {
    if (piece.empty() || !on_text) return true;
    return on_text(piece);
  };
  for (int64_t t = 0; t < params.max_new_tokens; ++t) {
    std::copy(logits.data<float>(), logits.data<float>() + V, lg.begin());
    if (t < params.min_new_tokens)  // MinNewTokensLengthLogitsProcessor
      for (int64_t e : params.eos_ids)
        if (e >= 0 && e < V) lg[static_cast<size_t>(e)] = -std::numeric_limits<float>::infinity();
    const int64_t next = sampler.sample(lg, context);
    if (std::find(params.eos_ids.begin(), params.eos_ids.end(), next) != params.eos_ids.end()) {
      r.finish_reason = "stop";
      break;
    }
    r.tokens.push_back(next);
    context.push_back(next);
    if (!emit(streamer.push(next))) {
      r.finish_reason = "cancelled";
      break;
    }
    if (streamer.stopped()) {
      r.finish_reason = "stop";
      break;
    }
    if (t + 1 == params.max_new_tokens) break;
    Tensor x = lm.embed(&next, 1);
    h = lm.forward(x, cache);
    logits = lm.logits(h.data<float>(), 1);
  }
  if (r.finish_reason != "cancelled") emit(streamer.finish());
  r.text = streamer.text();
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace lumen

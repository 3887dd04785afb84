// Text generation over a DecoderLm: token sampling (HF's processor order), incremental
// detokenisation with stop strings, and the prefill + decode loop.
//
//   GenerationParams p;  p.max_new_tokens = 64;  p.eos_ids = {2};
//   GenerationResult r = generate(lm, prompt_embeds, prompt_ids, tokenizer, p,
//                                 [](std::string_view piece) { std::fputs(...); return true; });
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "blocks/decoder_lm.h"
#include "text/tokenizer.h"

namespace lumen {

struct SamplingParams {
  float temperature = 0.f;         // 0 = greedy (argmax)
  int64_t top_k = 0;               // 0 = off
  float top_p = 1.f;               // nucleus; 1 = off
  float min_p = 0.f;               // drop tokens below min_p * p(top token); 0 = off
  float repetition_penalty = 1.f;  // CTRL-style over prompt + generated tokens; 1 = off
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0.f; }
};

// Picks the next token. Order as transformers' generate: repetition penalty, temperature,
// top-k, top-p, min-p, then a draw from the softmax (or argmax when greedy).
class TokenSampler {
 public:
  explicit TokenSampler(const SamplingParams& p);
  // logits [V] are modified in place; `context` = prompt + generated ids so far.
  int64_t sample(std::vector<float>& logits, const std::vector<int64_t>& context);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

// Turns generated ids into text as it grows: holds back incomplete UTF-8 and any tail that
// could still become a stop string, and cuts the text at the first stop string.
class TextStreamer {
 public:
  TextStreamer(const Tokenizer& tok, std::vector<std::string> stop);
  // Adds a token; returns the newly final text (maybe empty).
  std::string push(int64_t id);
  // The held-back rest at the end of generation.
  std::string finish();
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // final text so far (stop string excluded)

 private:
  const Tokenizer& tok_;
  std::vector<std::string> stop_;
  std::vector<int64_t> ids_;
  std::string text_;     // emitted
  std::string pending_;  // decoded but held back
  bool stopped_ = false;
};

struct GenerationParams {
  int64_t max_new_tokens = 256;
  int64_t min_new_tokens = 0;  // EOS is suppressed before this many tokens (HF min_new_tokens)
  SamplingParams sampling;
  std::vector<int64_t> eos_ids;
  std::vector<std::string> stop;  // stop strings (not included in the output)
};

struct GenerationResult {
  std::vector<int64_t> tokens;  // generated ids (the EOS that ended generation excluded)
  std::string text;
  std::string finish_reason;    // "stop" (EOS or stop string), "length", "cancelled"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Streams text through on_text; returning false from it cancels. The cache must be empty and
// large enough for the prompt plus max_new_tokens (its capacity is checked).
GenerationResult generate(const DecoderLm& lm, const Tensor& prompt_embeds, const std::vector<int64_t>& prompt_ids,
                          const Tokenizer& tok, const GenerationParams& params,
                          const std::function<bool(std::string_view)>& on_text = {});

}  // namespace lumen

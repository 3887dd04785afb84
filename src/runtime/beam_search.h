// Beam search as transformers' GenerationMixin._beam_search (transformers >= 4.50, the
// vectorised rewrite of BeamSearchScorer) does it for one input: log-softmax scores with the
// logits processors applied (min_new_tokens, no_repeat_ngram_size), the best
// max(2, 1 + #eos) * num_beams continuations, the best num_beams unfinished ones running on,
// finished hypotheses scored sum_logprobs / generated_len^length_penalty, and the same
// early-stopping heuristic (early_stopping true / false / "never").
//
// The model is a callback: it scores the next token of every running sequence. `parent[i]`
// says which row of the previous call sequence i extends, so a model with a KV cache can
// reorder it (the first call's rows are copies of the prompt, parent = -1).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace lumen {

// sequences: n rows of equal length (prompt + tokens so far); returns logits [n, V] of the next token.
using NextTokenLogitsFn =
    std::function<Tensor(const std::vector<std::vector<int64_t>>& sequences, const std::vector<int64_t>& parent)>;

// How a caption or answer is searched for (GenerationConfig's fields of the same names);
// num_beams 1 is greedy decoding.
struct BeamSearchParams {
  enum class EarlyStopping { False, True, Never };
  int64_t num_beams = 1;
  int64_t max_new_tokens = 20;
  int64_t min_new_tokens = 0;  // EOS gets -inf before this many new tokens
  float length_penalty = 1.f;
  EarlyStopping early_stopping = EarlyStopping::False;
  int64_t no_repeat_ngram_size = 0;  // 0 = off
  int64_t num_return_sequences = 1;
  std::vector<int64_t> eos_ids;
};

struct BeamHypothesis {
  std::vector<int64_t> sequence;  // prompt + generated tokens (the EOS that ended it included)
  float score = 0.f;              // sum of log-probs / generated_length^length_penalty
};

// The best num_return_sequences hypotheses, best first.
std::vector<BeamHypothesis> beam_search(const std::vector<int64_t>& prompt, const BeamSearchParams& params,
                                        const NextTokenLogitsFn& next_logits);

// Greedy decoding over the same callback (one row): stops at EOS once min_new_tokens are out.
// step_logits, when given, receives the raw logits [V] of every step.
std::vector<int64_t> greedy_search(const std::vector<int64_t>& prompt, int64_t max_new_tokens, int64_t min_new_tokens,
                                   const std::vector<int64_t>& eos_ids, const NextTokenLogitsFn& next_logits,
                                   std::vector<std::vector<float>>* step_logits = nullptr);

// The best sequence (prompt + new tokens) under params: greedy_search when num_beams <= 1,
// else the best hypothesis of beam_search. step_logits is filled by the greedy path only.
std::vector<int64_t> best_sequence(const std::vector<int64_t>& prompt, const BeamSearchParams& params,
                                   const NextTokenLogitsFn& next_logits,
                                   std::vector<std::vector<float>>* step_logits = nullptr);

// Tokens that would repeat an n-gram of `sequence` (transformers' NoRepeatNGramLogitsProcessor).
std::vector<int64_t> banned_ngram_tokens(const std::vector<int64_t>& sequence, int64_t n);

}  // namespace lumen

#include "runtime/beam_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace lumen {

namespace {

constexpr float kNeg = -1.0e9f;  // transformers' "never pick this" score offset

bool is_eos(const std::vector<int64_t>& eos, int64_t t) { return std::find(eos.begin(), eos.end(), t) != eos.end(); }

// Indices of the k largest values, largest first; equal values keep index order (as
// torch.topk on CPU returns them in practice).
std::vector<size_t> top_k(const std::vector<float>& v, size_t k) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  k = std::min(k, v.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                    [&](size_t a, size_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  idx.resize(k);
  return idx;
}

// log_softmax in place (float, as torch computes it for float32 logits).
void log_softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i] - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  for (int64_t i = 0; i < n; ++i) x[i] -= lse;
}

// The logits processors beam and greedy search share, on one row of scores.
void apply_processors(float* scores, int64_t V, const std::vector<int64_t>& sequence, int64_t new_tokens,
                      int64_t min_new_tokens, const std::vector<int64_t>& eos, int64_t no_repeat_ngram) {
  const float ninf = -std::numeric_limits<float>::infinity();
  if (no_repeat_ngram > 0)
    for (int64_t t : banned_ngram_tokens(sequence, no_repeat_ngram))
      if (t >= 0 && t < V) scores[t] = ninf;
  if (new_tokens < min_new_tokens)
    for (int64_t t : eos)
      if (t >= 0 && t < V) scores[t] = ninf;
}

}  // namespace

std::vector<int64_t> banned_ngram_tokens(const std::vector<int64_t>& seq, int64_t n) {
  std::vector<int64_t> banned;
  const int64_t len = static_cast<int64_t>(seq.size());
  if (n <= 0 || len + 1 < n) return banned;
  // Every n-gram's first n-1 tokens that equal the sequence's last n-1 tokens bans its last.
  for (int64_t start = 0; start + n <= len; ++start) {
    bool match = true;
    for (int64_t j = 0; j < n - 1 && match; ++j) match = seq[static_cast<size_t>(start + j)] == seq[static_cast<size_t>(len - n + 1 + j)];
    if (match) banned.push_back(seq[static_cast<size_t>(start + n - 1)]);
  }
  return banned;
}

std::vector<BeamHypothesis> beam_search(const std::vector<int64_t>& prompt, const BeamSearchParams& p,
                                        const NextTokenLogitsFn& next_logits) {
  LUMEN_CHECK(p.num_beams >= 1, "beam search: num_beams must be at least 1, got ", p.num_beams);
  LUMEN_CHECK(p.num_return_sequences >= 1 && p.num_return_sequences <= p.num_beams,
              "beam search: num_return_sequences (", p.num_return_sequences, ") must be in [1, num_beams = ",
              p.num_beams, "]");
  LUMEN_CHECK(p.max_new_tokens >= 1, "beam search: max_new_tokens must be positive");
  const size_t nb = static_cast<size_t>(p.num_beams);
  const size_t keep = std::max<size_t>(2, 1 + p.eos_ids.size()) * nb;  // beams_to_keep
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  const int64_t max_length = prompt_len + p.max_new_tokens;

  std::vector<std::vector<int64_t>> running(nb, prompt);
  std::vector<float> running_scores(nb, kNeg);
  running_scores[0] = 0.f;  // only the first copy of the prompt may be extended at step one
  std::vector<int64_t> parent(nb, -1);
  std::vector<std::vector<int64_t>> finished(nb, prompt);
  std::vector<float> finished_scores(nb, kNeg);
  std::vector<char> is_finished(nb, 0);
  bool improvable = true;  // is_early_stop_heuristic_unsatisfied
  int64_t cur_len = prompt_len;

  while (true) {
    Tensor logits = next_logits(running, parent);
    LUMEN_CHECK(logits.ndim() == 2 && logits.dim(0) == static_cast<int64_t>(nb),
                "beam search: the model returned logits ", logits.describe(), " for ", nb, " beams");
    const int64_t V = logits.dim(1);
    // accumulated[b * V + t] = running score of beam b + processed log p(t | beam b)
    std::vector<float> acc(nb * static_cast<size_t>(V));
    for (size_t b = 0; b < nb; ++b) {
      float* row = acc.data() + b * static_cast<size_t>(V);
      std::copy(logits.data<float>() + b * V, logits.data<float>() + (b + 1) * V, row);
      log_softmax(row, V);
      apply_processors(row, V, running[b], cur_len - prompt_len, p.min_new_tokens, p.eos_ids, p.no_repeat_ngram_size);
      for (int64_t t = 0; t < V; ++t) row[t] += running_scores[b];
    }
    const std::vector<size_t> top = top_k(acc, keep);
    std::vector<std::vector<int64_t>> cand(top.size());
    std::vector<float> cand_scores(top.size());
    std::vector<int64_t> cand_parent(top.size());
    std::vector<char> hits(top.size());
    bool all_hit = true;
    for (size_t i = 0; i < top.size(); ++i) {
      const size_t b = top[i] / static_cast<size_t>(V);
      const int64_t tok = static_cast<int64_t>(top[i] % static_cast<size_t>(V));
      cand[i] = running[b];
      cand[i].push_back(tok);
      cand_scores[i] = acc[top[i]];
      cand_parent[i] = static_cast<int64_t>(b);
      hits[i] = is_eos(p.eos_ids, tok) || cur_len + 1 >= max_length;
      all_hit = all_hit && hits[i];
    }
    // Running beams: the best num_beams candidates that did not just finish.
    std::vector<float> run_scores(top.size());
    for (size_t i = 0; i < top.size(); ++i) run_scores[i] = cand_scores[i] + (hits[i] ? kNeg : 0.f);
    const std::vector<size_t> next = top_k(run_scores, nb);
    for (size_t j = 0; j < nb; ++j) {
      running[j] = cand[next[j]];
      running_scores[j] = run_scores[next[j]];
      parent[j] = cand_parent[next[j]];
    }
    // Finished hypotheses: the first num_beams candidates that hit a stop, length-normalised,
    // merged with those finished before.
    bool all_finished = std::all_of(is_finished.begin(), is_finished.end(), [](char f) { return f != 0; });
    const float norm = std::pow(static_cast<float>(cur_len + 1 - prompt_len), p.length_penalty);
    std::vector<float> merged_scores(finished_scores);
    for (size_t i = 0; i < top.size(); ++i) {
      float s = cand_scores[i] / norm;
      if (all_finished && p.early_stopping == BeamSearchParams::EarlyStopping::True) s += kNeg;
      if (!improvable) s += kNeg;
      const bool just_finished = hits[i] && i < nb;
      if (!just_finished) s += kNeg;
      merged_scores.push_back(s);
    }
    const std::vector<size_t> best = top_k(merged_scores, nb);
    std::vector<std::vector<int64_t>> new_finished(nb);
    std::vector<float> new_scores(nb);
    std::vector<char> new_is_finished(nb);
    for (size_t j = 0; j < nb; ++j) {
      const size_t m = best[j];
      if (m < nb) {
        new_finished[j] = finished[m];
        new_is_finished[j] = is_finished[m];
      } else {
        new_finished[j] = cand[m - nb];
        new_is_finished[j] = hits[m - nb] && (m - nb) < nb;
      }
      new_scores[j] = merged_scores[m];
    }
    finished.swap(new_finished);
    finished_scores.swap(new_scores);
    is_finished.swap(new_is_finished);

    cur_len += 1;
    // _check_early_stop_heuristic
    const bool never_longer = p.early_stopping == BeamSearchParams::EarlyStopping::Never && p.length_penalty > 0.f;
    const int64_t best_len = never_longer ? max_length - prompt_len : cur_len - prompt_len;
    const float best_possible = running_scores[0] / std::pow(static_cast<float>(best_len), p.length_penalty);
    const float worst_finished = *std::min_element(finished_scores.begin(), finished_scores.end());
    bool any_better = false;
    for (size_t j = 0; j < nb; ++j) any_better = any_better || best_possible > (is_finished[j] ? worst_finished : kNeg);
    improvable = improvable && any_better;
    all_finished = std::all_of(is_finished.begin(), is_finished.end(), [](char f) { return f != 0; });
    const bool open_beam = !(all_finished && p.early_stopping == BeamSearchParams::EarlyStopping::True);
    if (!(improvable && open_beam && !all_hit)) break;
  }
  std::vector<BeamHypothesis> out;
  for (size_t j = 0; j < static_cast<size_t>(p.num_return_sequences); ++j) out.push_back({finished[j], finished_scores[j]});
  return out;
}

std::vector<int64_t> greedy_search(const std::vector<int64_t>& prompt, int64_t max_new_tokens, int64_t min_new_tokens,
                                   const std::vector<int64_t>& eos_ids, const NextTokenLogitsFn& next_logits,
                                   std::vector<std::vector<float>>* step_logits) {
  std::vector<std::vector<int64_t>> seq{prompt};
  std::vector<int64_t> parent{-1};
  for (int64_t t = 0; t < max_new_tokens; ++t) {
    Tensor logits = next_logits(seq, parent);
    LUMEN_CHECK(logits.ndim() == 2 && logits.dim(0) == 1, "greedy search: the model returned logits ",
                logits.describe(), " for one sequence");
    const int64_t V = logits.dim(1);
    std::vector<float> row(logits.data<float>(), logits.data<float>() + V);
    if (step_logits) step_logits->push_back(row);
    apply_processors(row.data(), V, seq[0], t, min_new_tokens, eos_ids, 0);
    const int64_t next = static_cast<int64_t>(std::max_element(row.begin(), row.end()) - row.begin());
    seq[0].push_back(next);
    parent[0] = 0;
    if (is_eos(eos_ids, next)) break;
  }
  return seq[0];
}

std::vector<int64_t> best_sequence(const std::vector<int64_t>& prompt, const BeamSearchParams& p,
                                   const NextTokenLogitsFn& next_logits, std::vector<std::vector<float>>* step_logits) {
  if (p.num_beams <= 1)
    return greedy_search(prompt, p.max_new_tokens, p.min_new_tokens, p.eos_ids, next_logits, step_logits);
  return beam_search(prompt, p, next_logits).front().sequence;
}

}  // namespace lumen

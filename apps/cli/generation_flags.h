// Sampling and length flags shared by the commands that generate text (run, chat). Unset
// flags keep the checkpoint's generation_config.json defaults (greedy when it has none).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "apps/cli/commands.h"
#include "blocks/params.h"
#include "runtime/generate.h"

namespace lumen::cli {

// --quant: the linear layers' weight format at load.
inline void add_quant_flag(CLI::App* cmd, std::string* quant) {
  cmd->add_option("--quant", *quant,
                  "Linear weights as stored in the checkpoint (stored, default), or converted on load: q8_0, f16, "
                  "bf16, f32")
      ->capture_default_str();
}

inline LoadOptions load_options_from(const std::string& quant) {
  LoadOptions o;
  LUMEN_CHECK(linear_format_from_name(quant, &o.linear), "--quant '", quant,
              "' is not a weight format (stored, q8_0, f16, bf16, f32)");
  return o;
}

struct GenerationFlags {
  std::optional<int64_t> max_tokens, top_k, seed;
  std::optional<float> temperature, top_p, min_p, repeat_penalty;
  std::vector<std::string> stop;
  bool ignore_eos = false;
};

inline void add_generation_flags(CLI::App* cmd, GenerationFlags* f) {
  cmd->add_option("--max-tokens,-n", f->max_tokens, "Most new tokens to generate (default: generation_config.json, else 256)");
  cmd->add_option("--temperature,--temp", f->temperature, "Sampling temperature; 0 = greedy (default: the checkpoint's)");
  cmd->add_option("--top-k", f->top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", f->top_p, "Nucleus sampling: keep the smallest set with this much probability (1 = off)");
  cmd->add_option("--min-p", f->min_p, "Drop tokens below min-p x the top token's probability (0 = off)");
  cmd->add_option("--repeat-penalty", f->repeat_penalty, "Penalise tokens already in the context (1 = off)");
  cmd->add_option("--seed", f->seed, "Random seed for sampling (same seed, same text)");
  cmd->add_option("--stop", f->stop, "Stop when this text appears (repeatable); it is not printed");
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past end-of-sequence tokens");
}

// The checkpoint's defaults with the flags that were given on top.
inline GenerationParams apply_generation_flags(GenerationParams p, const GenerationFlags& f) {
  if (f.max_tokens) p.max_new_tokens = *f.max_tokens;
  if (f.temperature) p.sampling.temperature = *f.temperature;
  if (f.top_k) p.sampling.top_k = *f.top_k;
  if (f.top_p) p.sampling.top_p = *f.top_p;
  if (f.min_p) p.sampling.min_p = *f.min_p;
  if (f.repeat_penalty) p.sampling.repetition_penalty = *f.repeat_penalty;
  if (f.seed) p.sampling.seed = static_cast<uint64_t>(*f.seed);
  for (const auto& s : f.stop) p.stop.push_back(s);
  if (f.ignore_eos) p.eos_ids.clear();
  return p;
}

}  // namespace lumen::cli

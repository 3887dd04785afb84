// lumen bench llava: the costs of one LLaVA answer on random weights of a real size, without a
// checkpoint on disk (a 7B model is ~13 GB in f16): image encoding (the CLIP tower and the
// projector), prefill of image + text tokens, and decode. Decode reads every LM weight once per
// token, so its speed is compared with the machine's read bandwidth measured in the same run.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/cli/bench_llava.h"
#include "apps/cli/bench_weights.h"
#include "bench/membw.h"
#include "core/threads.h"
#include "families/llava/llava.h"
#include "kernels/ops.h"

namespace lumen::cli {
namespace {

using clock_type = bench_clock;

size_t linear_bytes(const Linear& l) { return l.weight.bytes(); }

}  // namespace

int run_llava_bench(const LlavaBenchArgs& a) {
  WeightFormat format;
  LUMEN_CHECK(weight_format_from_name(a.quant, &format), "--quant '", a.quant, "' (f32, f16, bf16, q8_0)");
  const bool next = a.arch.find("v1.6") != std::string::npos;
  MakeTinyOptions o;
  o.arch = a.arch;
  nlohmann::json cfg_json = llava_preset_config(o, next, 32064, 32000);
  LlavaModel m;
  m.cfg = LlavaConfig::from_hf(cfg_json, a.arch + " preset");
  std::fprintf(stderr, "bench llava: building random %s weights (%s)...\n", a.arch.c_str(), a.quant.c_str());
  auto t0 = clock_type::now();
  // The layout lumen's make-tiny writes (language_model.model.*, vision_tower.*).
  RandomWeightsVisitor weights(format, [](const std::string& name) { return name.rfind("model.", 0) != 0; });
  m.visit(weights);
  const double build_s = seconds_since(t0);

  // Bytes of weights one decode step reads: every LM linear layer and the LM head.
  size_t decode_bytes = linear_bytes(m.text.lm_head);
  for (const auto& l : m.text.layers)
    for (const Linear* x : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      decode_bytes += linear_bytes(*x);

  // 1. Image: one 336x336 tile through the tower and the projector.
  const int64_t S = m.cfg.vision.image_size;
  ImageInput img;
  img.pixel_values = Tensor::zeros({1, 3, S, S});
  fill_random(img.pixel_values, Init::Vector, 99);
  img.height = img.width = S;
  std::fprintf(stderr, "bench llava: image encode...\n");
  t0 = clock_type::now();
  Tensor feats = m.encode_image(img);  // [576, D]
  const double image_s = seconds_since(t0);

  // 2. Prefill: the image's tokens and `text_tokens` text tokens in one pass.
  const int64_t n_img = feats.dim(0), n_text = a.text_tokens, L = n_img + n_text, D = m.cfg.text.dim;
  std::vector<int64_t> ids(static_cast<size_t>(L));
  for (int64_t i = 0; i < L; ++i) ids[static_cast<size_t>(i)] = i < n_img ? m.cfg.image_token_id : 100 + i;
  KvCache cache = m.text.new_cache(L + a.decode_tokens);
  Tensor embeds = m.text.embed(ids.data() + n_img, n_text);
  Tensor prompt = Tensor::zeros({L, D});
  std::memcpy(prompt.data<float>(), feats.data<float>(), static_cast<size_t>(feats.numel()) * sizeof(float));
  std::memcpy(prompt.data<float>() + n_img * D, embeds.data<float>(), static_cast<size_t>(embeds.numel()) * sizeof(float));
  std::fprintf(stderr, "bench llava: prefill %lld tokens...\n", static_cast<long long>(L));
  t0 = clock_type::now();
  Tensor h = m.text.forward(prompt, cache);
  Tensor logits = m.text.logits(h.data<float>() + (L - 1) * D, 1);
  const double prefill_s = seconds_since(t0);

  // 3. Decode: greedy, one token at a time over the cache.
  std::fprintf(stderr, "bench llava: decode %d tokens...\n", a.decode_tokens);
  std::vector<double> steps;
  for (int t = 0; t < a.decode_tokens; ++t) {
    const float* lg = logits.data<float>();
    int64_t next_id = static_cast<int64_t>(std::max_element(lg, lg + m.cfg.text.vocab_size) - lg);
    auto s = clock_type::now();
    Tensor x = m.text.embed(&next_id, 1);
    h = m.text.forward(x, cache);
    logits = m.text.logits(h.data<float>(), 1);
    steps.push_back(seconds_since(s));
  }
  std::sort(steps.begin(), steps.end());
  const double step_s = steps.empty() ? 0 : steps[steps.size() / 2];
  const double decode_tps = step_s > 0 ? 1.0 / step_s : 0;

  // The bound: weights read per token over the read bandwidth measured now, same threads.
  std::fprintf(stderr, "bench llava: measuring read bandwidth...\n");
  bench::Buffer buf(size_t{1} << 30);
  const bench::Bandwidth bw = bench::best_read_bandwidth(buf, num_threads());
  const double bw_gbs = bw.wall;
  const double achieved_gbs = static_cast<double>(decode_bytes) * decode_tps / 1e9;
  const double fraction = bw_gbs > 0 ? achieved_gbs / bw_gbs : 0;

  nlohmann::ordered_json r = {
      {"arch", a.arch}, {"quant", a.quant}, {"threads", num_threads()}, {"cpu", ops::cpu_path_name(ops::cpu_path())},
      {"weights_built_seconds", build_s},
      {"image_encode_seconds", image_s}, {"image_tokens", n_img},
      {"prefill_tokens", L}, {"prefill_seconds", prefill_s}, {"prefill_tokens_per_second", L / prefill_s},
      {"decode_tokens", a.decode_tokens}, {"decode_seconds_per_token_median", step_s},
      {"decode_tokens_per_second", decode_tps},
      {"decode_weight_bytes_per_token", decode_bytes}, {"decode_gb_per_second", achieved_gbs},
      {"read_bandwidth_gb_per_second", bw_gbs}, {"bandwidth_fraction", fraction},
      {"peak_rss_gib", peak_rss_gib()}};
  if (a.json) {
    std::printf("%s\n", r.dump(2).c_str());
    return 0;
  }
  std::printf("llava %s  weights %s  threads %d  cpu %s\n", a.arch.c_str(), a.quant.c_str(), num_threads(),
              ops::cpu_path_name(ops::cpu_path()));
  std::printf("  image encode (%lld tokens)  %8.2f s\n", static_cast<long long>(n_img), image_s);
  std::printf("  prefill %lld tokens         %8.2f s   %7.1f tokens/s\n", static_cast<long long>(L), prefill_s,
              L / prefill_s);
  std::printf("  decode                     %8.3f s/token  %5.2f tokens/s\n", step_s, decode_tps);
  std::printf("  decode reads %.2f GB/token -> %.1f GB/s of %.1f GB/s measured read bandwidth = %.0f%%\n",
              static_cast<double>(decode_bytes) / 1e9, achieved_gbs, bw_gbs, 100 * fraction);
  std::printf("  peak RSS %.2f GiB\n", peak_rss_gib());
  return 0;
}

}  // namespace lumen::cli

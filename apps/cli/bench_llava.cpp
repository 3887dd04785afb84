// lumen bench llava: the costs of one LLaVA answer on random weights of a real size, without a
// checkpoint on disk (a 7B model is ~13 GB in f16): image encoding (the CLIP tower and the
// projector), prefill of image + text tokens, and decode. Decode reads every LM weight once per
// token, so its speed is compared with the machine's read bandwidth measured in the same run.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/cli/bench_llava.h"
#include "bench/membw.h"
#include "core/threads.h"
#include "families/llava/llava.h"

namespace lumen::cli {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double peak_rss_gib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is KiB
}

// Fills a tensor with uniform values of the init scheme's scale, fast (xorshift per row block):
// the values do not matter for timing, only that they are finite and not all equal.
void fill_random(Tensor& t, Init init, uint64_t seed) {
  const Shape& s = t.shape();
  int64_t fan_in = 1;
  for (size_t i = 1; i < s.size(); ++i) fan_in *= s[i];
  const float scale = init == Init::Matrix ? 1.7f / std::sqrt(static_cast<float>(fan_in))
                      : init == Init::NormWeight ? 0.1f
                                                 : 0.05f;
  const float base = init == Init::NormWeight ? 1.f : 0.f;
  float* p = t.data<float>();
  const int64_t n = t.numel(), block = 1 << 16;
  parallel_for((n + block - 1) / block, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(b) * 0xBF58476D1CE4E5B9ull + 1;
      for (int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const float u = static_cast<float>(x >> 40) * (1.f / 16777216.f);  // [0, 1)
        p[i] = base + scale * (2.f * u - 1.f);
      }
    }
  });
}

// Random parameters straight into the chosen linear format: one layer's f32 at a time.
class RandomWeightsVisitor : public ParamVisitor {
 public:
  explicit RandomWeightsVisitor(WeightFormat f) : format_(f) {}
  void param(const std::string&, const Shape& shape, Init init, Tensor* slot) override {
    *slot = Tensor::zeros(shape);
    fill_random(*slot, init, ++seed_);
  }
  void scalar(const std::string& name, const Shape& shape, float, Tensor* slot) override {
    param(name, shape, Init::Vector, slot);
  }
  bool has(const std::string& name) const override {
    // The layout lumen's make-tiny writes (language_model.model.*, vision_tower.*).
    return name.rfind("model.", 0) != 0;
  }
  void linear_weight(const std::string& name, const Shape& shape, Init init, LinearWeight* slot) override {
    Tensor t;
    param(name, shape, init, &t);
    const bool q8_ok = format_ != WeightFormat::Q8_0 || shape[1] % kQ8BlockSize == 0;
    *slot = ops::make_linear_weight(t, q8_ok ? format_ : WeightFormat::F16);
    bytes_ += slot->bytes();
  }
  size_t bytes() const { return bytes_; }

 private:
  WeightFormat format_;
  uint64_t seed_ = 0;
  size_t bytes_ = 0;
};

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
  RandomWeightsVisitor weights(format);
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
      {"arch", a.arch}, {"quant", a.quant}, {"threads", num_threads()},
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
  std::printf("llava %s  weights %s  threads %d\n", a.arch.c_str(), a.quant.c_str(), num_threads());
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

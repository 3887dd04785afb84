// lumen bench blip / blip2: captions per second of a captioning model of a real size on random
// weights, the image encoder and the decoder timed apart, with a fixed number of new tokens
// (EOS does not stop a caption) so every run and every peer does the same work.
//   blip:  a BlipForConditionalGeneration checkpoint (make-tiny -f blip --arch blip-base, written
//          once to the cache dir, or --model DIR), f32 weights by default; --peers runs
//          bench/peers/blip_caption_torch.py on the same checkpoint, images and thread count.
//   blip2: BLIP-2 OPT-2.7B built in memory (no checkpoint: ~15 GB in f32) with linear weights in
//          f16 (default), bf16 or q8_0; lumen only.
// Preprocessing is not timed: the pixels are a deterministic pattern both sides compute alike.
#include "apps/cli/bench_caption.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/bench_weights.h"
#include "core/threads.h"
#include "families/blip/blip.h"
#include "families/blip2/blip2.h"
#include "formats/json_config.h"
#include "kernels/ops.h"

namespace lumen::cli {
namespace {

// Image k's pixels [1, 3, S, S]: ((i * 7919 + k * 104729) mod 2001) / 1000 - 1 at flat index i,
// in [-1, 1]. bench/peers/blip_caption_torch.py computes the same values.
Tensor bench_pixels(int64_t S, int64_t k) {
  Tensor px = Tensor::zeros({1, 3, S, S});
  float* p = px.data<float>();
  for (int64_t i = 0; i < px.numel(); ++i) p[i] = static_cast<float>((i * 7919 + k * 104729) % 2001) / 1000.f - 1.f;
  return px;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

void mkdirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i)
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0755);
}

// Times `images` captions after `warmup` untimed ones: encode(pixels of image k) -> features,
// decode(features) -> ids. Fills the timing fields of `r`.
template <class Encode, class Decode>
void time_captions(const CaptionBenchArgs& a, int64_t S, Encode encode, Decode decode, nlohmann::ordered_json& r) {
  for (int k = 0; k < a.warmup; ++k) decode(encode(bench_pixels(S, 1000 + k)));
  double encode_s = 0, decode_s = 0, encode_cpu = 0, decode_cpu = 0;
  std::vector<int64_t> first_ids;
  for (int k = 0; k < a.images; ++k) {
    const Tensor pixels = bench_pixels(S, k);
    auto t0 = bench_clock::now();
    double c0 = cpu_seconds();
    Tensor features = encode(pixels);
    encode_s += seconds_since(t0);
    encode_cpu += cpu_seconds() - c0;
    t0 = bench_clock::now();
    c0 = cpu_seconds();
    std::vector<int64_t> ids = decode(features);
    decode_s += seconds_since(t0);
    decode_cpu += cpu_seconds() - c0;
    if (k == 0) first_ids = ids;
  }
  const double cpu_s = encode_cpu + decode_cpu, n = static_cast<double>(a.images), total = encode_s + decode_s;
  r["captions_per_s"] = n / total;
  r["s_per_caption"] = total / n;
  r["encode_s"] = encode_s / n;
  r["decode_s"] = decode_s / n;
  r["decode_tokens_per_s"] = a.max_new_tokens * n / decode_s;
  r["cpu_s_per_caption"] = cpu_s / n;  // CPU time of all threads: what a loaded machine does not inflate
  r["encode_cpu_s"] = encode_cpu / n;
  r["decode_cpu_s"] = decode_cpu / n;
  r["first_caption_ids"] = first_ids;
}

// BLIP-2 OPT-2.7B (Salesforce/blip2-opt-2.7b): ViT-g/14 at 224, a 12-layer Q-Former with 32
// queries, OPT-2.7B.
nlohmann::json blip2_opt_preset(const std::string& arch) {
  LUMEN_CHECK(arch == "blip2-opt-2.7b", "bench blip2 has no --arch '", arch, "' (blip2-opt-2.7b)");
  nlohmann::json vision = {{"model_type", "blip_2_vision_model"}, {"hidden_size", 1408}, {"num_hidden_layers", 39},
                           {"num_attention_heads", 16}, {"intermediate_size", 6144}, {"image_size", 224},
                           {"patch_size", 14}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-6}, {"qkv_bias", true}};
  nlohmann::json qformer = {{"model_type", "blip_2_qformer"}, {"hidden_size", 768}, {"num_hidden_layers", 12},
                            {"num_attention_heads", 12}, {"intermediate_size", 3072}, {"encoder_hidden_size", 1408},
                            {"cross_attention_frequency", 2}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-12},
                            {"vocab_size", 30522}, {"max_position_embeddings", 512}};
  nlohmann::json text = {{"model_type", "opt"}, {"vocab_size", 50272}, {"hidden_size", 2560},
                         {"word_embed_proj_dim", 2560}, {"num_hidden_layers", 32}, {"num_attention_heads", 32},
                         {"ffn_dim", 10240}, {"max_position_embeddings", 2048}, {"do_layer_norm_before", true},
                         {"activation_function", "relu"}, {"enable_bias", true}, {"tie_word_embeddings", true},
                         {"bos_token_id", 2}, {"eos_token_id", 50118}, {"pad_token_id", 1}};
  return {{"architectures", {"Blip2ForConditionalGeneration"}}, {"model_type", "blip-2"}, {"num_query_tokens", 32},
          {"image_token_index", 50265}, {"use_decoder_only_language_model", true}, {"vision_config", vision},
          {"qformer_config", qformer}, {"text_config", text}};
}

int print(const CaptionBenchArgs& a, const nlohmann::ordered_json& r) {
  if (a.json) {
    std::printf("%s\n", r.dump(2).c_str());
    return 0;
  }
  std::printf("%s %s  weights %s  threads %d  cpu %s  beams %d  %d new tokens  %d images (+%d warm-up)\n",
              a.what.c_str(), r["arch"].get<std::string>().c_str(), r["quant"].get<std::string>().c_str(),
              num_threads(), ops::cpu_path_name(ops::cpu_path()), a.beams, a.max_new_tokens, a.images, a.warmup);
  std::printf("  %-8s %8.3f captions/s  %8.3f s/caption  (encode %.3f s, decode %.3f s = %.1f tokens/s)\n", "lumen",
              r["captions_per_s"].get<double>(), r["s_per_caption"].get<double>(), r["encode_s"].get<double>(),
              r["decode_s"].get<double>(), r["decode_tokens_per_s"].get<double>());
  std::printf("  %-8s CPU time %.3f s/caption (encode %.3f s, decode %.3f s)\n", "",
              r["cpu_s_per_caption"].get<double>(), r["encode_cpu_s"].get<double>(), r["decode_cpu_s"].get<double>());
  for (const auto& p : r["peers"]) {
    if (p.contains("error")) {
      std::printf("  %-8s error: %s\n", p.value("peer", "?").c_str(), p["error"].get<std::string>().c_str());
      continue;
    }
    std::printf("  %-8s %8.3f captions/s  %8.3f s/caption  (encode %.3f s, decode %.3f s)  lumen is %.2fx%s\n",
                p.value("peer", "?").c_str(), p["captions_per_s"].get<double>(), p["s_per_caption"].get<double>(),
                p["encode_s"].get<double>(), p["decode_s"].get<double>(), p["lumen_speedup"].get<double>(),
                p.value("same_ids", true) ? "" : "  (first caption's ids differ)");
    std::printf("  %-8s CPU time %.3f s/caption (encode %.3f s, decode %.3f s)  lumen is %.2fx in CPU time\n", "",
                p.value("cpu_s_per_caption", 0.0), p.value("encode_cpu_s", 0.0), p.value("decode_cpu_s", 0.0),
                p.value("lumen_cpu_speedup", 0.0));
  }
  if (r.contains("prefill_s"))
    std::printf("  prefill of %lld prompt tokens %.3f s (inside decode); cached steps %.2f tokens/s\n",
                static_cast<long long>(r["prompt_tokens"].get<int64_t>()), r["prefill_s"].get<double>(),
                r.value("decode_step_tokens_per_s", 0.0));
  std::printf("  peak RSS %.2f GiB\n", r["peak_rss_gib"].get<double>());
  return 0;
}

nlohmann::json run_torch_peer(const CaptionBenchArgs& a, const std::string& dir) {
  const std::string script = std::string(LUMEN_SOURCE_DIR) + "/bench/peers/blip_caption_torch.py";
  LUMEN_CHECK(exists(script), script, ": peer script missing");
  const std::string cmd = "/usr/bin/python3 '" + script + "' --model '" + dir + "' --bench --threads " +
                          std::to_string(num_threads()) + " --images " + std::to_string(a.images) + " --warmup " +
                          std::to_string(a.warmup) + " --max-new-tokens " + std::to_string(a.max_new_tokens);
  std::fprintf(stderr, "bench: running peer: %s\n", cmd.c_str());
  FILE* p = ::popen(cmd.c_str(), "r");
  LUMEN_CHECK(p, "cannot run ", script);
  nlohmann::json result = {{"peer", "pytorch"}, {"error", "the peer printed no result"}};
  char line[1 << 16];
  while (std::fgets(line, sizeof line, p)) {
    try {
      auto j = nlohmann::json::parse(line);
      if (j.is_object() && (j.contains("captions_per_s") || j.contains("error"))) result = j;
    } catch (const nlohmann::json::exception&) {
      std::fputs(line, stderr);  // peer chatter
    }
  }
  const int rc = ::pclose(p);
  if (rc != 0) std::fprintf(stderr, "bench: peer exited with %d\n", rc);
  return result;
}

int run_blip(const CaptionBenchArgs& a) {
  LUMEN_CHECK(a.random_weights != !a.model.empty(), "give either --random-weights or --model DIR");
  std::string dir = a.model;
  if (a.random_weights) {
    dir = a.cache_dir + "/blip-" + a.arch + "-seed0";
    if (!exists(dir + "/model.safetensors")) {
      std::fprintf(stderr, "bench: writing random-weight BLIP %s to %s (once)...\n", a.arch.c_str(), dir.c_str());
      mkdirs(a.cache_dir);
      MakeTinyOptions o;
      o.out_dir = dir;
      o.arch = a.arch;
      o.seed = 0;
      find_family("blip")->make_tiny(o);
    }
  }
  const std::string quant = a.quant.empty() ? "f32" : a.quant;
  LoadOptions lo;
  LUMEN_CHECK(linear_format_from_name(quant, &lo.linear), "--quant '", quant, "' (f32, f16, bf16, q8_0, stored)");
  auto t0 = bench_clock::now();
  auto model = load_model(dir, lo);
  const double load_s = seconds_since(t0);
  const auto* blip = dynamic_cast<const BlipModel*>(model.get());
  LUMEN_CHECK(blip && blip->can_caption(), dir, ": not a BLIP captioning checkpoint (BlipForConditionalGeneration)");
  BlipDecodeOptions o;
  o.search.num_beams = a.beams;
  o.search.max_new_tokens = a.max_new_tokens;
  o.stop_at_eos = false;
  const std::vector<int64_t> prompt{blip->cfg.bos_id};  // generate() without text: [DEC]
  const int64_t S = blip->cfg.vision.image_size;
  nlohmann::ordered_json r = {{"peer", "lumen"}, {"arch", a.random_weights ? a.arch : "checkpoint"},
                              {"quant", quant}, {"threads", num_threads()}, {"images", a.images},
                              {"new_tokens", a.max_new_tokens}, {"beams", a.beams}, {"image_size", S},
                              {"load_s", load_s}};
  r["cpu"] = ops::cpu_path_name(ops::cpu_path());  // which GEMM micro-kernels ran
  time_captions(
      a, S, [&](const Tensor& px) { return blip->image_embeds(px); },
      [&](const Tensor& img) { return blip->caption_image(img, prompt, o); }, r);
  r["peak_rss_gib"] = peak_rss_gib();
  r["model"] = dir;
  nlohmann::json peers = nlohmann::json::array();
  if (a.peers) {
    if (a.beams != 1) {
      peers.push_back({{"peer", "pytorch"}, {"error", "the PyTorch peer decodes greedily only (--beams 1)"}});
    } else {
      nlohmann::json j = run_torch_peer(a, dir);
      if (j.contains("captions_per_s")) {
        j["lumen_speedup"] = r["captions_per_s"].get<double>() / j["captions_per_s"].get<double>();
        if (j.contains("cpu_s_per_caption"))
          j["lumen_cpu_speedup"] = j["cpu_s_per_caption"].get<double>() / r["cpu_s_per_caption"].get<double>();
        if (j.contains("first_caption_ids"))
          j["same_ids"] = j["first_caption_ids"].get<std::vector<int64_t>>() ==
                          r["first_caption_ids"].get<std::vector<int64_t>>();
      }
      peers.push_back(j);
    }
  }
  r["peers"] = peers;
  return print(a, r);
}

int run_blip2(const CaptionBenchArgs& a) {
  LUMEN_CHECK(!a.peers, "bench blip2 has no peer yet (--peers is for bench blip)");
  LUMEN_CHECK(a.random_weights != !a.model.empty(), "give either --random-weights or --model DIR");
  const std::string quant = a.quant.empty() ? "f16" : a.quant;
  std::unique_ptr<Model> loaded;
  Blip2Model built;
  const Blip2Model* m = nullptr;
  int64_t bos = 2;
  auto t0 = bench_clock::now();
  double weight_bytes = 0;
  if (a.random_weights) {
    WeightFormat format;
    LUMEN_CHECK(weight_format_from_name(quant, &format), "--quant '", quant, "' (f32, f16, bf16, q8_0)");
    nlohmann::json cfg = blip2_opt_preset(a.arch);
    built.cfg = Blip2Config::from_hf(cfg, a.arch + " preset");
    std::fprintf(stderr, "bench blip2: building random %s weights (%s)...\n", a.arch.c_str(), quant.c_str());
    // Every optional tensor present: qkv.bias (transformers 5 layout) and an untied lm_head.
    RandomWeightsVisitor weights(format, [](const std::string&) { return true; });
    built.visit(weights);
    weight_bytes = static_cast<double>(weights.linear_bytes());
    m = &built;
  } else {
    LoadOptions lo;
    LUMEN_CHECK(linear_format_from_name(quant, &lo.linear), "--quant '", quant, "' (f32, f16, bf16, q8_0, stored)");
    loaded = load_model(a.model, lo);
    m = dynamic_cast<const Blip2Model*>(loaded.get());
    LUMEN_CHECK(m && m->opt, a.model, ": not a BLIP-2 OPT checkpoint");
    nlohmann::json cfg = JsonView::load_file(a.model + "/config.json");
    bos = cfg["text_config"].value("bos_token_id", int64_t{2});
  }
  const double load_s = seconds_since(t0);
  BeamSearchParams g;
  g.num_beams = a.beams;
  g.max_new_tokens = a.max_new_tokens;  // no eos_ids: a fixed number of tokens
  const std::vector<int64_t> prompt = m->with_image_tokens({bos});  // the queries, then </s>
  const int64_t S = m->cfg.vision.image_size;
  nlohmann::ordered_json r = {{"peer", "lumen"}, {"arch", a.random_weights ? a.arch : "checkpoint"},
                              {"quant", quant}, {"threads", num_threads()}, {"images", a.images},
                              {"new_tokens", a.max_new_tokens}, {"beams", a.beams}, {"image_size", S},
                              {"prompt_tokens", prompt.size()}, {"load_s", load_s},
                              {"linear_weight_gib", weight_bytes / (1024.0 * 1024 * 1024)}};
  r["cpu"] = ops::cpu_path_name(ops::cpu_path());  // which GEMM micro-kernels ran
  time_captions(
      a, S, [&](const Tensor& px) { return m->image_queries(px); },
      [&](const Tensor& queries) { return m->generate(prompt, queries, g); }, r);
  // decode_s includes the prefill of the prompt (32 queries + </s>); time it alone once to give
  // the per-token rate of the cached steps that follow it.
  Tensor queries = m->image_queries(bench_pixels(S, 0));
  t0 = bench_clock::now();
  m->forward_logits(prompt, queries);
  const double prefill_s = seconds_since(t0);
  r["prefill_s"] = prefill_s;
  const double steps_s = r["decode_s"].get<double>() - prefill_s;
  if (a.max_new_tokens > 1 && steps_s > 0) r["decode_step_tokens_per_s"] = (a.max_new_tokens - 1) / steps_s;
  r["peak_rss_gib"] = peak_rss_gib();
  r["peers"] = nlohmann::json::array();
  return print(a, r);
}

}  // namespace

int run_caption_bench(const CaptionBenchArgs& a) {
  LUMEN_CHECK(a.images >= 1 && a.warmup >= 0 && a.max_new_tokens >= 1 && a.beams >= 1,
              "--images, --max-new-tokens and --beams must be at least 1, --warmup at least 0");
  if (a.what == "blip") return run_blip(a);
  LUMEN_CHECK(a.what == "blip2", "caption benchmarks: blip or blip2, not '", a.what, "'");
  return run_blip2(a);
}

}  // namespace lumen::cli

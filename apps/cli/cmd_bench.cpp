// lumen bench clip: image-encoding throughput of a CLIP architecture on random weights, with
// the same checkpoint run side by side in ONNX Runtime and PyTorch (bench/peers/) for ratios.
// A benchmark, not a test: it never runs in ctest.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/cli/bench_caption.h"
#include "apps/cli/bench_llava.h"
#include "apps/cli/bench_weights.h"
#include "apps/cli/commands.h"
#include "blocks/vit.h"
#include "core/threads.h"
#include "families/family.h"
#include "formats/json_config.h"
#include "kernels/ops.h"

namespace lumen::cli {
namespace {

struct BenchArgs {
  std::string what;
  std::string arch = "vit-b-32";
  bool arch_given = false;
  std::string quant = "f16";
  bool quant_given = false;
  int64_t text_tokens = 64;
  int decode_tokens = 16;
  int beams = 1, max_new_tokens = 20, images = 3;  // blip, blip2
  bool random_weights = false;
  std::string model;
  int batch = 1;
  int iters = 0;  // 0 = auto (about 10 s of work, at least 3)
  int warmup = 1;
  bool peers = false;
  std::string cache_dir;
  CommonFlags common;
};

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// FLOPs of one image through the CLIP vision tower + projection (multiply-add = 2).
double vision_flops(const VitConfig& c, int64_t projection_dim) {
  const double D = static_cast<double>(c.encoder.dim), M = static_cast<double>(c.encoder.mlp_dim);
  const double T = static_cast<double>(c.num_positions()), N = static_cast<double>(c.num_patches());
  const double K = static_cast<double>(c.channels * c.patch_size * c.patch_size);
  double per_layer = 2 * T * D * D * 4      // q, k, v, out projections
                     + 2 * T * T * D * 2    // QK^T and PV
                     + 2 * T * D * M * 2;   // fc1, fc2
  return 2 * N * K * D + static_cast<double>(c.encoder.layers) * per_layer + 2 * D * static_cast<double>(projection_dim);
}

std::string default_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::string base = xdg && *xdg ? xdg : (home && *home ? std::string(home) + "/.cache" : "/tmp");
  return base + "/lumen/bench";
}

void mkdirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i)
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0755);
}

int run(const BenchArgs& a) {
  apply_common_flags(a.common);
  if (a.what == "llava") {
    LlavaBenchArgs l;
    l.arch = a.arch_given ? a.arch : "llava-1.5-7b";
    l.quant = a.quant;
    l.text_tokens = a.text_tokens;
    l.decode_tokens = a.decode_tokens;
    l.json = a.common.json;
    LUMEN_CHECK(a.model.empty(), "bench llava builds its own random weights (--random-weights); --model is for clip");
    return run_llava_bench(l);
  }
  if (a.what == "blip" || a.what == "blip2") {
    CaptionBenchArgs c;
    c.what = a.what;
    c.arch = a.arch_given ? a.arch : (a.what == "blip" ? "blip-base" : "blip2-opt-2.7b");
    c.model = a.model;
    c.random_weights = a.random_weights;
    c.quant = a.quant_given ? a.quant : "";
    c.beams = a.beams;
    c.max_new_tokens = a.max_new_tokens;
    c.images = a.images;
    c.warmup = a.warmup;
    c.peers = a.peers;
    c.json = a.common.json;
    c.cache_dir = a.cache_dir.empty() ? default_cache_dir() : a.cache_dir;
    return run_caption_bench(c);
  }
  LUMEN_CHECK(a.what == "clip", "lumen bench knows 'clip' (image encoding), 'llava' (answering), 'blip' and 'blip2' "
              "(captioning), not '", a.what, "'");
  LUMEN_CHECK(a.random_weights != !a.model.empty(), "give either --random-weights or --model DIR");
  LUMEN_CHECK(a.batch >= 1, "--batch must be at least 1");
  std::string dir = a.model;
  if (a.random_weights) {
    std::string cache = a.cache_dir.empty() ? default_cache_dir() : a.cache_dir;
    dir = cache + "/clip-" + a.arch + "-seed0";
    if (!exists(dir + "/model.safetensors")) {
      std::fprintf(stderr, "bench: writing random-weight CLIP %s to %s (once)...\n", a.arch.c_str(), dir.c_str());
      mkdirs(cache);
      MakeTinyOptions o;
      o.out_dir = dir;
      o.arch = a.arch;
      o.seed = 0;
      find_family("clip")->make_tiny(o);
    }
  }
  nlohmann::json cfg_json = JsonView::load_file(dir + "/config.json");
  JsonView cfg(&cfg_json, dir + "/config.json");
  VitConfig vc = VitConfig::from_hf(cfg.child("vision_config"));
  const int64_t proj = cfg.get_int("projection_dim", 512);
  auto model = load_model(dir);
  auto* de = dynamic_cast<DualEncoder*>(model.get());
  LUMEN_CHECK(de, dir, ": not a dual encoder");

  const int64_t S = vc.image_size;
  Tensor px = Tensor::zeros({a.batch, 3, S, S});
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < px.numel(); ++i) px.data<float>()[i] = nd(rng);

  for (int i = 0; i < a.warmup; ++i) de->image_embeds(px);
  int iters = a.iters;
  auto t0 = std::chrono::steady_clock::now();
  de->image_embeds(px);
  double first = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (iters <= 0) iters = std::max(3, static_cast<int>(10.0 / std::max(first, 1e-3)));
  std::vector<double> times;
  const double cpu0 = cpu_seconds();
  for (int i = 0; i < iters; ++i) {
    auto s = std::chrono::steady_clock::now();
    de->image_embeds(px);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  // CPU time of all threads per image, as the peers report it: what other load inflates least.
  const double cpu_ms_per_image = (cpu_seconds() - cpu0) * 1000.0 / (static_cast<double>(iters) * a.batch);
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double ips = a.batch / median;
  const double gflops = vision_flops(vc, proj) * a.batch / median / 1e9;

  nlohmann::json result = {{"peer", "lumen"}, {"arch", a.arch}, {"batch", a.batch}, {"threads", num_threads()},
                           {"cpu", ops::cpu_path_name(ops::cpu_path())},
                           {"cpu_ms_per_image", cpu_ms_per_image},
                           {"images_per_s", ips}, {"ms_per_image", 1000.0 / ips}, {"gflops", gflops},
                           {"iters", iters}, {"model", dir}};
  nlohmann::json peers = nlohmann::json::array();
  if (a.peers) {
    std::string script = std::string(LUMEN_SOURCE_DIR) + "/bench/peers/run_clip_peers.sh";
    LUMEN_CHECK(exists(script), script, ": peer script missing");
    std::string cmd = "bash '" + script + "' '" + dir + "' " + std::to_string(a.batch) + " " +
                      std::to_string(num_threads());
    std::fprintf(stderr, "bench: running peers: %s\n", cmd.c_str());
    FILE* p = ::popen(cmd.c_str(), "r");
    LUMEN_CHECK(p, "cannot run ", script);
    char line[4096];
    while (std::fgets(line, sizeof line, p)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.is_object() && j.contains("images_per_s")) peers.push_back(j);
      } catch (const nlohmann::json::exception&) {
        std::fputs(line, stderr);  // peer chatter
      }
    }
    int rc = ::pclose(p);
    if (rc != 0) std::fprintf(stderr, "bench: peer script exited with %d\n", rc);
    for (auto& j : peers) j["lumen_speedup"] = ips / j["images_per_s"].get<double>();
  }
  result["peers"] = peers;
  if (a.common.json) {
    std::printf("%s\n", result.dump(2).c_str());
    return 0;
  }
  std::printf("clip %s  batch %d  threads %d  cpu %s  (%d iters, median)\n", a.arch.c_str(), a.batch, num_threads(),
              ops::cpu_path_name(ops::cpu_path()), iters);
  std::printf("  %-12s %9.2f images/s  %9.1f ms/image  %7.1f GFLOP/s  %9.1f CPU ms/image\n", "lumen", ips,
              1000.0 / ips, gflops, cpu_ms_per_image);
  for (const auto& j : peers)
    std::printf("  %-12s %9.2f images/s  %9.1f ms/image  lumen is %.2fx\n", j.value("peer", "?").c_str(),
                j["images_per_s"].get<double>(), 1000.0 / j["images_per_s"].get<double>(),
                j["lumen_speedup"].get<double>());
  return 0;
}

Register reg({"bench", "Benchmark CLIP image encoding, a LLaVA answer, BLIP / BLIP-2 captioning (with peers)",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<BenchArgs>();
                cmd->add_option("what", a->what, "What to benchmark: clip, llava, blip, blip2")->required();
                cmd->add_option("--arch", a->arch,
                                "Architecture: clip vit-b-32 (default), vit-b-16, vit-l-14, vit-l-14-336; llava "
                                "llava-1.5-7b (default), llava-v1.6-mistral-7b; blip blip-base; blip2 blip2-opt-2.7b")
                    ->each([a](const std::string&) { a->arch_given = true; });
                cmd->add_option("--quant", a->quant,
                                "llava, blip2: linear weight format f16 (default), q8_0, bf16, f32; "
                                "blip: f32 (default)")
                    ->each([a](const std::string&) { a->quant_given = true; });
                cmd->add_option("--beams", a->beams, "blip, blip2: beam width (1 = greedy)")->capture_default_str();
                cmd->add_option("--max-new-tokens", a->max_new_tokens,
                                "blip, blip2: tokens per caption (EOS does not stop it)")
                    ->capture_default_str();
                cmd->add_option("--images", a->images, "blip, blip2: timed captions")->capture_default_str();
                cmd->add_option("--text-tokens", a->text_tokens, "llava: text tokens after the image in the prefill")
                    ->capture_default_str();
                cmd->add_option("--decode-tokens", a->decode_tokens, "llava: tokens to decode (median step reported)")
                    ->capture_default_str();
                cmd->add_flag("--random-weights", a->random_weights, "Use a random-weight checkpoint (written once, cached)");
                cmd->add_option("--model", a->model, "Benchmark this checkpoint directory instead");
                cmd->add_option("--batch,-b", a->batch, "Images per forward")->capture_default_str();
                cmd->add_option("--iters", a->iters, "Timed iterations (default: about 10 s worth)");
                cmd->add_option("--warmup", a->warmup, "Untimed iterations first")->capture_default_str();
                cmd->add_flag("--peers", a->peers,
                              "clip: also run ONNX Runtime and PyTorch, blip: PyTorch, on the same weights");
                cmd->add_option("--cache-dir", a->cache_dir, "Where random checkpoints are kept (default ~/.cache/lumen/bench)");
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "Examples:\n"
                    "  lumen bench clip --arch vit-b-32 --random-weights --batch 8 --threads 2 --peers\n"
                    "  lumen bench llava --arch llava-1.5-7b --random-weights --quant q8_0\n"
                    "  lumen bench blip --arch blip-base --random-weights --threads 2 --peers\n"
                    "  lumen bench blip2 --arch blip2-opt-2.7b --random-weights --quant f16 --images 1\n"
                    "bench llava builds random weights in memory (no checkpoint written) and reports image encode,\n"
                    "prefill of 576 image + 64 text tokens, decode tokens/s against the measured read bandwidth,\n"
                    "and peak RSS. bench blip / blip2 time captions/s (image encode and decode apart) with a fixed\n"
                    "number of new tokens; see bench/README.md.");
                return [a] { return run(*a); };
              }});

}  // namespace
}  // namespace lumen::cli

// `lumen bench blip` / `lumen bench blip2`: see bench_caption.cpp.
#pragma once
#include <string>

namespace lumen::cli {

struct CaptionBenchArgs {
  std::string what;  // "blip" or "blip2"
  std::string arch;  // blip-base / blip2-opt-2.7b
  std::string model;  // a checkpoint directory instead of random weights
  bool random_weights = false;
  std::string quant;  // linear weight format; empty: f32 for blip (as the peer), f16 for blip2
  int beams = 1;
  int max_new_tokens = 20;
  int images = 3;
  int warmup = 1;
  bool peers = false;
  bool json = false;
  std::string cache_dir;  // where `bench blip --random-weights` keeps its checkpoint
};

int run_caption_bench(const CaptionBenchArgs& a);

}  // namespace lumen::cli

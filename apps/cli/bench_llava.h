// `lumen bench llava`: see bench_llava.cpp.
#pragma once
#include <string>

namespace lumen::cli {

struct LlavaBenchArgs {
  std::string arch = "llava-1.5-7b";
  std::string quant = "f16";
  int64_t text_tokens = 64;
  int decode_tokens = 16;
  bool json = false;
};

int run_llava_bench(const LlavaBenchArgs& a);

}  // namespace lumen::cli

// Tokenizer load time and encode throughput, for comparison with the JS reference
// (bench/peers/tokenizer_node.mjs runs tokenizers.js on the same files and the same text).
// Not a test.
//
//   tokenizer_bench [--dir ../shared/tokenizers] [--names qwen,llama3,llama2,bert] [--mb 4]
//                   [--write-text FILE] [--repeat 3]
//
// The text is generated deterministically (mixed English prose, code, numbers, Chinese,
// Russian, Arabic, Hindi, emoji; lines of 100..2000 bytes) so every run and the node peer see
// the same bytes; --write-text saves it for the peer. Each line is encoded on its own
// (no special tokens). Prints one line per tokenizer: load ms (best of --repeat), MB/s (best
// of --repeat passes over the text), token count and an id checksum (to check that the
// peer produced the same ids).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/tokenizer.h"

namespace {

using namespace lumen;  // NOLINT: a standalone program
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Rng {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  size_t below(size_t n) { return next() % n; }
};

void append_cp(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Deterministic mixed-language text, `bytes` long (roughly), lines separated by '\n'.
std::string make_text(size_t bytes) {
  static const char* kWords[] = {"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was",
                                 "with", "be", "by", "on", "not", "he", "I", "this", "are", "or", "his", "from",
                                 "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one",
                                 "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will",
                                 "would", "who", "so", "no", "image", "model", "language", "vision", "encoder",
                                 "tokenizer", "photograph", "describe", "multimodal", "transformer", "attention",
                                 "don't", "it's", "we're", "Paris", "London", "GPT-4", "LLaMA", "2024", "3.14"};
  static const char* kRu[] = {"и", "в", "не", "на", "что", "язык", "модель", "изображение", "кошка", "собака",
                              "фотография", "описание", "большой", "маленький"};
  static const char* kAr[] = {"في", "من", "على", "صورة", "نموذج", "لغة", "قطة", "كلب"};
  static const char* kHi[] = {"और", "में", "है", "चित्र", "भाषा", "मॉडल", "बिल्ली"};
  static const char* kCode[] = {"for (int i = 0; i < n; ++i) {", "  x[i] = y[i] * 2;", "}", "def f(x):",
                                "    return x ** 2", "import numpy as np", "const t = await fetch(url);",
                                "if err != nil { return err }", "<div class=\"row\">", "SELECT * FROM t;"};
  static const char* kEmoji[] = {"😀", "👍🏽", "🦙", "🇫🇷", "❤️", "👨‍👩‍👧"};
  Rng rng{42};
  std::string out;
  out.reserve(bytes + 4096);
  while (out.size() < bytes) {
    const size_t line_len = 100 + rng.below(1900);
    const size_t start = out.size();
    const size_t kind = rng.below(10);
    while (out.size() - start < line_len) {
      switch (kind) {
        case 0:  // Chinese
          for (size_t k = 2 + rng.below(10); k > 0; --k) append_cp(out, 0x4E00 + static_cast<uint32_t>(rng.below(3000)));
          out += rng.below(4) ? "，" : "。";
          break;
        case 1:
          out += kRu[rng.below(std::size(kRu))];
          out += ' ';
          break;
        case 2:
          out += kCode[rng.below(std::size(kCode))];
          out += rng.below(2) ? "\n" : " ";
          break;
        case 3:
          out += rng.below(2) ? kAr[rng.below(std::size(kAr))] : kHi[rng.below(std::size(kHi))];
          out += ' ';
          break;
        default:  // English prose with some numbers and emoji
          out += kWords[rng.below(std::size(kWords))];
          if (rng.below(12) == 0) out += rng.below(2) ? "," : ".";
          if (rng.below(40) == 0) out += " " + std::to_string(rng.next() % 100000);
          if (rng.below(80) == 0) out += std::string(" ") + kEmoji[rng.below(std::size(kEmoji))];
          out += ' ';
      }
    }
    out += '\n';
  }
  return out;
}

std::vector<std::string_view> split_lines(const std::string& text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.emplace_back(text.data() + pos, end - pos);
    pos = end + 1;
  }
  return lines;
}

int run(int argc, char** argv) {
  std::string dir = std::string(LUMEN_SOURCE_DIR) + "/../shared/tokenizers";
  std::string names = "qwen,llama3,llama2,bert";
  std::string write_text;
  double mb = 4;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      LUMEN_CHECK(i + 1 < argc, a, ": needs a value");
      return argv[++i];
    };
    if (a == "--dir") dir = value();
    else if (a == "--names") names = value();
    else if (a == "--mb") mb = std::atof(value().c_str());
    else if (a == "--write-text") write_text = value();
    else if (a == "--repeat") repeat = std::max(1, std::atoi(value().c_str()));
    else fail("unknown argument ", a);
  }
  const std::string text = make_text(static_cast<size_t>(mb * 1e6));
  if (!write_text.empty()) {
    std::ofstream(write_text, std::ios::binary).write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  const std::vector<std::string_view> lines = split_lines(text);
  std::printf("text: %.2f MB, %zu lines\n", static_cast<double>(text.size()) / 1e6, lines.size());
  size_t pos = 0;
  while (pos <= names.size()) {
    size_t end = names.find(',', pos);
    if (end == std::string::npos) end = names.size();
    const std::string name = names.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty()) continue;
    std::string path = dir + "/" + name + "/tokenizer.json";
    const bool is_dir = name == "bert";  // vocab.txt only
    double load_ms = 1e30;
    std::optional<Tokenizer> tok;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = Clock::now();
      tok.emplace(is_dir ? Tokenizer::from_dir(dir + "/" + name) : Tokenizer::from_file(path));
      load_ms = std::min(load_ms, ms_since(t0));
    }
    double best_s = 1e30;
    size_t tokens = 0;
    uint64_t checksum = 0;
    for (int r = 0; r < repeat; ++r) {
      tokens = 0;
      checksum = 0;
      const auto t0 = Clock::now();
      for (std::string_view line : lines) {
        const Encoding e = tok->encode(line, false);
        tokens += e.ids.size();
        for (int64_t id : e.ids) checksum = checksum * 31 + static_cast<uint64_t>(id);
      }
      best_s = std::min(best_s, ms_since(t0) / 1e3);
    }
    std::printf("%-8s vocab %7zu  load %7.1f ms  encode %6.2f MB/s  %zu tokens  checksum %016llx\n", name.c_str(),
                tok->vocab_size(), load_ms, static_cast<double>(text.size()) / 1e6 / best_s, tokens,
                static_cast<unsigned long long>(checksum));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}

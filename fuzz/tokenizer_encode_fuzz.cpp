// libFuzzer target: encoding arbitrary bytes (invalid UTF-8 included) and decoding arbitrary
// ids with real tokenizers (the test-data copies of CLIP, BERT, GPT-2, LLaMA-2/3, Qwen and the
// SentencePiece Unigram model with its Precompiled charsmap) and two synthetic ones that cover the remaining components (Unigram, WordLevel, Metaspace,
// NFKC, Digits, Punctuation, ...). The first input byte picks the tokenizer. Nothing may
// crash, hang, or throw anything but lumen::Error.
#include <zlib.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/tokenizer.h"

namespace {

using nlohmann::json;

std::string gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return "";
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

json unigram_tokenizer() {
  json vocab = json::array({json::array({"<unk>", 0.0}), json::array({"<s>", 0.0}), json::array({"</s>", 0.0})});
  const char* pieces[] = {"▁", "▁the", "▁a", "t", "h", "e", "a", "▁he", "llo", "l", "o", "1", "2", "!", "é", "你", "<0x41>"};
  double score = -1.0;
  for (const char* p : pieces) vocab.push_back(json::array({p, score -= 0.5}));
  return {
      {"version", "1.0"},
      {"added_tokens", json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}, {"rstrip", true}}})},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFKC"}}, {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}})}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                       {{"type", "Punctuation"}, {"behavior", "Contiguous"}},
                                       {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}}})}}},
      {"model", {{"type", "Unigram"}, {"unk_id", 0}, {"byte_fallback", true}, {"vocab", vocab}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
        {"special_tokens", {{"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}}},
      {"decoder", {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}}}};
}

json wordlevel_tokenizer() {
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", 0}, {"content", "[UNK]"}, {"special", true}, {"single_word", true}, {"lstrip", true}}})},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFD"}}, {{"type", "StripAccents"}}, {{"type", "Nmt"}}, {{"type", "Lowercase"}}})}}},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Whitespace"}}, {{"type", "CharDelimiterSplit"}, {"delimiter", "-"}}, {{"type", "FixedLength"}, {"length", 3}}})}}},
          {"model", {{"type", "WordLevel"}, {"unk_token", "[UNK]"}, {"vocab", {{"[UNK]", 0}, {"hel", 1}, {"lo", 2}, {"wor", 3}, {"ld", 4}}}}},
          {"post_processor", {{"type", "BertProcessing"}, {"sep", {"[UNK]", 0}}, {"cls", {"[UNK]", 0}}}},
          {"decoder", {{"type", "Sequence"}, {"decoders", json::array({{{"type", "CTC"}}, {{"type", "BPEDecoder"}}, {{"type", "Strip"}, {"content", " "}, {"start", 2}, {"stop", 9}}})}}}};
}

std::vector<std::unique_ptr<lumen::Tokenizer>> load_all() {
  std::vector<std::unique_ptr<lumen::Tokenizer>> out;
  const std::string data = std::string(LUMEN_SOURCE_DIR) + "/tests/data/tokenizers/";
  for (const char* file : {"clip/hf_saved/tokenizer.json.gz", "bert/hf_saved/tokenizer.json.gz", "gpt2/hf_saved/tokenizer.json.gz",
                           "llama2/tokenizer.json.gz", "llama3/tokenizer.json.gz", "qwen/tokenizer.json.gz",
                           "sentencepiece/tokenizer.json.gz"}) {
    const std::string text = gunzip(data + file);
    if (text.empty()) continue;
    out.push_back(std::make_unique<lumen::Tokenizer>(lumen::Tokenizer::from_json_string(text, file)));
  }
  out.push_back(std::make_unique<lumen::Tokenizer>(lumen::Tokenizer::from_json_string(unigram_tokenizer().dump(), "unigram")));
  out.push_back(std::make_unique<lumen::Tokenizer>(lumen::Tokenizer::from_json_string(wordlevel_tokenizer().dump(), "wordlevel")));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::unique_ptr<lumen::Tokenizer>> tokenizers = load_all();
  if (size == 0) return 0;
  const lumen::Tokenizer& tok = *tokenizers[data[0] % tokenizers.size()];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const lumen::Encoding e = tok.encode(text, (data[0] & 0x80) != 0);
    (void)tok.decode(e.ids, false);
    (void)tok.decode(e.ids, true);
    (void)tok.encode_batch({text, "x"}, true, 8, 0, true);
    std::vector<int64_t> ids;
    for (size_t i = 1; i + 1 < size && ids.size() < 64; i += 2) ids.push_back((int64_t{data[i]} << 8 | data[i + 1]) - 1000);
    (void)tok.decode(ids, (data[0] & 0x40) != 0);
  } catch (const lumen::Error&) {
  }
  return 0;
}

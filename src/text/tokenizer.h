// Text tokenizers that reproduce Hugging Face exactly: a tokenizer.json pipeline (added
// tokens -> normalizer -> pre-tokenizer -> model -> post-processor; decoder for the way
// back), as the `tokenizers` library runs it, plus the few behaviours transformers adds on
// top (CLIPTokenizer's decode, clean_up_tokenization_spaces, special-token names from
// tokenizer_config.json).
//
//   Tokenizer tok = Tokenizer::from_dir("clip-vit-base-patch32");
//   Encoding e = tok.encode("a photo of a cat");          // e.ids = {49406, 320, ...}
//   BatchEncoding b = tok.encode_batch({"a cat", "a dog"}, true, 77);  // ids/mask [2, 77]
//   std::string s = tok.decode(e.ids, /*skip_special_tokens=*/true);
//
// Thread-safe: a Tokenizer is immutable after loading; copies share the loaded data.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/encoding.h"

namespace lumen {

using text::Encoding;

// Ids and attention mask of a padded batch, row-major [batch, length].
struct BatchEncoding {
  int64_t batch = 0;
  int64_t length = 0;
  std::vector<int64_t> ids;
  std::vector<int64_t> attention_mask;
};

// How a pair is cut down to a length limit (tokenizers' TruncationStrategy).
enum class TruncationStrategy {
  kLongestFirst,  // both sequences shortened, the longer first (the default)
  kOnlyFirst,     // only sequence A; an error if it is too short to fit the limit
  kOnlySecond,    // only sequence B; likewise
};

class Tokenizer {
 public:
  // A tokenizer.json, with the semantics of tokenizers.Tokenizer.from_file; or a
  // SentencePiece `*.model` file, with the sentencepiece library's semantics (encode adds
  // the model's bos when add_special_tokens, never eos; decode as DecodeIds).
  static Tokenizer from_file(const std::string& path);
  static Tokenizer from_json_string(std::string_view json_text, const std::string& label = "tokenizer.json");
  // A model directory, as transformers' AutoTokenizer reads it: tokenizer.json if present,
  // else vocab.json + merges.txt (CLIP or GPT-2 byte-level BPE), else vocab.txt (BERT
  // WordPiece), else tokenizer.model / spiece.model (SentencePiece: bos added unless the
  // class is T5Tokenizer, which adds eos; add_bos_token / add_eos_token override);
  // tokenizer_config.json / special_tokens_map.json give the tokenizer class, special
  // tokens and decoding options.
  static Tokenizer from_dir(const std::string& dir);

  // `text` may be any bytes: invalid UTF-8 is replaced by U+FFFD first (as Python's
  // errors="replace" would). Offsets are in characters of that text.
  Encoding encode(std::string_view text, bool add_special_tokens = true) const;
  // Encodes with truncation to `max_length` tokens (special tokens included; 0 = none).
  Encoding encode(std::string_view text, bool add_special_tokens, size_t max_length) const;
  // Encodes a pair of texts (sentence A, sentence B) as the reference does: each sequence
  // on its own, truncated together to `max_length` tokens (specials included; 0 = none,
  // unless tokenizer.json sets a truncation) by `strategy`, then laid out by the
  // post-processor's pair form (TemplateProcessing's "pair" template, [CLS] A [SEP] B [SEP],
  // <s> A </s></s> B </s>, ...). Type ids are 0 for A and 1 for B unless the processor sets
  // them. A SentencePiece .model lays a pair out as transformers' LlamaTokenizer / T5Tokenizer
  // do: [bos] A [eos] [bos] B [eos], B's part with type id 1.
  // (A separate name: encode("a", "b") would silently pick encode(text, bool).)
  Encoding encode_pair(std::string_view text, std::string_view pair, bool add_special_tokens = true,
                       size_t max_length = 0, TruncationStrategy strategy = TruncationStrategy::kLongestFirst) const;
  // Pads every row to `pad_to` (0: to the longest row), truncating longer ones when
  // `truncate` (else they make the batch longer). Padding uses `pad_id`, else the
  // tokenizer's pad token (error if it has none); mask is 1 for tokens, 0 for padding.
  BatchEncoding encode_batch(const std::vector<std::string>& texts, bool add_special_tokens = true, size_t pad_to = 0,
                             std::optional<int64_t> pad_id = std::nullopt, bool truncate = true) const;

  // Unknown or negative ids are skipped, as the reference does.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  std::optional<int64_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int64_t id) const;
  // Model vocabulary plus added tokens (tokenizers' get_vocab_size(true)).
  size_t vocab_size() const;

  std::optional<int64_t> bos_id() const;
  std::optional<int64_t> eos_id() const;
  std::optional<int64_t> pad_id() const;
  std::optional<int64_t> unk_id() const;
  // The tokenizer_class named in tokenizer_config.json (or the one inferred), may be empty.
  const std::string& tokenizer_class() const;
  // tokenizer_config.json's model_max_length when it is a real limit (not 1e30), else 0.
  size_t model_max_length() const;

  struct Impl;

 private:
  Encoding encode_impl(std::string_view text, const std::string_view* pair, bool add_special_tokens, size_t max_length,
                       TruncationStrategy strategy) const;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace lumen

// The five stages of a HF tokenizer pipeline, one interface each; the concrete classes (one
// per tokenizer.json "type") live in the matching .cpp and are built by from_json.
//
//   text -> [added tokens split off] -> Normalizer -> PreTokenizer -> Model -> PostProcessor
//   ids  -> Model::id_to_token -> Decoder -> text
//
// Reference: huggingface/tokenizers, tokenizers/src/{normalizers,pre_tokenizers,models,
// processors,decoders}.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/json_fields.h"
#include "text/normalized_string.h"
#include "text/vocab.h"

namespace lumen::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(NormalizedString& s) const = 0;
  // `where` names the JSON object in errors, e.g. "tokenizer.json: normalizer".
  static std::unique_ptr<Normalizer> from_json(const json& j, const std::string& where);
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(PreTokenizedString& s) const = 0;
  static std::unique_ptr<PreTokenizer> from_json(const json& j, const std::string& where);
};

// BPE merges as one text buffer: the left and right token of each merge back to back.
class MergeList {
 public:
  void add(std::string_view left, std::string_view right);
  size_t size() const { return spans_.size(); }
  bool empty() const { return spans_.empty(); }
  std::string_view left(size_t i) const { return std::string_view(text_).substr(spans_[i].offset, spans_[i].left); }
  std::string_view right(size_t i) const {
    return std::string_view(text_).substr(spans_[i].offset + spans_[i].left, spans_[i].right);
  }
  // left + right as one view (the merged token when there is no continuing-subword prefix).
  std::string_view both(size_t i) const {
    return std::string_view(text_).substr(spans_[i].offset, spans_[i].left + spans_[i].right);
  }

 private:
  struct Span {
    uint32_t offset, left, right;
  };
  std::string text_;
  std::vector<Span> spans_;
};

// Raw model data parsed straight out of the tokenizer.json text (see tokenizer_json.h):
// the big vocab and merges lists are not materialized as JSON values.
struct ModelData {
  Vocab vocab;                                                // BPE / WordPiece / WordLevel
  std::vector<std::pair<std::string, double>> unigram_vocab;  // Unigram: (piece, score)
  MergeList merges;                                           // BPE
  json rest = json::object();                                 // every other field of "model"
};

class Model {
 public:
  virtual ~Model() = default;
  // Tokens of one pre-tokenized piece; offsets are bytes within `piece`.
  virtual std::vector<Token> tokenize(std::string_view piece) const = 0;
  virtual std::optional<uint32_t> token_to_id(std::string_view token) const = 0;
  virtual std::optional<std::string> id_to_token(uint32_t id) const = 0;
  virtual size_t vocab_size() const = 0;
  static std::unique_ptr<Model> from_data(ModelData data, const std::string& where);
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Special tokens added around one sequence or a pair (used to budget truncation).
  virtual size_t added_tokens(bool pair) const = 0;
  // Finishes the encoding of one sequence, or of a pair when `pair` is given: type ids set to
  // 0 (A) and 1 (B), then process_encodings, then the parts concatenated (as the reference's
  // PostProcessor::process does).
  Encoding process(Encoding enc, Encoding* pair, bool add_special_tokens) const;
  // The processor's own step on [A] or [A, B]: offsets trimming, type ids, special tokens.
  virtual std::vector<Encoding> process_encodings(std::vector<Encoding> encs, bool add_special_tokens) const = 0;
  static std::unique_ptr<PostProcessor> from_json(const json& j, const std::string& where);
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
  std::string decode(std::vector<std::string> tokens) const;
  static std::unique_ptr<Decoder> from_json(const json& j, const std::string& where);
};

// ---- Shared byte-level helpers (GPT-2 bytes_to_unicode) ----

// The printable character standing for byte `b`.
char32_t byte_to_char(uint8_t b);
// The byte a byte-level character stands for, or -1.
int char_to_byte(char32_t c);

}  // namespace lumen::text

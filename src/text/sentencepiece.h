// SentencePiece `.model` files (a protobuf ModelProto), encoded and decoded the way the
// sentencepiece library does it: its own normalizer (precompiled charsmap with longest
// match, extra-whitespace removal, dummy prefix, U+2581 for spaces), then the Unigram
// Viterbi search or the score-driven BPE, byte fallback, runs of unknown pieces fused, and
// its decoder (unk surface, leading-space stripping, byte pieces joined into UTF-8).
//
//   auto spm = SentencePieceModel::from_file("llama-2/tokenizer.model");
//   for (const auto& p : spm->encode("Hello world")) ...   // p.id, p.piece, p.begin/end
//   std::string s = spm->decode({15043, 3186});
//
// Reference: google/sentencepiece src/{normalizer,unigram_model,bpe_model,model_interface,
// sentencepiece_processor}.cc. The protobuf is read by a small wire-format reader here; no
// protobuf library is needed.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/vocab.h"

namespace lumen::text {

// The ModelProto fields that encoding and decoding depend on (sentencepiece_model.proto).
struct SpmModelProto {
  enum class Type : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  enum class ModelType : uint8_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  struct Piece {
    std::string piece;
    float score = 0.0f;
    Type type = Type::kNormal;
  };
  struct NormalizerSpec {
    std::string name;
    std::string precompiled_charsmap;  // empty: no character mapping ("identity")
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
    bool escape_whitespaces = true;
  };

  std::vector<Piece> pieces;
  // trainer_spec
  ModelType model_type = ModelType::kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::string unk_surface = " \xE2\x81\x87 ";
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  NormalizerSpec normalizer;
  std::optional<NormalizerSpec> denormalizer;
};

// Parses a serialized ModelProto; errors name `label` and the field at fault.
SpmModelProto parse_spm_model_proto(std::string_view bytes, const std::string& label);

class SentencePieceModel {
 public:
  // One encoded piece, as SentencePieceText holds it.
  struct Piece {
    std::string piece;  // vocabulary piece; "<0xE4>" for byte fallback; a fused unknown run's normalized text
    uint32_t id = 0;
    size_t begin = 0, end = 0;  // byte range of the original input (the surface)
  };

  SentencePieceModel(SpmModelProto proto, const std::string& label);
  static std::shared_ptr<const SentencePieceModel> from_file(const std::string& path);
  static std::shared_ptr<const SentencePieceModel> from_bytes(std::string_view bytes, const std::string& label);

  // SentencePieceProcessor::Encode. Malformed UTF-8 bytes each become U+FFFD, as the library does.
  std::vector<Piece> encode(std::string_view text) const;
  // SentencePieceProcessor::Decode of ids; ids outside the vocabulary are skipped.
  std::string decode(const std::vector<int64_t>& ids) const;
  // The normalized text and, per normalized byte (plus one past the end), its original byte offset.
  std::string normalize(std::string_view text, std::vector<size_t>* norm_to_orig = nullptr) const;

  size_t size() const { return proto_.pieces.size(); }
  const std::string& id_to_piece(uint32_t id) const { return proto_.pieces[id].piece; }
  // The library's PieceToId: reserved pieces first, then normal ones; unknown -> unk id.
  uint32_t piece_to_id(std::string_view piece) const;
  std::optional<uint32_t> find_piece(std::string_view piece) const;  // no unk fallback
  SpmModelProto::Type type(uint32_t id) const { return proto_.pieces[id].type; }
  bool is_control(uint32_t id) const { return id < size() && type(id) == SpmModelProto::Type::kControl; }
  uint32_t unk_id() const { return unk_id_; }
  // The ids of the bos/eos/pad pieces when they are control pieces (the library's bos_id() etc.).
  std::optional<uint32_t> bos_id() const { return control_id(proto_.bos_piece); }
  std::optional<uint32_t> eos_id() const { return control_id(proto_.eos_piece); }
  std::optional<uint32_t> pad_id() const { return control_id(proto_.pad_piece); }
  const SpmModelProto& proto() const { return proto_; }

  // Implementation parts (defined in sentencepiece.cpp).
  class Normalizer;
  class Trie;

 private:
  using Result = std::vector<std::pair<std::string_view, uint32_t>>;
  Result encode_unigram(std::string_view normalized) const;
  Result encode_bpe(std::string_view normalized) const;
  // Length of the longest user-defined symbol that prefixes `s` (0 when none).
  size_t user_defined_prefix(std::string_view s) const;
  std::optional<uint32_t> control_id(const std::string& piece) const;

  SpmModelProto proto_;
  std::string label_;
  Vocab normal_;    // NORMAL, USER_DEFINED, UNUSED pieces
  Vocab reserved_;  // CONTROL, UNKNOWN, BYTE pieces
  uint32_t unk_id_ = 0;
  std::vector<std::string> user_defined_;  // sorted
  std::shared_ptr<const Normalizer> normalizer_, denormalizer_;
  std::shared_ptr<const Trie> trie_;  // Unigram: normal pieces
  float min_score_ = 0.0f, max_score_ = 0.0f;
};

}  // namespace lumen::text

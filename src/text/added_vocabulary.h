// Tokens matched in the text before the model runs (special tokens like <|endoftext|>, and
// user-added tokens), with HF's lstrip / rstrip / single_word / normalized options
// (reference: tokenizers/src/tokenizer/added_vocabulary.rs).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "text/components.h"

namespace lumen::text {

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  // Adds tokens in order (as the tokenizer.json loader does): a token already in the model
  // vocab keeps that id, others get the next free id after the model's.
  void add_tokens(const std::vector<AddedToken>& tokens, const Model& model, const Normalizer* normalizer);

  std::optional<uint32_t> token_to_id(std::string_view token) const;
  const AddedToken* token_of(uint32_t id) const;
  // The string decoding uses for `id`: the normalized form for normalized tokens.
  std::optional<std::string> decode_token(uint32_t id) const;
  bool is_special(std::string_view token) const { return special_.count(std::string(token)) > 0; }
  size_t size() const { return by_content_.size(); }
  // Largest id + 1 (0 when empty).
  uint32_t id_end() const { return id_end_; }

  // Splits `text` around added tokens, normalizing the other pieces with `normalizer`
  // (AddedVocabulary::extract_and_normalize).
  PreTokenizedString extract_and_normalize(const Normalizer* normalizer, std::string_view text) const;

 private:
  // A byte trie with leftmost-longest matching over a token set.
  struct Trie {
    std::vector<std::unordered_map<unsigned char, uint32_t>> next{1};
    std::vector<int64_t> value{-1};  // token id ending at a node
    void add(std::string_view s, uint32_t id);
    // Longest token starting at `pos`: its end, or 0 when none.
    size_t longest_at(std::string_view text, size_t pos, uint32_t* id) const;
    bool empty() const { return next.size() == 1; }
  };

  void split_with(PreTokenizedString& pts, const Trie& trie) const;
  std::vector<std::pair<std::optional<uint32_t>, Offsets>> find_matches(std::string_view sentence, const Trie& trie) const;
  void rebuild_tries();

  std::unordered_map<std::string, uint32_t> by_content_;
  std::unordered_map<uint32_t, AddedToken> by_id_;
  std::unordered_map<uint32_t, std::string> normalized_form_;
  std::unordered_set<std::string> special_;
  Trie trie_;             // tokens matched on the raw text (normalized = false)
  Trie normalized_trie_;  // tokens matched on normalized pieces
  uint32_t id_end_ = 0;
};

}  // namespace lumen::text

// The result of encoding one text.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lumen::text {

using Offsets = std::pair<size_t, size_t>;

// Parallel arrays, one entry per token (special tokens included when they were added).
struct Encoding {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
  std::vector<Offsets> offsets;         // character offsets into the input text
  std::vector<int64_t> type_ids;
  std::vector<int64_t> special_tokens_mask;
  std::vector<int64_t> attention_mask;
  std::vector<int64_t> word_ids;        // -1 for tokens not from a word (specials)

  size_t size() const { return ids.size(); }
  void append(const Encoding& other);
  void truncate(size_t max_len);  // keeps the first max_len tokens
};

}  // namespace lumen::text

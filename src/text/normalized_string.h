// The strings that flow through a tokenizer pipeline, with offset tracking: a
// NormalizedString keeps the original text, the normalized text, and for every normalized
// byte the original byte range it came from; a PreTokenizedString is the list of pieces
// (splits) the pre-tokenizers cut, some already turned into tokens.
//
// The semantics (and their corner cases) follow HF tokenizers' tokenizer/normalizer.rs and
// tokenizer/pre_tokenizer.rs, because offsets must match the reference exactly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/encoding.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace lumen::text {

// What happens to the delimiter when splitting on a pattern, e.g. on '-' in
// "the-final--countdown": Removed [the, final, countdown]; Isolated [the, -, final, -, -,
// countdown]; MergedWithPrevious [the-, final-, -, countdown]; MergedWithNext [the, -final,
// -, -countdown]; Contiguous [the, -, final, --, countdown].
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A piece of a string found by a pattern: byte range and whether it is a match. A list of
// them covers the whole string in order.
struct PatternSpan {
  size_t start, end;
  bool is_match;
};

std::vector<PatternSpan> find_matches(const Regex& re, std::string_view s);
std::vector<PatternSpan> find_matches(const std::function<bool(char32_t)>& pred, std::string_view s);
void invert_matches(std::vector<PatternSpan>& spans);

class NormalizedString {
 public:
  NormalizedString() = default;
  explicit NormalizedString(std::string s);

  const std::string& get() const { return normalized_; }
  const std::string& original() const { return original_; }
  size_t len() const { return normalized_.size(); }
  bool empty() const { return normalized_.empty(); }
  // This piece's range in the full original string.
  Offsets offsets_original() const { return {original_shift_, original_shift_ + original_.size()}; }

  // Range conversion between the two referentials (byte offsets); nullopt when out of range.
  std::optional<Offsets> normalized_to_original(size_t start, size_t end) const;
  std::optional<Offsets> original_to_normalized(size_t start, size_t end) const;

  // The part of this string covering normalized bytes [start, end); nullopt when not on
  // character boundaries.
  std::optional<NormalizedString> slice(size_t start, size_t end) const;

  // Replaces normalized bytes [start, end) with `dest`, updating alignments. `dest` gives
  // each new character with its change (see CharChange); `initial_offset` is the number of
  // characters removed before the first new one.
  void transform_range(size_t start, size_t end, const std::vector<CharChange>& dest, size_t initial_offset);
  // transform_range over the whole string (as addressed through the original referential).
  void transform(const std::vector<CharChange>& dest, size_t initial_offset);

  // Every byte b of the text becomes the character table[b] (ByteLevel's bytes_to_unicode):
  // the same result as transform() with the first byte of each character replacing it and
  // the others inserted, without building the change list.
  void map_bytes(const char32_t (&table)[256]);
  void normalize(NormForm form);
  void filter(const std::function<bool(char32_t)>& keep);
  void map(const std::function<char32_t(char32_t)>& fn);
  void prepend(std::string_view s);
  void append(std::string_view s);
  void lowercase();
  void uppercase();
  // Replaces every match of `re` (every matching span) by `content`.
  void replace(const Regex& re, std::string_view content) { replace(find_matches(re, normalized_), content); }
  void replace(const std::vector<PatternSpan>& spans, std::string_view content);
  void lstrip() { lrstrip(true, false); }
  void rstrip() { lrstrip(false, true); }
  void strip() { lrstrip(true, true); }

  // Splits on `spans` (from find_matches) according to `behavior`.
  std::vector<NormalizedString> split(const std::vector<PatternSpan>& spans, SplitBehavior behavior) const;

 private:
  void map_case(void (*mapping)(char32_t, std::u32string&));
  void lrstrip(bool left, bool right);

  std::string original_;
  std::string normalized_;
  std::vector<Offsets> alignments_;  // per normalized byte: original byte range
  size_t original_shift_ = 0;
};

struct Token {
  uint32_t id = 0;
  std::string value;
  Offsets offsets;  // bytes within the piece it was made from
};

class PreTokenizedString {
 public:
  struct Split {
    NormalizedString normalized;
    std::optional<std::vector<Token>> tokens;
  };

  explicit PreTokenizedString(NormalizedString n);

  // Replaces every split that has no tokens yet by the pieces `fn(index, piece)` returns;
  // empty pieces are dropped.
  void split(const std::function<std::vector<Split>(size_t, NormalizedString&&)>& fn);
  void normalize(const std::function<void(NormalizedString&)>& fn);
  void tokenize(const std::function<std::vector<Token>(const NormalizedString&)>& fn);

  const std::vector<Split>& splits() const { return splits_; }
  // Tokens with offsets mapped to characters of the original text.
  Encoding into_encoding(uint32_t type_id) const;

 private:
  std::string original_;
  std::vector<Split> splits_;
};

}  // namespace lumen::text

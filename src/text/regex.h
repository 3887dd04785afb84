// A small backtracking regex engine over code points, compatible with the Oniguruma (Ruby
// syntax) dialect that HF tokenizers uses for Split / Replace patterns: the GPT-2, LLaMA-3,
// Qwen and CLIP pre-tokenizer patterns, and general ones.
//
// Supported: literals and escapes, `.`, classes (ranges, negation, nesting, `&&`, POSIX
// brackets), \s \S \d \D \w \W \h \H, \p{..} / \P{..} (general categories, scripts, binary
// properties, via ICU), groups (capturing, (?:), (?i:), (?i), (?-i), named), alternation,
// greedy / lazy / possessive quantifiers and {n,m}, anchors ^ $ \A \z \Z \b \B \G,
// lookahead / lookbehind, atomic groups. Not supported (a lumen::Error at compile time):
// backreferences, \X, \R, conditionals, recursion.
//
// Semantics are leftmost-first (Perl/Oniguruma), matching per code point. Matching is
// bounded by a step budget, so a pathological pattern raises lumen::Error instead of hanging.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumen::text {

class Regex {
 public:
  // Compiles `pattern` (UTF-8). Errors name the pattern and the offending position.
  static Regex compile(std::string_view pattern);
  // A pattern matching `literal` exactly (HF's SplitPattern::String / ReplacePattern::String).
  static Regex literal(std::string_view literal);

  Regex() = default;  // matches nothing until assigned

  // Leftmost match in `text` (code points) starting at or after `from`: [*start, *end).
  bool search(std::u32string_view text, size_t from, size_t* start, size_t* end) const;

  // All matches in UTF-8 `text` as byte ranges, iterating like the onig crate's find_iter:
  // after an empty match the search resumes one character later, and an empty match found
  // after a non-empty one is skipped once.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  const std::string& pattern() const;

  struct Program;

 private:
  std::shared_ptr<const Program> prog_;
};

}  // namespace lumen::text

// Unicode helpers for the tokenizers: UTF-8 coding, character properties and case mapping
// (from ICU), and normalization forms that also report how each output character lines up
// with the input, the way HF tokenizers' NormalizedString needs it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumen::text {

// ---- UTF-8 ----

constexpr char32_t kReplacementChar = 0xFFFD;

// Bytes needed to encode `c` (1..4).
inline size_t utf8_len(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }
// Byte length of the character whose first byte is `lead`, for valid UTF-8.
inline size_t utf8_seq_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}
inline bool is_utf8_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

void append_utf8(std::string& out, char32_t c);
std::string to_utf8(char32_t c);
std::string to_utf8(std::u32string_view s);

// Decodes the character starting at byte `i` of valid UTF-8 `s`; sets *len to its byte length.
char32_t decode_utf8_at(std::string_view s, size_t i, size_t* len);
// All characters of valid UTF-8.
std::u32string decode_utf8(std::string_view s);
// Number of characters of valid UTF-8.
size_t count_chars(std::string_view s);

bool is_valid_utf8(std::string_view bytes);
// Arbitrary bytes to valid UTF-8: each maximal ill-formed subsequence becomes one U+FFFD
// (the Unicode "substitution of maximal subparts" policy that Python's errors="replace" and
// Rust's String::from_utf8_lossy both follow).
std::string sanitize_utf8(std::string_view bytes);

// ---- Properties (Unicode data from ICU) ----

// General-category mask of `c` (ICU U_GC_*_MASK bits).
uint32_t category_mask(char32_t c);
bool is_letter(char32_t c);             // L*
bool is_number(char32_t c);             // N* (Rust char::is_numeric)
bool is_punctuation(char32_t c);        // P*
bool is_mark(char32_t c);               // M*
bool is_mark_nonspacing(char32_t c);    // Mn
bool is_other(char32_t c);              // C* (Cc Cf Cs Co Cn)
bool is_white_space(char32_t c);        // White_Space (Rust char::is_whitespace, regex \s)
bool is_alphabetic(char32_t c);         // Alphabetic property
bool is_word_char(char32_t c);          // regex \w: Alphabetic, M, Nd, Pc, Join_Control
bool is_ascii_punctuation(char32_t c);  // Rust char::is_ascii_punctuation
// Python str.isspace(): category Zs or bidi class WS/B/S (includes U+001C..U+001F).
bool is_python_space(char32_t c);
uint8_t combining_class(char32_t c);

// Full case mappings of one character (Rust char::to_lowercase / to_uppercase): may
// produce several characters, e.g. U+0130 -> "i\u0307".
void lowercase_char(char32_t c, std::u32string& out);
void uppercase_char(char32_t c, std::u32string& out);

// Every occurrence of `from` in `s` replaced by `to` (Python str.replace).
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

// Extended grapheme clusters (UAX #29) of valid UTF-8, as byte ranges.
std::vector<std::pair<size_t, size_t>> grapheme_clusters(std::string_view s);

// ---- Normalization with alignment ----

enum class NormForm { kNFD, kNFKD, kNFC, kNFKC };

// One output character and how it relates to the input, in the convention of
// NormalizedString::transform: 0 = replaces one input char, +1 = inserted, -N = replaces one
// input char and absorbs the N that follow.
struct CharChange {
  char32_t c;
  int change;
};

// Normalizes `s` the way the unicode-normalization-alignments crate (used by HF tokenizers)
// does: full decomposition with canonical reordering, then (for NFC/NFKC) canonical
// composition, tracking the change of every output character.
std::vector<CharChange> normalize_with_changes(std::string_view s, NormForm form);
// Whether `s` is already in `form` (then normalize_with_changes changes nothing).
bool is_normalized(std::string_view s, NormForm form);

}  // namespace lumen::text

#include "text/unicode.h"

#include <unicode/ubrk.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <algorithm>

#include "core/error.h"

namespace lumen::text {

// ---- UTF-8 ----

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string to_utf8(char32_t c) {
  std::string s;
  append_utf8(s, c);
  return s;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

char32_t decode_utf8_at(std::string_view s, size_t i, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  const size_t n = utf8_seq_len(b0);
  *len = n;
  char32_t c = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return c;
}

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n;
    out.push_back(decode_utf8_at(s, i, &n));
    i += n;
  }
  return out;
}

size_t count_chars(std::string_view s) {
  size_t n = 0;
  for (char ch : s) n += !is_utf8_continuation(static_cast<unsigned char>(ch));
  return n;
}

namespace {

// Length of the well-formed sequence at s[i], or 0 when it is ill-formed; *maximal_subpart
// receives the length of the maximal ill-formed prefix to replace (at least 1).
size_t valid_seq_len(std::string_view s, size_t i, size_t* maximal_subpart) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *maximal_subpart = 1;
  if (b0 < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      *maximal_subpart = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : is_utf8_continuation(b);
    if (!ok) {
      *maximal_subpart = k;
      return 0;
    }
  }
  return n;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t bad;
    const size_t n = valid_seq_len(bytes, i, &bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t bad;
    const size_t n = valid_seq_len(bytes, i, &bad);
    if (n == 0) {
      append_utf8(out, kReplacementChar);
      i += bad;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

// ---- Properties ----

uint32_t category_mask(char32_t c) { return U_GET_GC_MASK(static_cast<UChar32>(c)); }
bool is_letter(char32_t c) { return (category_mask(c) & U_GC_L_MASK) != 0; }
bool is_number(char32_t c) { return (category_mask(c) & U_GC_N_MASK) != 0; }
bool is_punctuation(char32_t c) { return (category_mask(c) & U_GC_P_MASK) != 0; }
bool is_mark(char32_t c) { return (category_mask(c) & U_GC_M_MASK) != 0; }
bool is_mark_nonspacing(char32_t c) { return (category_mask(c) & U_GC_MN_MASK) != 0; }
bool is_other(char32_t c) { return (category_mask(c) & U_GC_C_MASK) != 0; }

bool is_white_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

bool is_alphabetic(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_ALPHABETIC);
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return is_alphabetic(c) || (c >= '0' && c <= '9') || c == '_';
  return is_alphabetic(c) || (category_mask(c) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0 ||
         u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_JOIN_CONTROL);
}

bool is_ascii_punctuation(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

bool is_python_space(char32_t c) {
  const auto u = static_cast<UChar32>(c);
  if (u_charType(u) == U_SPACE_SEPARATOR) return true;
  const UCharDirection d = u_charDirection(u);
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

uint8_t combining_class(char32_t c) {
  return c < 0x300 ? 0 : u_getCombiningClass(static_cast<UChar32>(c));
}

namespace {

// Applies an ICU full string case mapping to the single character `c`.
template <typename F>
void map_case(char32_t c, std::u32string& out, F icu_map) {
  UChar src[2];
  int32_t src_len = 0;
  U16_APPEND_UNSAFE(src, src_len, static_cast<UChar32>(c));
  UChar dst[16];
  UErrorCode err = U_ZERO_ERROR;
  const int32_t n = icu_map(dst, 16, src, src_len, "", &err);
  if (U_FAILURE(err) || n > 16) {  // cannot happen for one character; keep it unchanged
    out.push_back(c);
    return;
  }
  for (int32_t i = 0; i < n;) {
    UChar32 d;
    U16_NEXT(dst, i, n, d);
    out.push_back(static_cast<char32_t>(d));
  }
}

}  // namespace

void lowercase_char(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  map_case(c, out, u_strToLower);
}

void uppercase_char(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out.push_back(c >= 'a' && c <= 'z' ? c - 32 : c);
    return;
  }
  map_case(c, out, u_strToUpper);
}

std::vector<std::pair<size_t, size_t>> grapheme_clusters(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  if (s.empty()) return out;
  // UTF-16 copy for ICU, and the UTF-8 offset of every UTF-16 unit (plus the end).
  std::u16string u16;
  std::vector<size_t> byte_of;
  u16.reserve(s.size());
  byte_of.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const char32_t c = decode_utf8_at(s, i, &len);
    if (c >= 0x10000) {
      u16.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
      u16.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
      byte_of.push_back(i);
      byte_of.push_back(i);
    } else {
      u16.push_back(static_cast<char16_t>(c));
      byte_of.push_back(i);
    }
    i += len;
  }
  byte_of.push_back(s.size());
  UErrorCode err = U_ZERO_ERROR;
  UBreakIterator* it = ubrk_open(UBRK_CHARACTER, "", reinterpret_cast<const UChar*>(u16.data()),
                                 static_cast<int32_t>(u16.size()), &err);
  if (U_FAILURE(err) || !it) {  // no break data: one cluster per character
    if (it) ubrk_close(it);
    for (size_t i = 0; i < s.size();) {
      const size_t n = utf8_seq_len(static_cast<unsigned char>(s[i]));
      out.emplace_back(i, i + n);
      i += n;
    }
    return out;
  }
  int32_t prev = ubrk_first(it);
  for (int32_t b = ubrk_next(it); b != UBRK_DONE; b = ubrk_next(it)) {
    out.emplace_back(byte_of[static_cast<size_t>(prev)], byte_of[static_cast<size_t>(b)]);
    prev = b;
  }
  ubrk_close(it);
  return out;
}

// ---- Normalization with alignment ----

namespace {

const UNormalizer2* normalizer_instance(bool compat) {
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = compat ? unorm2_getNFKDInstance(&err) : unorm2_getNFDInstance(&err);
  LUMEN_CHECK(U_SUCCESS(err) && n, "ICU normalization data unavailable: ", u_errorName(err));
  return n;
}

const UNormalizer2* composer_instance() {
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFCInstance(&err);
  LUMEN_CHECK(U_SUCCESS(err) && n, "ICU normalization data unavailable: ", u_errorName(err));
  return n;
}

struct Pending {
  uint8_t ccc;
  char32_t c;
  int change;
};

// Full decomposition of every character; the first character of a decomposition replaces
// its source (change 0), the others are inserted (+1). Runs of non-starters are put in
// canonical order with a stable sort, as the crate's Decompositions iterator does.
std::vector<CharChange> decompose(std::string_view s, bool compat) {
  const UNormalizer2* norm = normalizer_instance(compat);
  std::vector<CharChange> out;
  out.reserve(s.size());
  std::vector<Pending> pending;  // starts with a starter (or with leading non-starters)
  auto flush = [&] {
    std::stable_sort(pending.begin(), pending.end(),
                     [](const Pending& a, const Pending& b) { return a.ccc < b.ccc; });
    for (const Pending& p : pending) out.push_back({p.c, p.change});
    pending.clear();
  };
  auto push = [&](char32_t d, bool first) {
    const uint8_t ccc = combining_class(d);
    if (ccc == 0) flush();
    pending.push_back({ccc, d, first ? 0 : 1});
  };
  UChar buf[64];
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const char32_t c = decode_utf8_at(s, i, &len);
    i += len;
    UErrorCode err = U_ZERO_ERROR;
    const int32_t n = c < 0xC0 && !compat ? -1 : unorm2_getDecomposition(norm, static_cast<UChar32>(c), buf, 64, &err);
    if (n < 0 || U_FAILURE(err)) {
      push(c, true);
      continue;
    }
    bool first = true;
    for (int32_t k = 0; k < n;) {
      UChar32 d;
      U16_NEXT(buf, k, n, d);
      push(static_cast<char32_t>(d), first);
      first = false;
    }
  }
  flush();
  return out;
}

// Canonical composition over a decomposed sequence: a port of the state machine of the
// crate's Recompositions iterator (it decides the order in which combining marks that did
// not compose are emitted). A composite carries change = starter.change + mark.change - 1.
std::vector<CharChange> recompose(const std::vector<CharChange>& in) {
  const UNormalizer2* nfc = composer_instance();
  auto compose = [&](char32_t a, char32_t b, char32_t* r) {
    const UChar32 x = unorm2_composePair(nfc, static_cast<UChar32>(a), static_cast<UChar32>(b));
    if (x < 0) return false;
    *r = static_cast<char32_t>(x);
    return true;
  };
  std::vector<CharChange> out;
  out.reserve(in.size());
  std::vector<CharChange> buffer;  // combining marks blocked from the current starter
  bool has_composee = false;
  CharChange composee{0, 0};
  int last_ccc = -1;  // -1: none
  for (const CharChange& cur : in) {
    const uint8_t ch_class = combining_class(cur.c);
    if (!has_composee) {
      if (ch_class != 0) {
        out.push_back(cur);
        continue;
      }
      composee = cur;
      has_composee = true;
      continue;
    }
    char32_t r;
    if (last_ccc < 0) {
      if (compose(composee.c, cur.c, &r)) {
        composee = {r, composee.change + cur.change - 1};
        continue;
      }
      if (ch_class == 0) {
        out.push_back(composee);
        composee = cur;
        continue;
      }
      buffer.push_back(cur);
      last_ccc = ch_class;
      continue;
    }
    if (last_ccc >= ch_class) {  // blocked from the starter
      if (ch_class == 0) {
        out.push_back(composee);
        composee = cur;
        last_ccc = -1;
        out.insert(out.end(), buffer.begin(), buffer.end());
        buffer.clear();
        continue;
      }
      buffer.push_back(cur);
      last_ccc = ch_class;
      continue;
    }
    if (compose(composee.c, cur.c, &r)) {
      composee = {r, composee.change + cur.change - 1};
      continue;
    }
    buffer.push_back(cur);
    last_ccc = ch_class;
  }
  if (has_composee) out.push_back(composee);
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

}  // namespace

bool is_normalized(std::string_view s, NormForm form) {
  char32_t max_c = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    max_c = std::max(max_c, decode_utf8_at(s, i, &len));
    i += len;
  }
  if (max_c < 0x80 || (form == NormForm::kNFC && max_c < 0x300)) return true;
  // ICU's check, on the same Unicode data that decompose/recompose use.
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormForm::kNFC: n = unorm2_getNFCInstance(&err); break;
    case NormForm::kNFKC: n = unorm2_getNFKCInstance(&err); break;
    case NormForm::kNFD: n = unorm2_getNFDInstance(&err); break;
    case NormForm::kNFKD: n = unorm2_getNFKDInstance(&err); break;
  }
  if (U_FAILURE(err) || !n) return false;
  std::u16string u16;
  u16.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const char32_t c = decode_utf8_at(s, i, &len);
    i += len;
    if (c < 0x10000) {
      u16.push_back(static_cast<char16_t>(c));
    } else {
      u16.push_back(static_cast<char16_t>(0xD800 + ((c - 0x10000) >> 10)));
      u16.push_back(static_cast<char16_t>(0xDC00 + ((c - 0x10000) & 0x3FF)));
    }
  }
  const UBool yes = unorm2_isNormalized(n, reinterpret_cast<const UChar*>(u16.data()), static_cast<int32_t>(u16.size()), &err);
  return U_SUCCESS(err) && yes;
}

std::vector<CharChange> normalize_with_changes(std::string_view s, NormForm form) {
  // Fast path: ASCII is invariant under every form, and below U+0300 NFC is the identity
  // (no combining marks there, and every precomposed letter recomposes to itself).
  char32_t max_c = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    max_c = std::max(max_c, decode_utf8_at(s, i, &len));
    i += len;
  }
  if (max_c < 0x80 || (form == NormForm::kNFC && max_c < 0x300)) {
    std::vector<CharChange> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      size_t len;
      out.push_back({decode_utf8_at(s, i, &len), 0});
      i += len;
    }
    return out;
  }
  const bool compat = form == NormForm::kNFKD || form == NormForm::kNFKC;
  std::vector<CharChange> d = decompose(s, compat);
  if (form == NormForm::kNFD || form == NormForm::kNFKD) return d;
  return recompose(d);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace lumen::text

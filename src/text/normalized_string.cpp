#include "text/normalized_string.h"

#include <algorithm>

#include "core/error.h"

namespace lumen::text {

namespace {

bool is_char_boundary(std::string_view s, size_t i) {
  if (i == 0 || i == s.size()) return true;
  return i < s.size() && !is_utf8_continuation(static_cast<unsigned char>(s[i]));
}

// Byte length of every character of valid UTF-8 `s`.
std::vector<uint8_t> char_lengths(std::string_view s) {
  std::vector<uint8_t> lens;
  lens.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_seq_len(static_cast<unsigned char>(s[i]));
    lens.push_back(static_cast<uint8_t>(n));
    i += n;
  }
  return lens;
}

}  // namespace

// ---- Patterns (tokenizer/pattern.rs) ----

std::vector<PatternSpan> find_matches(const Regex& re, std::string_view s) {
  if (s.empty()) return {{0, 0, false}};
  std::vector<PatternSpan> out;
  size_t prev = 0;
  for (const auto& [start, end] : re.find_all(s)) {
    if (prev != start) out.push_back({prev, start, false});
    out.push_back({start, end, true});
    prev = end;
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
  return out;
}

std::vector<PatternSpan> find_matches(const std::function<bool(char32_t)>& pred, std::string_view s) {
  if (s.empty()) return {{0, 0, false}};
  std::vector<PatternSpan> out;
  size_t last_offset = 0, last_seen = 0;
  for (size_t b = 0; b < s.size();) {
    size_t len;
    const char32_t c = decode_utf8_at(s, b, &len);
    last_seen = b + len;
    if (pred(c)) {
      if (last_offset < b) out.push_back({last_offset, b, false});
      out.push_back({b, b + len, true});
      last_offset = b + len;
    }
    b += len;
  }
  if (last_seen > last_offset) out.push_back({last_offset, last_seen, false});
  return out;
}

void invert_matches(std::vector<PatternSpan>& spans) {
  for (PatternSpan& s : spans) s.is_match = !s.is_match;
}

// ---- NormalizedString ----

NormalizedString::NormalizedString(std::string s) : original_(s), normalized_(std::move(s)) {
  alignments_.reserve(normalized_.size());
  for (size_t i = 0; i < normalized_.size();) {
    const size_t n = utf8_seq_len(static_cast<unsigned char>(normalized_[i]));
    for (size_t k = 0; k < n; ++k) alignments_.emplace_back(i, i + n);
    i += n;
  }
}

std::optional<Offsets> NormalizedString::original_to_normalized(size_t start, size_t end) const {
  if (start == end) return Offsets{start, end};
  if (start > end) return std::nullopt;
  std::optional<size_t> s, e;
  for (size_t i = 0; i < alignments_.size(); ++i) {
    const Offsets& a = alignments_[i];
    if (end < a.second) break;
    if (!s && start <= a.first && a.first != a.second) s = i;
    e = i + 1;
  }
  if (s && e) return Offsets{*s, *e};
  if (s) return Offsets{*s, *s};
  if (e) return Offsets{*e, *e};
  return std::nullopt;
}

std::optional<Offsets> NormalizedString::normalized_to_original(size_t start, size_t end) const {
  if (start == end) return Offsets{start, end};
  if (start > end || end > alignments_.size()) return std::nullopt;
  return Offsets{alignments_[start].first, alignments_[end - 1].second};
}

std::optional<NormalizedString> NormalizedString::slice(size_t start, size_t end) const {
  if (start > end || !is_char_boundary(normalized_, start) || !is_char_boundary(normalized_, end)) return std::nullopt;
  const std::optional<Offsets> orig = normalized_to_original(start, end);
  if (!orig || end > alignments_.size()) return std::nullopt;
  const size_t shift = orig->first;
  NormalizedString out;
  // The original part is empty when the range does not fall on its character boundaries.
  if (orig->first <= orig->second && is_char_boundary(original_, orig->first) &&
      is_char_boundary(original_, orig->second))
    out.original_ = original_.substr(orig->first, orig->second - orig->first);
  out.normalized_ = normalized_.substr(start, end - start);
  out.alignments_.reserve(end - start);
  for (size_t i = start; i < end; ++i)  // unsigned wrap-around as in the reference
    out.alignments_.emplace_back(alignments_[i].first - shift, alignments_[i].second - shift);
  out.original_shift_ = original_shift_ + orig->first;
  return out;
}

void NormalizedString::transform_range(size_t start, size_t end, const std::vector<CharChange>& dest,
                                       size_t initial_offset) {
  end = std::min(end, normalized_.size());
  start = std::min(start, end);
  // Characters being replaced, consumed as the new ones say how many they replace.
  const std::vector<uint8_t> replaced = char_lengths(std::string_view(normalized_).substr(start, end - start));
  size_t ri = 0;
  size_t offset = start;
  for (; ri < replaced.size() && ri < initial_offset; ++ri) offset += replaced[ri];

  std::string new_text;
  std::vector<Offsets> new_align;
  new_text.reserve(dest.size());
  new_align.reserve(dest.size());
  auto align_at = [&](size_t idx) -> Offsets {
    if (alignments_.empty()) return {0, 0};
    return alignments_[std::min(idx, alignments_.size() - 1)];
  };
  for (const CharChange& d : dest) {
    Offsets align;
    if (d.change > 0) {
      align = offset < 1 ? Offsets{0, 0} : align_at(offset - 1);
    } else {
      align = align_at(offset);
      if (ri < replaced.size()) offset += replaced[ri++];
      for (int k = 0; k < -d.change && ri < replaced.size(); ++k) offset += replaced[ri++];
    }
    const size_t n = utf8_len(d.c);
    for (size_t k = 0; k < n; ++k) new_align.push_back(align);
    append_utf8(new_text, d.c);
  }
  alignments_.erase(alignments_.begin() + static_cast<ptrdiff_t>(start), alignments_.begin() + static_cast<ptrdiff_t>(end));
  alignments_.insert(alignments_.begin() + static_cast<ptrdiff_t>(start), new_align.begin(), new_align.end());
  normalized_.replace(start, end - start, new_text);
}

void NormalizedString::transform(const std::vector<CharChange>& dest, size_t initial_offset) {
  const std::optional<Offsets> range = original_to_normalized(0, original_.size());
  if (!range) return;
  transform_range(range->first, range->second, dest, initial_offset);
}

void NormalizedString::map_bytes(const char32_t (&table)[256]) {
  const std::optional<Offsets> range = original_to_normalized(0, original_.size());
  if (!range) return;
  if (range->first != 0 || range->second != normalized_.size() || alignments_.size() != normalized_.size()) {
    // Unusual alignments (text outside the original's range): the general path.
    std::vector<CharChange> dest;
    const std::string_view t = std::string_view(normalized_).substr(range->first, range->second - range->first);
    for (size_t i = 0; i < t.size();) {
      const size_t len = utf8_seq_len(static_cast<unsigned char>(t[i]));
      for (size_t k = 0; k < len && i + k < t.size(); ++k) dest.push_back({table[static_cast<uint8_t>(t[i + k])], k > 0 ? 1 : 0});
      i += len;
    }
    transform_range(range->first, range->second, dest, 0);
    return;
  }
  // transform_range's rule: the replacing character takes the alignment of the old
  // character's first byte, inserted ones that of the byte before the current offset (the
  // old character's last byte).
  std::string text;
  std::vector<Offsets> align;
  text.reserve(normalized_.size() * 2);
  align.reserve(normalized_.size() * 2);
  const size_t n = normalized_.size();
  for (size_t i = 0; i < n;) {
    const size_t len = std::min(utf8_seq_len(static_cast<unsigned char>(normalized_[i])), n - i);
    for (size_t k = 0; k < len; ++k) {
      const char32_t c = table[static_cast<uint8_t>(normalized_[i + k])];
      const Offsets a = k == 0 ? alignments_[i] : alignments_[i + len - 1];
      const size_t before = text.size();
      append_utf8(text, c);
      align.insert(align.end(), text.size() - before, a);
    }
    i += len;
  }
  normalized_ = std::move(text);
  alignments_ = std::move(align);
}

void NormalizedString::normalize(NormForm form) {
  if (is_normalized(normalized_, form)) return;  // most text: skip the per-character rewrite
  transform(normalize_with_changes(normalized_, form), 0);
}

void NormalizedString::filter(const std::function<bool(char32_t)>& keep) {
  int removed = 0;
  size_t removed_start = 0;
  bool have_last = false;
  char32_t last = 0;
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  for (size_t i = 0; i < normalized_.size();) {
    size_t len;
    const char32_t c = decode_utf8_at(normalized_, i, &len);
    i += len;
    if (keep(c)) {
      if (have_last) dest.push_back({last, -removed});
      else removed_start = static_cast<size_t>(removed);
      last = c;
      have_last = true;
      removed = 0;
    } else {
      ++removed;
    }
  }
  if (have_last) dest.push_back({last, -removed});
  transform(dest, removed_start);
}

void NormalizedString::map(const std::function<char32_t(char32_t)>& fn) {
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  for (size_t i = 0; i < normalized_.size();) {
    size_t len;
    dest.push_back({fn(decode_utf8_at(normalized_, i, &len)), 0});
    i += len;
  }
  transform(dest, 0);
}

void NormalizedString::prepend(std::string_view s) {
  if (normalized_.empty()) return;
  size_t first_len;
  const char32_t first = decode_utf8_at(normalized_, 0, &first_len);
  std::vector<CharChange> dest;
  bool head = true;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    dest.push_back({decode_utf8_at(s, i, &len), head ? 0 : 1});
    head = false;
    i += len;
  }
  dest.push_back({first, 1});
  transform_range(0, first_len, dest, 0);
}

void NormalizedString::append(std::string_view s) {
  std::vector<CharChange> dest;
  size_t start = 0;
  if (!normalized_.empty()) {
    size_t b = normalized_.size() - 1;
    while (b > 0 && is_utf8_continuation(static_cast<unsigned char>(normalized_[b]))) --b;
    size_t len;
    dest.push_back({decode_utf8_at(normalized_, b, &len), 0});
    start = b;
  }
  for (size_t i = 0; i < s.size();) {
    size_t len;
    dest.push_back({decode_utf8_at(s, i, &len), 1});
    i += len;
  }
  transform_range(start, normalized_.size(), dest, 0);
}

// Applies a full case mapping (one char may become several) to every character.
void NormalizedString::map_case(void (*mapping)(char32_t, std::u32string&)) {
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  std::u32string mapped;
  for (size_t i = 0; i < normalized_.size();) {
    size_t len;
    mapped.clear();
    mapping(decode_utf8_at(normalized_, i, &len), mapped);
    i += len;
    for (size_t k = 0; k < mapped.size(); ++k) dest.push_back({mapped[k], k > 0 ? 1 : 0});
  }
  transform(dest, 0);
}

void NormalizedString::lowercase() { map_case(lowercase_char); }

void NormalizedString::uppercase() { map_case(uppercase_char); }

void NormalizedString::replace(const std::vector<PatternSpan>& spans, std::string_view content) {
  std::string new_text;
  std::vector<Offsets> new_align;
  new_text.reserve(normalized_.size());
  new_align.reserve(alignments_.size());
  size_t last_end = 0;
  for (const PatternSpan& m : spans) {
    if (!m.is_match) continue;
    new_text.append(normalized_, last_end, m.start - last_end);
    new_align.insert(new_align.end(), alignments_.begin() + static_cast<ptrdiff_t>(last_end),
                     alignments_.begin() + static_cast<ptrdiff_t>(m.start));
    // Every inserted character shares the alignment of the last byte of the match.
    const Offsets align = m.end < 1 ? Offsets{0, 0} : alignments_[m.end - 1];
    for (size_t i = 0; i < content.size();) {
      const size_t n = utf8_seq_len(static_cast<unsigned char>(content[i]));
      new_text.append(content.substr(i, n));
      for (size_t k = 0; k < n; ++k) new_align.push_back(align);
      i += n;
    }
    last_end = m.end;
  }
  new_text.append(normalized_, last_end, std::string::npos);
  new_align.insert(new_align.end(), alignments_.begin() + static_cast<ptrdiff_t>(last_end), alignments_.end());
  normalized_ = std::move(new_text);
  alignments_ = std::move(new_align);
}

void NormalizedString::lrstrip(bool left, bool right) {
  const std::u32string chars = decode_utf8(normalized_);
  size_t leading = 0, trailing = 0;
  if (left)
    while (leading < chars.size() && is_white_space(chars[leading])) ++leading;
  if (right)
    while (trailing < chars.size() && is_white_space(chars[chars.size() - 1 - trailing])) ++trailing;
  if (leading == 0 && trailing == 0) return;
  std::vector<CharChange> dest;
  const size_t count = chars.size();
  for (size_t i = 0; i < count; ++i) {
    if (i < leading || i >= count - trailing) continue;
    // The reference compares the character index with the *byte* length here; kept as is.
    if (i == normalized_.size() - trailing - 1) dest.push_back({chars[i], -static_cast<int>(trailing)});
    else dest.push_back({chars[i], 0});
  }
  transform(dest, leading);
}

std::vector<NormalizedString> NormalizedString::split(const std::vector<PatternSpan>& spans,
                                                      SplitBehavior behavior) const {
  struct Piece {
    size_t start, end;
    bool remove;
  };
  std::vector<Piece> pieces;
  pieces.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const PatternSpan& s : spans) pieces.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const PatternSpan& s : spans) pieces.push_back({s.start, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match == previous_match && !pieces.empty()) pieces.back().end = s.end;
        else pieces.push_back({s.start, s.end, false});
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match && !previous_match && !pieces.empty()) pieces.back().end = s.end;
        else pieces.push_back({s.start, s.end, false});
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) pieces.back().start = it->start;
        else pieces.push_back({it->start, it->end, false});
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  std::vector<NormalizedString> out;
  out.reserve(pieces.size());
  for (const Piece& p : pieces) {
    if (p.remove) continue;
    std::optional<NormalizedString> s = slice(p.start, p.end);
    LUMEN_CHECK(s.has_value(), "tokenizer: split at a position that is not a character boundary");
    out.push_back(std::move(*s));
  }
  return out;
}

// ---- PreTokenizedString ----

PreTokenizedString::PreTokenizedString(NormalizedString n) : original_(n.original()) {
  splits_.push_back({std::move(n), std::nullopt});
}

void PreTokenizedString::split(const std::function<std::vector<Split>(size_t, NormalizedString&&)>& fn) {
  std::vector<Split> next;
  next.reserve(splits_.size());
  for (size_t i = 0; i < splits_.size(); ++i) {
    if (splits_[i].tokens) {
      next.push_back(std::move(splits_[i]));
      continue;
    }
    for (Split& s : fn(i, std::move(splits_[i].normalized)))
      if (!s.normalized.empty()) next.push_back(std::move(s));
  }
  splits_ = std::move(next);
}

void PreTokenizedString::normalize(const std::function<void(NormalizedString&)>& fn) {
  for (Split& s : splits_)
    if (!s.tokens) fn(s.normalized);
}

void PreTokenizedString::tokenize(const std::function<std::vector<Token>(const NormalizedString&)>& fn) {
  for (Split& s : splits_)
    if (!s.tokens) s.tokens = fn(s.normalized);
}

Encoding PreTokenizedString::into_encoding(uint32_t type_id) const {
  Encoding enc;
  // Byte -> character index of the original text, for every byte of every character.
  std::vector<size_t> char_of_byte(original_.size());
  {
    size_t ci = 0;
    for (size_t b = 0; b < original_.size();) {
      const size_t n = utf8_seq_len(static_cast<unsigned char>(original_[b]));
      for (size_t k = 0; k < n && b + k < original_.size(); ++k) char_of_byte[b + k] = ci;
      b += n;
      ++ci;
    }
  }
  auto to_chars = [&](Offsets o) -> Offsets {
    if (o.first >= char_of_byte.size()) return o;
    const size_t start = char_of_byte[o.first];
    if (o.second < char_of_byte.size()) return {start, char_of_byte[o.second]};
    // The end is past the last byte: use the character before it.
    const size_t last = o.second >= 1 && o.second - 1 < char_of_byte.size() ? char_of_byte[o.second - 1] : start + 1;
    return {start, last + 1};
  };
  for (size_t idx = 0; idx < splits_.size(); ++idx) {
    const Split& split = splits_[idx];
    if (!split.tokens) fail("tokenizer: a split was not tokenized");
    const size_t shift = split.normalized.offsets_original().first;
    for (const Token& t : *split.tokens) {
      Offsets o = t.offsets;
      if (auto r = split.normalized.normalized_to_original(t.offsets.first, t.offsets.second))
        o = {shift + r->first, shift + r->second};
      enc.ids.push_back(t.id);
      enc.tokens.push_back(t.value);
      enc.offsets.push_back(to_chars(o));
      enc.type_ids.push_back(type_id);
      enc.special_tokens_mask.push_back(0);
      enc.attention_mask.push_back(1);
      enc.word_ids.push_back(static_cast<int64_t>(idx));
    }
  }
  return enc;
}

}  // namespace lumen::text

// Normalizers (reference: tokenizers/src/normalizers/*.rs).
#include "text/components.h"

namespace lumen::text {

char32_t single_char(const Fields& f, const std::string& key) {
  const std::string s = f.str(key);
  LUMEN_CHECK(!s.empty() && is_valid_utf8(s) && count_chars(s) == 1, f.at(key), ": expected a single character");
  size_t len;
  return decode_utf8_at(s, 0, &len);
}

namespace {

bool is_bert_whitespace(char32_t c) { return c == '\t' || c == '\n' || c == '\r' || is_white_space(c); }
bool is_bert_control(char32_t c) { return c != '\t' && c != '\n' && c != '\r' && is_other(c); }
bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

class BertNormalizer : public Normalizer {
 public:
  explicit BertNormalizer(const Fields& f)
      : clean_text_(f.boolean("clean_text", true)),
        handle_chinese_chars_(f.boolean("handle_chinese_chars", true)),
        strip_accents_(f.opt_bool("strip_accents")),
        lowercase_(f.boolean("lowercase", true)) {}

  void normalize(NormalizedString& s) const override {
    if (clean_text_) {
      s.filter([](char32_t c) { return !(c == 0 || c == kReplacementChar || is_bert_control(c)); });
      s.map([](char32_t c) { return is_bert_whitespace(c) ? U' ' : c; });
    }
    if (handle_chinese_chars_) {
      std::vector<CharChange> dest;
      const std::string& t = s.get();
      for (size_t i = 0; i < t.size();) {
        size_t len;
        const char32_t c = decode_utf8_at(t, i, &len);
        i += len;
        if (is_chinese_char(c)) {
          dest.push_back({U' ', 0});
          dest.push_back({c, 1});
          dest.push_back({U' ', 1});
        } else {
          dest.push_back({c, 0});
        }
      }
      s.transform(dest, 0);
    }
    if (strip_accents_.value_or(lowercase_)) {
      s.normalize(NormForm::kNFD);
      s.filter([](char32_t c) { return !is_mark_nonspacing(c); });
    }
    if (lowercase_) s.lowercase();
  }

 private:
  bool clean_text_, handle_chinese_chars_;
  std::optional<bool> strip_accents_;
  bool lowercase_;
};

class StripNormalizer : public Normalizer {
 public:
  explicit StripNormalizer(const Fields& f) : left_(f.boolean("strip_left")), right_(f.boolean("strip_right")) {}
  void normalize(NormalizedString& s) const override {
    if (left_ && right_) {
      s.strip();
    } else {
      if (left_) s.lstrip();
      if (right_) s.rstrip();
    }
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override {
    s.filter([](char32_t c) { return !is_mark(c); });
  }
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormForm form) : form_(form) {}
  void normalize(NormalizedString& s) const override { s.normalize(form_); }

 private:
  NormForm form_;
};

class Nmt : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override {
    s.filter([](char32_t c) {
      return !((c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F ||
               c == 0x9F);
    });
    s.map([](char32_t c) -> char32_t {
      switch (c) {
        case 0x09: case 0x0A: case 0x0C: case 0x0D: case 0x1680: case 0x2028: case 0x2029: case 0x2581:
        case 0xFEFF: case 0xFFFD:
          return U' ';
        default:
          return (c >= 0x200B && c <= 0x200F) ? U' ' : c;
      }
    });
  }
};

class Lowercase : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override { s.lowercase(); }
};

// A Split / Replace pattern: {"String": "..."} (literal) or {"Regex": "..."}.
Regex pattern_from_json(const Fields& f, const std::string& key) {
  const Fields p = f.object(key);
  if (p.has("Regex")) return with_context(p.at("Regex"), [&] { return Regex::compile(p.str("Regex")); });
  if (p.has("String")) return Regex::literal(p.str("String"));
  fail(f.at(key), ": expected {\"String\": ...} or {\"Regex\": ...}");
}

class Replace : public Normalizer {
 public:
  explicit Replace(const Fields& f) : re_(pattern_from_json(f, "pattern")), content_(f.str("content")) {}
  void normalize(NormalizedString& s) const override { s.replace(re_, content_); }

 private:
  Regex re_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(const Fields& f) : prefix_(f.str("prepend")) {}
  void normalize(NormalizedString& s) const override {
    if (!s.empty()) s.prepend(prefix_);
  }

 private:
  std::string prefix_;
};

class ByteLevelNormalizer : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override {
    if (s.empty()) return;
    std::vector<CharChange> dest;
    const std::string& t = s.get();
    dest.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      const size_t n = utf8_seq_len(static_cast<unsigned char>(t[i]));
      for (size_t k = 0; k < n; ++k) dest.push_back({byte_to_char(static_cast<uint8_t>(t[i + k])), k > 0 ? 1 : 0});
      i += n;
    }
    s.transform(dest, 0);
  }
};

std::string base64_decode(const std::string& in, const std::string& where) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    const int v = value(in[i]);
    LUMEN_CHECK(v >= 0, where, ": not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  for (; i < in.size(); ++i) LUMEN_CHECK(in[i] == '=', where, ": not valid base64");
  return out;
}

// SentencePiece's precompiled_charsmap (spm_precompiled): [u32 trie byte size][darts-clone
// double array of u32 units][NUL-separated replacement strings]. The trie maps UTF-8 byte
// sequences to offsets of their replacements.
class Precompiled : public Normalizer {
 public:
  explicit Precompiled(const Fields& f) {
    const std::string blob = base64_decode(f.str("precompiled_charsmap"), f.at("precompiled_charsmap"));
    LUMEN_CHECK(blob.size() >= 4, f.at("precompiled_charsmap"), ": too short");
    uint32_t trie_bytes = 0;
    for (int k = 3; k >= 0; --k) trie_bytes = (trie_bytes << 8) | static_cast<unsigned char>(blob[static_cast<size_t>(k)]);
    LUMEN_CHECK(trie_bytes <= blob.size() - 4 && trie_bytes % 4 == 0, f.at("precompiled_charsmap"), ": bad trie size");
    units_.resize(trie_bytes / 4);
    for (size_t u = 0; u < units_.size(); ++u) {
      uint32_t v = 0;
      for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(blob[4 + u * 4 + static_cast<size_t>(k)]);
      units_[u] = v;
    }
    normalized_ = blob.substr(4 + trie_bytes);
    LUMEN_CHECK(!units_.empty(), f.at("precompiled_charsmap"), ": empty trie");
    LUMEN_CHECK(is_valid_utf8(normalized_), f.at("precompiled_charsmap"), ": replacements are not valid UTF-8");
  }

  // tokenizers/src/normalizers/precompiled.rs: per extended grapheme cluster, the whole
  // cluster (when under 6 bytes) or else each character is looked up; a hit is replaced.
  void normalize(NormalizedString& s) const override {
    const std::string& text = s.get();
    std::vector<CharChange> dest;
    dest.reserve(text.size());
    bool modified = false;
    for (const auto& [gb, ge] : grapheme_clusters(text)) {
      const std::string_view g(text.data() + gb, ge - gb);
      if (g.size() < 6) {
        if (auto norm = transform(g)) {
          modified = true;
          replace(dest, g, *norm);
          continue;
        }
      }
      for (size_t i = 0; i < g.size();) {
        size_t len;
        const char32_t c = decode_utf8_at(g, i, &len);
        const std::string_view part = g.substr(i, len);
        if (auto norm = transform(part)) {
          modified = true;
          replace(dest, part, *norm);
        } else {
          dest.push_back({c, 0});
        }
        i += len;
      }
    }
    if (modified) s.transform(dest, 0);
  }

 private:
  static bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
  static uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }
  static uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
  static uint32_t offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

  // The replacement of the shortest trie key that prefixes `chunk` (spm_precompiled's
  // transform takes the first common-prefix result).
  std::optional<std::string_view> transform(std::string_view chunk) const {
    size_t node = offset(units_[0]);
    for (char ch : chunk) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == 0) break;
      node ^= c;
      if (node >= units_.size()) return std::nullopt;
      const uint32_t unit = units_[node];
      if (label(unit) != c) return std::nullopt;
      node ^= offset(unit);
      if (node >= units_.size()) return std::nullopt;
      if (has_leaf(unit)) return replacement_at(value(units_[node]));
    }
    return std::nullopt;
  }

  std::optional<std::string_view> replacement_at(size_t index) const {
    if (index > normalized_.size()) return std::nullopt;
    size_t end = normalized_.find('\0', index);
    if (end == std::string::npos) end = normalized_.size();
    if (index < normalized_.size() && is_utf8_continuation(static_cast<unsigned char>(normalized_[index])))
      return std::nullopt;
    return std::string_view(normalized_).substr(index, end - index);
  }

  // Appends `new_part` for `old_part`, with changes so that the character counts line up.
  static void replace(std::vector<CharChange>& dest, std::string_view old_part, std::string_view new_part) {
    const auto old_count = static_cast<long>(count_chars(old_part));
    const auto new_count = static_cast<long>(count_chars(new_part));
    for (size_t i = 0; i < new_part.size();) {
      size_t len;
      dest.push_back({decode_utf8_at(new_part, i, &len), 0});
      i += len;
    }
    const long diff = new_count - old_count;
    if (diff > 0) {
      for (long k = 0; k < diff && static_cast<size_t>(k) < dest.size(); ++k) dest[dest.size() - 1 - static_cast<size_t>(k)].change = 1;
    } else if (diff < 0 && !dest.empty()) {
      dest.back().change += static_cast<int>(diff);
    }
  }

  std::vector<uint32_t> units_;
  std::string normalized_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(const Fields& f) {
    const json& list = f.array("normalizers");
    for (size_t i = 0; i < list.size(); ++i)
      parts_.push_back(Normalizer::from_json(list[i], f.at("normalizers") + "[" + std::to_string(i) + "]"));
  }
  void normalize(NormalizedString& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> Normalizer::from_json(const json& j, const std::string& where) {
  const Fields f(j, where);
  const std::string type = f.type();
  if (type == "BertNormalizer") return std::make_unique<BertNormalizer>(f);
  if (type == "Strip") return std::make_unique<StripNormalizer>(f);
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormForm::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormForm::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormForm::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormForm::kNFKD);
  if (type == "Nmt") return std::make_unique<Nmt>();
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Replace") return std::make_unique<Replace>(f);
  if (type == "Prepend") return std::make_unique<Prepend>(f);
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Sequence") return std::make_unique<SequenceNormalizer>(f);
  if (type == "Precompiled") return std::make_unique<Precompiled>(f);
  fail(f.at("type"), ": unknown normalizer type '", type, "'");
}

}  // namespace lumen::text

// Pre-tokenizers (reference: tokenizers/src/pre_tokenizers/*.rs).
#include "text/components.h"

namespace lumen::text {

namespace {

using Split = PreTokenizedString::Split;

std::vector<Split> as_splits(std::vector<NormalizedString> pieces) {
  std::vector<Split> out;
  out.reserve(pieces.size());
  for (NormalizedString& p : pieces) out.push_back({std::move(p), std::nullopt});
  return out;
}

SplitBehavior behavior_from_json(const Fields& f, const std::string& key, SplitBehavior fallback) {
  if (!f.has(key)) return fallback;
  const std::string b = f.str(key);
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail(f.at(key), ": unknown split behavior '", b, "'");
}

// Splits every untokenized piece on the characters `pred` accepts.
void split_on(PreTokenizedString& s, const std::function<bool(char32_t)>& pred, SplitBehavior behavior) {
  s.split([&](size_t, NormalizedString&& n) { return as_splits(n.split(find_matches(pred, n.get()), behavior)); });
}

// GPT-2's pre-tokenization pattern (openai/gpt-2 encoder.py), applied by ByteLevel.
const Regex& gpt2_regex() {
  static const Regex re = Regex::compile(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return re;
}

class ByteLevel : public PreTokenizer {
 public:
  explicit ByteLevel(const Fields& f)
      : add_prefix_space_(f.boolean("add_prefix_space", true)), use_regex_(f.boolean("use_regex", true)) {}

  void pre_tokenize(PreTokenizedString& s) const override {
    s.split([&](size_t, NormalizedString&& n) {
      if (add_prefix_space_ && (n.get().empty() || n.get()[0] != ' ')) n.prepend(" ");
      if (!use_regex_) {
        std::vector<Split> one;
        one.push_back({std::move(n), std::nullopt});
        return one;
      }
      return as_splits(n.split(find_matches(gpt2_regex(), n.get()), SplitBehavior::kIsolated));
    });
    // Every byte becomes one printable character; the first of a multi-byte character
    // replaces it, the others are inserted.
    static const auto table = [] {
      struct T {
        char32_t c[256];
      } t{};
      for (int b = 0; b < 256; ++b) t.c[b] = byte_to_char(static_cast<uint8_t>(b));
      return t;
    }();
    s.normalize([](NormalizedString& n) { n.map_bytes(table.c); });
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class SplitPre : public PreTokenizer {
 public:
  explicit SplitPre(const Fields& f)
      : behavior_(behavior_from_json(f, "behavior", SplitBehavior::kRemoved)), invert_(f.boolean("invert", false)) {
    LUMEN_CHECK(f.has("behavior"), f.at("behavior"), ": missing");
    const Fields p = f.object("pattern");
    if (p.has("Regex")) re_ = with_context(p.at("Regex"), [&] { return Regex::compile(p.str("Regex")); });
    else if (p.has("String")) re_ = Regex::literal(p.str("String"));
    else fail(f.at("pattern"), ": expected {\"String\": ...} or {\"Regex\": ...}");
  }

  void pre_tokenize(PreTokenizedString& s) const override {
    s.split([&](size_t, NormalizedString&& n) {
      std::vector<PatternSpan> spans = find_matches(re_, n.get());
      if (invert_) invert_matches(spans);
      return as_splits(n.split(spans, behavior_));
    });
  }

 private:
  Regex re_;
  SplitBehavior behavior_;
  bool invert_;
};

class Metaspace : public PreTokenizer {
 public:
  enum Scheme { kFirst, kNever, kAlways };
  explicit Metaspace(const Fields& f) : replacement_(single_char(f, "replacement")), split_(f.boolean("split", true)) {
    const std::string scheme = f.str("prepend_scheme", "always");
    if (scheme == "first") scheme_ = kFirst;
    else if (scheme == "never") scheme_ = kNever;
    else if (scheme == "always") scheme_ = kAlways;
    else fail(f.at("prepend_scheme"), ": unknown prepend scheme '", scheme, "'");
    if (f.opt_bool("add_prefix_space") == false) {
      LUMEN_CHECK(scheme_ == kNever, f.at("add_prefix_space"), ": does not match prepend_scheme");
    }
    rep_ = to_utf8(replacement_);
  }

  void pre_tokenize(PreTokenizedString& s) const override {
    s.split([&](size_t, NormalizedString&& n) {
      n.replace(find_matches([](char32_t c) { return c == U' '; }, n.get()), rep_);
      const bool starts_with_rep = n.get().compare(0, rep_.size(), rep_) == 0;
      if (scheme_ == kAlways && !starts_with_rep) n.prepend(rep_);
      if (scheme_ == kFirst && !starts_with_rep && n.offsets_original().first == 0) n.prepend(rep_);
      if (!split_) {
        std::vector<Split> one;
        one.push_back({std::move(n), std::nullopt});
        return one;
      }
      const char32_t r = replacement_;
      return as_splits(n.split(find_matches([r](char32_t c) { return c == r; }, n.get()), SplitBehavior::kMergedWithNext));
    });
  }

 private:
  char32_t replacement_;
  std::string rep_;
  Scheme scheme_ = kAlways;
  bool split_;
};

class Whitespace : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenizedString& s) const override {
    static const Regex re = Regex::compile(R"(\w+|[^\w\s]+)");
    s.split([&](size_t, NormalizedString&& n) {
      std::vector<PatternSpan> spans = find_matches(re, n.get());
      invert_matches(spans);
      return as_splits(n.split(spans, SplitBehavior::kRemoved));
    });
  }
};

class WhitespaceSplit : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenizedString& s) const override { split_on(s, is_white_space, SplitBehavior::kRemoved); }
};

bool is_punc(char32_t c) { return is_ascii_punctuation(c) || is_punctuation(c); }

class BertPreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenizedString& s) const override {
    split_on(s, is_white_space, SplitBehavior::kRemoved);
    split_on(s, is_punc, SplitBehavior::kIsolated);
  }
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(const Fields& f) : individual_(f.boolean("individual_digits", false)) {}
  void pre_tokenize(PreTokenizedString& s) const override {
    split_on(s, is_number, individual_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }

 private:
  bool individual_;
};

class Punctuation : public PreTokenizer {
 public:
  explicit Punctuation(const Fields& f) : behavior_(behavior_from_json(f, "behavior", SplitBehavior::kIsolated)) {}
  void pre_tokenize(PreTokenizedString& s) const override { split_on(s, is_punc, behavior_); }

 private:
  SplitBehavior behavior_;
};

class CharDelimiterSplit : public PreTokenizer {
 public:
  explicit CharDelimiterSplit(const Fields& f) : delimiter_(single_char(f, "delimiter")) {}
  void pre_tokenize(PreTokenizedString& s) const override {
    const char32_t d = delimiter_;
    split_on(s, [d](char32_t c) { return c == d; }, SplitBehavior::kRemoved);
  }

 private:
  char32_t delimiter_;
};

class FixedLength : public PreTokenizer {
 public:
  explicit FixedLength(const Fields& f) : length_(f.uint("length", 5)) {
    LUMEN_CHECK(length_ > 0, f.at("length"), ": must be positive");
  }
  void pre_tokenize(PreTokenizedString& s) const override {
    s.split([&](size_t, NormalizedString&& n) {
      std::vector<Split> out;
      const std::string& t = n.get();
      size_t start = 0, chars = 0;
      for (size_t i = 0; i < t.size();) {
        i += utf8_seq_len(static_cast<unsigned char>(t[i]));
        if (++chars == length_ || i == t.size()) {
          std::optional<NormalizedString> piece = n.slice(start, i);
          LUMEN_CHECK(piece.has_value(), "FixedLength: bad slice");
          out.push_back({std::move(*piece), std::nullopt});
          start = i;
          chars = 0;
        }
      }
      return out;
    });
  }

 private:
  size_t length_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(const Fields& f) {
    const json& list = f.array("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i)
      parts_.push_back(PreTokenizer::from_json(list[i], f.at("pretokenizers") + "[" + std::to_string(i) + "]"));
  }
  void pre_tokenize(PreTokenizedString& s) const override {
    for (const auto& p : parts_) p->pre_tokenize(s);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const json& j, const std::string& where) {
  const Fields f(j, where);
  const std::string type = f.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(f);
  if (type == "Split") return std::make_unique<SplitPre>(f);
  if (type == "Metaspace") return std::make_unique<Metaspace>(f);
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Digits") return std::make_unique<Digits>(f);
  if (type == "Punctuation") return std::make_unique<Punctuation>(f);
  if (type == "CharDelimiterSplit") return std::make_unique<CharDelimiterSplit>(f);
  if (type == "FixedLength") return std::make_unique<FixedLength>(f);
  if (type == "Sequence") return std::make_unique<SequencePre>(f);
  if (type == "UnicodeScripts") fail(f.at("type"), ": pre-tokenizer 'UnicodeScripts' is not supported yet");
  fail(f.at("type"), ": unknown pre-tokenizer type '", type, "'");
}

}  // namespace lumen::text

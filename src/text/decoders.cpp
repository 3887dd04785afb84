// Decoders (reference: tokenizers/src/decoders/*.rs) and the byte-level alphabet.
#include <array>

#include "text/components.h"

namespace lumen::text {

namespace {

// GPT-2 bytes_to_unicode: printable bytes stand for themselves, the others are shifted to
// U+0100.. in byte order.
struct ByteTables {
  std::array<char32_t, 256> to_char{};
  ByteTables() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) to_char[static_cast<size_t>(b)] = printable(b) ? static_cast<char32_t>(b) : next++;
  }
};

const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return byte_tables().to_char[b]; }

int char_to_byte(char32_t c) {
  if (c < 256) {
    const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    return printable ? static_cast<int>(c) : -1;
  }
  if (c >= 256 + 68) return -1;  // 68 bytes are not printable
  static const std::array<int, 68> shifted = [] {
    std::array<int, 68> a{};
    for (int b = 0; b < 256; ++b) {
      const char32_t ch = byte_to_char(static_cast<uint8_t>(b));
      if (ch >= 256) a[ch - 256] = b;
    }
    return a;
  }();
  return shifted[c - 256];
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  for (const std::string& t : decode_chain(std::move(tokens))) out += t;
  return out;
}

namespace {


class ByteLevelDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    // Tokens whose characters all map to bytes are turned back into bytes; others are kept
    // as their UTF-8 text. The joined bytes are decoded lossily.
    std::string bytes;
    for (const std::string& t : tokens) {
      std::string tb;
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        size_t len;
        const int b = char_to_byte(decode_utf8_at(t, i, &len));
        if (b < 0) ok = false;
        else tb.push_back(static_cast<char>(b));
        i += len;
      }
      bytes += ok ? tb : t;
    }
    return {sanitize_utf8(bytes)};
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  explicit MetaspaceDecoder(const Fields& f) : replacement_(single_char(f, "replacement")) {
    const std::string scheme = f.str("prepend_scheme", "always");
    LUMEN_CHECK(scheme == "first" || scheme == "never" || scheme == "always", f.at("prepend_scheme"),
                ": unknown prepend scheme '", scheme, "'");
    never_ = scheme == "never" || f.opt_bool("add_prefix_space") == false;
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        size_t len;
        const char32_t c = decode_utf8_at(t, k, &len);
        k += len;
        if (c == replacement_) {
          if (!(i == 0 && !never_)) out.push_back(' ');
        } else {
          append_utf8(out, c);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  char32_t replacement_;
  bool never_ = false;
};

std::string wordpiece_cleanup(std::string s) {
  s = replace_all(std::move(s), " .", ".");
  s = replace_all(std::move(s), " ?", "?");
  s = replace_all(std::move(s), " !", "!");
  s = replace_all(std::move(s), " ,", ",");
  s = replace_all(std::move(s), " ' ", "'");
  s = replace_all(std::move(s), " n't", "n't");
  s = replace_all(std::move(s), " 'm", "'m");
  s = replace_all(std::move(s), " do not", " don't");
  s = replace_all(std::move(s), " 's", "'s");
  s = replace_all(std::move(s), " 've", "'ve");
  s = replace_all(std::move(s), " 're", "'re");
  return s;
}

class WordPieceDecoder : public Decoder {
 public:
  explicit WordPieceDecoder(const Fields& f) : prefix_(f.str("prefix", "##")), cleanup_(f.boolean("cleanup", true)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t = " " + t;
      }
      if (cleanup_) t = wordpiece_cleanup(std::move(t));
    }
    return tokens;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(const Fields& f) : suffix_(f.str("suffix", "</w>")) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = replace_all(std::move(tokens[i]), suffix_, i + 1 == tokens.size() ? "" : " ");
    return tokens;
  }

 private:
  std::string suffix_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string pending;  // bytes of consecutive <0xXX> tokens
    auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.push_back(to_utf8(kReplacementChar));
      }
      pending.clear();
    };
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        auto hex = [](char c) {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          return -1;
        };
        const int hi = hex(t[3]), lo = hex(t[4]);
        if (hi >= 0 && lo >= 0) byte = hi * 16 + lo;
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }
};

class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    return {all};
  }
};

class StripDecoder : public Decoder {
 public:
  explicit StripDecoder(const Fields& f)
      : content_(single_char(f, "content")), start_(f.uint("start", 0)), stop_(f.uint("stop", 0)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      const std::u32string chars = decode_utf8(t);
      size_t start_cut = 0;
      for (size_t i = 0; i < std::min(start_, chars.size()) && chars[i] == content_; ++i) start_cut = i + 1;
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < std::min(stop_, chars.size()); ++i) {
        const size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        stop_cut = index;
      }
      t = stop_cut > start_cut ? to_utf8(std::u32string_view(chars).substr(start_cut, stop_cut - start_cut)) : "";
    }
    return tokens;
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(const Fields& f) : content_(f.str("content")) {
    const Fields p = f.object("pattern");
    if (p.has("Regex")) re_ = with_context(p.at("Regex"), [&] { return Regex::compile(p.str("Regex")); });
    else if (p.has("String")) re_ = Regex::literal(p.str("String"));
    else fail(f.at("pattern"), ": expected {\"String\": ...} or {\"Regex\": ...}");
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      for (const PatternSpan& s : find_matches(re_, t)) {
        if (s.is_match) out += content_;
        else out.append(t, s.start, s.end - s.start);
      }
      t = std::move(out);
    }
    return tokens;
  }

 private:
  Regex re_;
  std::string content_;
};

class CtcDecoder : public Decoder {
 public:
  explicit CtcDecoder(const Fields& f)
      : pad_(f.str("pad_token", "<pad>")), delimiter_(f.str("word_delimiter_token", "|")), cleanup_(f.boolean("cleanup", true)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 && tokens[i] == tokens[i - 1]) continue;  // dedup consecutive repeats
      std::string r = replace_all(tokens[i], pad_, "");
      if (cleanup_) r = replace_all(wordpiece_cleanup(std::move(r)), delimiter_, " ");
      if (!r.empty()) out.push_back(std::move(r));
    }
    return out;
  }

 private:
  std::string pad_, delimiter_;
  bool cleanup_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(const Fields& f) {
    const json& list = f.array("decoders");
    for (size_t i = 0; i < list.size(); ++i)
      parts_.push_back(Decoder::from_json(list[i], f.at("decoders") + "[" + std::to_string(i) + "]"));
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& p : parts_) tokens = p->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> Decoder::from_json(const json& j, const std::string& where) {
  const Fields f(j, where);
  const std::string type = f.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(f);
  if (type == "WordPiece") return std::make_unique<WordPieceDecoder>(f);
  if (type == "BPEDecoder") return std::make_unique<BpeDecoder>(f);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(f);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(f);
  if (type == "CTC") return std::make_unique<CtcDecoder>(f);
  if (type == "Sequence") return std::make_unique<SequenceDecoder>(f);
  fail(f.at("type"), ": unknown decoder type '", type, "'");
}

}  // namespace lumen::text

#include "text/tokenizer_json.h"

#include <charconv>
#include <cstring>

namespace lumen::text {

namespace {

// A forward-only JSON reader over the raw text.
class Scanner {
 public:
  Scanner(std::string_view text, const std::string& label) : s_(text), label_(label) {}

  [[noreturn]] void error(const std::string& where, const std::string& what) const {
    const std::string item = index_ >= 0 ? where + "[" + std::to_string(index_) + "]" : where;
    fail(label_, ": ", item.empty() ? "" : item + ": ", what, " (at byte ", pos_, ")");
  }
  // Element index shown in errors (-1: none); set while reading big arrays, so that no
  // per-element name has to be built.
  void set_index(int64_t i) { index_ = i; }

  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool accept(char c) {
    ws();
    if (peek() == c && !at_end()) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c, const std::string& where) {
    if (!accept(c)) error(where, std::string("expected '") + c + "'");
  }
  bool accept_literal(std::string_view lit) {
    ws();
    if (s_.substr(pos_, lit.size()) == lit) {
      pos_ += lit.size();
      return true;
    }
    return false;
  }

  // A JSON string (escapes decoded, UTF-8 checked): a view of the input text when it has no
  // escapes, else of `scratch`.
  std::string_view string_view(std::string& scratch, const std::string& where) {
    ws();
    if (peek() != '"') error(where, "expected a string");
    const size_t start = pos_ + 1;
    bool ascii = true;
    for (size_t i = start; i < s_.size(); ++i) {
      const auto c = static_cast<unsigned char>(s_[i]);
      if (c == '\\' || c < 0x20) break;  // escapes or errors: take the general path
      if (c >= 0x80) ascii = false;
      if (c == '"') {
        const std::string_view v = s_.substr(start, i - start);
        if (!ascii && !is_valid_utf8(v)) error(where, "string is not valid UTF-8");
        pos_ = i + 1;
        return v;
      }
    }
    string(scratch, where);
    return scratch;
  }

  // A JSON string into `out` (escapes decoded, UTF-8 checked).
  void string(std::string& out, const std::string& where) {
    ws();
    if (peek() != '"') error(where, "expected a string");
    ++pos_;
    out.clear();
    bool ascii = true;
    size_t run = pos_;
    for (;;) {
      if (pos_ >= s_.size()) error(where, "unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        out.append(s_.data() + run, pos_ - run);
        ++pos_;
        break;
      }
      if (c < 0x20) error(where, "control character in string");
      if (c >= 0x80) ascii = false;
      if (c != '\\') {
        ++pos_;
        continue;
      }
      out.append(s_.data() + run, pos_ - run);
      ++pos_;
      if (pos_ >= s_.size()) error(where, "unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          char32_t cp = hex4(where);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") error(where, "lone surrogate in \\u escape");
            pos_ += 2;
            const char32_t lo = hex4(where);
            if (lo < 0xDC00 || lo > 0xDFFF) error(where, "bad surrogate pair in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error(where, "lone surrogate in \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          error(where, "bad escape in string");
      }
      run = pos_;
    }
    if (!ascii && !is_valid_utf8(out)) error(where, "string is not valid UTF-8");
  }

  // A non-negative integer (a token id).
  uint64_t uint(const std::string& where) {
    ws();
    uint64_t v = 0;
    const char* b = s_.data() + pos_;
    const char* e = s_.data() + s_.size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p == b) error(where, "expected a non-negative integer");
    if (p < e && (*p == '.' || *p == 'e' || *p == 'E')) error(where, "expected an integer");
    pos_ += static_cast<size_t>(p - b);
    return v;
  }

  double number(const std::string& where) {
    ws();
    double v = 0;
    const char* b = s_.data() + pos_;
    auto [p, ec] = std::from_chars(b, s_.data() + s_.size(), v);
    if (ec != std::errc() || p == b) error(where, "expected a number");
    pos_ += static_cast<size_t>(p - b);
    return v;
  }

  // Skips one value and returns its text (parsed later by nlohmann::json).
  std::string_view skip_value(const std::string& where) {
    ws();
    const size_t start = pos_;
    int depth = 0;
    do {
      if (at_end()) error(where, "unexpected end of input");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        while (pos_ < s_.size() && s_[pos_] != '"') pos_ += s_[pos_] == '\\' ? 2 : 1;
        if (pos_ >= s_.size()) error(where, "unterminated string");
        ++pos_;
      } else if (c == '{' || c == '[') {
        ++depth;
        ++pos_;
      } else if (c == '}' || c == ']') {
        if (--depth < 0) error(where, "unexpected bracket");
        ++pos_;
      } else if (depth > 0) {
        ++pos_;
      } else {  // a scalar at top level: up to the next delimiter
        while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '}' && s_[pos_] != ']' && s_[pos_] != ' ' &&
               s_[pos_] != '\n' && s_[pos_] != '\r' && s_[pos_] != '\t')
          ++pos_;
      }
    } while (depth > 0);
    return s_.substr(start, pos_ - start);
  }

  json parse_value(const std::string& where) {
    const std::string_view text = skip_value(where);
    try {
      return json::parse(text);
    } catch (const json::exception& e) {
      error(where, std::string("not valid JSON: ") + e.what());
    }
  }

  // Iterates the members of an object: fn(key) must consume the value.
  template <typename F>
  void object(const std::string& where, F&& fn) {
    expect('{', where);
    if (accept('}')) return;
    std::string key;
    for (;;) {
      string(key, where);
      expect(':', where);
      fn(key);
      if (accept(',')) continue;
      expect('}', where);
      return;
    }
  }

  // Iterates the elements of an array: fn(index) must consume the element.
  template <typename F>
  void array(const std::string& where, F&& fn) {
    expect('[', where);
    if (accept(']')) return;
    for (size_t i = 0;; ++i) {
      fn(i);
      if (accept(',')) continue;
      expect(']', where);
      return;
    }
  }

 private:
  char32_t hex4(const std::string& where) {
    if (pos_ + 4 > s_.size()) error(where, "bad \\u escape");
    char32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_++];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else error(where, "bad \\u escape");
      v = v * 16 + static_cast<char32_t>(d);
    }
    return v;
  }

  std::string_view s_;
  const std::string& label_;
  size_t pos_ = 0;
  int64_t index_ = -1;
};

void read_vocab_object(Scanner& sc, Vocab& vocab, const std::string& where) {
  std::string scratch;
  std::string text;
  std::vector<Vocab::Entry> entries;
  sc.expect('{', where);
  if (sc.accept('}')) return;
  for (;;) {
    const std::string_view token = sc.string_view(scratch, where);
    sc.expect(':', where);
    sc.ws();
    const char c = sc.peek();
    if (c < '0' || c > '9') sc.error(where, "id of '" + std::string(token) + "' is not a non-negative integer");
    const uint64_t id = sc.uint(where);
    if (id > UINT32_MAX) sc.error(where, "id of '" + std::string(token) + "' is out of range");
    LUMEN_CHECK(text.size() + token.size() < UINT32_MAX, where, ": too much token text");
    entries.push_back({static_cast<uint32_t>(text.size()), static_cast<uint32_t>(token.size()), static_cast<uint32_t>(id)});
    text.append(token);
    if (sc.accept(',')) continue;
    sc.expect('}', where);
    break;
  }
  vocab = Vocab::build(std::move(text), entries);
}

void read_model(Scanner& sc, TokenizerJson& out) {
  const std::string where = "model";
  ModelData& m = out.model;
  sc.object(where, [&](const std::string& key) {
    if (key == "vocab") {
      sc.ws();
      if (sc.peek() == '{') {
        read_vocab_object(sc, m.vocab, "model.vocab");
      } else if (sc.peek() == '[') {  // Unigram: [[piece, score], ...]
        std::string piece;
        const std::string w = "model.vocab";
        sc.array(w, [&](size_t i) {
          sc.set_index(static_cast<int64_t>(i));
          sc.expect('[', w);
          sc.string(piece, w);
          sc.expect(',', w);
          const double score = sc.number(w);
          sc.expect(']', w);
          m.unigram_vocab.emplace_back(piece, score);
        });
        sc.set_index(-1);
      } else {
        sc.error("model.vocab", "expected an object or an array");
      }
    } else if (key == "merges") {
      std::string a, b;
      const std::string w = "model.merges";
      sc.array(w, [&](size_t i) {
        sc.set_index(static_cast<int64_t>(i));
        sc.ws();
        if (sc.peek() == '[') {
          sc.expect('[', w);
          const std::string_view left = sc.string_view(a, w);
          sc.expect(',', w);
          const std::string_view right = sc.string_view(b, w);
          sc.expect(']', w);
          m.merges.add(left, right);
        } else {
          const std::string_view both = sc.string_view(a, w);
          // "left right": exactly one space
          const size_t sp = both.find(' ');
          if (sp == std::string_view::npos || both.find(' ', sp + 1) != std::string_view::npos)
            sc.error(w, "expected \"left right\" (two tokens separated by one space)");
          m.merges.add(both.substr(0, sp), both.substr(sp + 1));
        }
      });
      sc.set_index(-1);
    } else {
      m.rest[key] = sc.parse_value("model." + key);
    }
  });
}

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& label) {
  TokenizerJson out;
  Scanner sc(text, label);
  sc.object("", [&](const std::string& key) {
    if (key == "model") {
      if (sc.accept_literal("null")) return;
      out.model = ModelData{};
      read_model(sc, out);
      out.has_model = true;
    } else {
      out.top[key] = sc.parse_value(key);
    }
  });
  sc.ws();
  if (!sc.at_end()) sc.error("", "trailing characters after the JSON object");
  return out;
}

Vocab parse_vocab_json(std::string_view text, const std::string& label) {
  Vocab vocab;
  Scanner sc(text, label);
  read_vocab_object(sc, vocab, "");
  sc.ws();
  if (!sc.at_end()) sc.error("", "trailing characters after the JSON object");
  return vocab;
}

}  // namespace lumen::text

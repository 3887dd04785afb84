#include "text/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "text/jinja/template_error.h"
#include "text/unicode.h"

namespace lumen::text::jinja {

std::string describe(SourcePos pos) { return "line " + std::to_string(pos.line) + ":" + std::to_string(pos.col); }

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Python's str.rstrip() with no argument: drops trailing characters that str.isspace() accepts.
std::string rstrip_python(const std::string& s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && is_utf8_continuation(static_cast<unsigned char>(s[start]))) --start;
    size_t len = 0;
    const char32_t c = decode_utf8_at(s, start, &len);
    if (!is_python_space(c)) break;
    end = start;
  }
  return s.substr(0, end);
}

// Python's `\s` on str: str.isspace() characters.
size_t skip_python_space(const std::string& s, size_t p) {
  while (p < s.size()) {
    size_t len = 1;
    const char32_t c = decode_utf8_at(s, p, &len);
    if (!is_python_space(c)) break;
    p += len;
  }
  return p;
}

bool all_python_space(const std::string& s, size_t from) {
  return from < s.size() && skip_python_space(s, from) == s.size();
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(normalize_newlines(std::move(source))) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    if (!is_valid_utf8(src_)) throw TemplateError("chat template: not valid UTF-8", false, "not valid UTF-8");
    size_t pos = 0;
    bool line_starting = true;  // the previous match ended a line (jinja2's line_starting)
    while (pos < src_.size()) {
      const size_t open = find_open(pos);
      if (open == std::string::npos) {
        emit_text(src_.substr(pos), pos);
        break;
      }
      const char kind = src_[open + 1];  // '{', '%' or '#'
      size_t body = open + 2;
      char sign = 0;
      if (body < src_.size() && (src_[body] == '-' || src_[body] == '+')) sign = src_[body++];
      std::string text = src_.substr(pos, open - pos);
      if (sign == '-') {
        text = rstrip_python(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: a block or comment tag preceded on its line only by whitespace.
        const size_t line_pos = text.rfind('\n') + 1;  // npos + 1 == 0
        if ((line_pos > 0 || line_starting) && all_python_space(text, line_pos)) text.resize(line_pos);
      }
      emit_text(text, pos);
      if (kind == '#') {
        pos = lex_comment(open, body, &line_starting);
      } else if (kind == '%' && lex_raw(open, body, &pos, &line_starting)) {
      } else {
        pos = lex_tag(open, body, kind == '%', &line_starting);
      }
    }
    tokens_.push_back(Token{TokenType::kEof, "", 0, 0, pos_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  // jinja2 turns \r\n and \r into \n and drops one final newline (keep_trailing_newline=False).
  static std::string normalize_newlines(std::string s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        out += '\n';
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        out += s[i];
      }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  SourcePos pos_of(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return SourcePos{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  [[noreturn]] void error(size_t offset, const std::string& what) const {
    throw TemplateError("chat template " + describe(pos_of(offset)) + ": " + what, false, what);
  }

  size_t find_open(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    }
    return std::string::npos;
  }

  void emit_text(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back(Token{TokenType::kText, text, 0, 0, pos_of(offset)});
  }

  bool starts(size_t p, const char* s) const { return src_.compare(p, std::strlen(s), s) == 0; }

  // After a tag's closing `-%}` / `+%}` / `%}` (or comment end): returns where the next text
  // starts. `trim` is trim_blocks, which applies to block and comment tags only.
  size_t after_end(size_t end, char sign, bool trim, bool* line_starting) const {
    size_t p = end;
    if (sign == '-') {
      p = skip_python_space(src_, end);
    } else if (sign != '+' && trim && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    *line_starting = p > 0 && src_[p - 1] == '\n' && p > end;
    return p;
  }

  size_t lex_comment(size_t open, size_t body, bool* line_starting) {
    size_t close = src_.find("#}", body);
    if (close == std::string::npos) error(open, "missing end of comment tag '#}'");
    char sign = 0;
    if (close > body && (src_[close - 1] == '-' || src_[close - 1] == '+')) sign = src_[close - 1];
    return after_end(close + 2, sign, true, line_starting);
  }

  // {% raw %}...{% endraw %}: the content is text, tags in it are not interpreted.
  bool lex_raw(size_t open, size_t body, size_t* next, bool* line_starting) {
    size_t p = skip_python_space(src_, body);
    if (!starts(p, "raw")) return false;
    p += 3;
    if (p < src_.size() && is_name_char(src_[p])) return false;
    p = skip_python_space(src_, p);
    char open_sign = 0;
    if (starts(p, "-%}")) {
      open_sign = '-';
      p += 3;
    } else if (starts(p, "%}")) {
      p += 2;
    } else {
      return false;
    }
    // jinja2's raw_begin has no trim_blocks newline, only the `-` strip.
    if (open_sign == '-') p = skip_python_space(src_, p);
    for (size_t q = src_.find("{%", p); q != std::string::npos; q = src_.find("{%", q + 1)) {
      size_t r = q + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      r = skip_python_space(src_, r);
      if (!starts(r, "endraw")) continue;
      r = skip_python_space(src_, r + 6);
      char end_sign = 0;
      if (starts(r, "-%}") || starts(r, "+%}")) {
        end_sign = src_[r];
        r += 3;
      } else if (starts(r, "%}")) {
        r += 2;
      } else {
        continue;
      }
      std::string text = src_.substr(p, q - p);
      if (sign == '-') {
        text = rstrip_python(text);
      } else if (sign != '+') {
        const size_t line_pos = text.rfind('\n') + 1;
        if (line_pos > 0 && all_python_space(text, line_pos)) text.resize(line_pos);
      }
      emit_text(text, p);
      *next = after_end(r, end_sign, true, line_starting);
      return true;
    }
    error(open, "missing '{% endraw %}' for '{% raw %}'");
  }

  size_t lex_tag(size_t open, size_t p, bool block, bool* line_starting) {
    tokens_.push_back(Token{block ? TokenType::kBlockBegin : TokenType::kVarBegin, "", 0, 0, pos_of(open)});
    std::string brackets;  // closers expected, innermost last
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) error(open, std::string("unexpected end of template: missing '") + (block ? "%}" : "}}") + "'");
      if (brackets.empty()) {
        const char* close = block ? "%}" : "}}";
        if ((src_[p] == '-' || (block && src_[p] == '+')) && starts(p + 1, close)) {
          tokens_.push_back(Token{block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", 0, 0, pos_of(p)});
          return after_end(p + 3, src_[p], block, line_starting);
        }
        if (starts(p, close)) {
          tokens_.push_back(Token{block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", 0, 0, pos_of(p)});
          return after_end(p + 2, 0, block, line_starting);
        }
      }
      p = lex_expression_token(p, &brackets);
    }
  }

  size_t lex_expression_token(size_t p, std::string* brackets) {
    const char c = src_[p];
    const SourcePos at = pos_of(p);
    if (is_name_start(c)) {
      size_t e = p;
      while (e < src_.size() && is_name_char(src_[e])) ++e;
      tokens_.push_back(Token{TokenType::kName, src_.substr(p, e - p), 0, 0, at});
      return e;
    }
    if (is_digit(c)) return lex_number(p);
    if (c == '\'' || c == '"') return lex_string(p);
    static const char* kTwoChar[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwoChar) {
      if (starts(p, op)) {
        tokens_.push_back(Token{TokenType::kOp, op, 0, 0, at});
        return p + 2;
      }
    }
    if (std::strchr("+-*/%~<>=()[]{},.:|;", c) && c != '\0') {
      if (c == '(' || c == '[' || c == '{') brackets->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      if (c == ')' || c == ']' || c == '}') {
        if (brackets->empty() || brackets->back() != c) error(p, std::string("unexpected '") + c + "'");
        brackets->pop_back();
      }
      tokens_.push_back(Token{TokenType::kOp, std::string(1, c), 0, 0, at});
      return p + 1;
    }
    size_t len = 1;
    const char32_t u = decode_utf8_at(src_, p, &len);
    error(p, "unexpected character '" + to_utf8(u) + "' in tag");
  }

  // Digits with optional `_` separators (Python/jinja2 integer and float literals).
  size_t digits(size_t p, bool (*ok)(char)) const {
    while (p < src_.size() && (ok(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && ok(src_[p + 1])))) ++p;
    return p;
  }

  size_t lex_number(size_t p) {
    const SourcePos at = pos_of(p);
    auto strip = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("xXoObB", src_[p + 1]) && src_[p + 1] != '\0') {
      const char base_char = static_cast<char>(src_[p + 1] | 0x20);
      const int base = base_char == 'x' ? 16 : base_char == 'o' ? 8 : 2;
      size_t e = p + 2;
      while (e < src_.size() && (std::isxdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      const std::string digits_str = strip(src_.substr(p + 2, e - p - 2));
      if (digits_str.empty()) error(p, "invalid number literal");
      errno = 0;
      char* end = nullptr;
      const long long v = std::strtoll(digits_str.c_str(), &end, base);
      if (errno || *end) error(p, "invalid or too large integer literal '" + src_.substr(p, e - p) + "'");
      tokens_.push_back(Token{TokenType::kInt, src_.substr(p, e - p), v, 0, at});
      return e;
    }
    size_t e = digits(p, is_digit);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      is_float = true;
      e = digits(e + 1, is_digit);
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && is_digit(src_[x])) {
        is_float = true;
        e = digits(x, is_digit);
      }
    }
    const std::string text = strip(src_.substr(p, e - p));
    Token t{is_float ? TokenType::kFloat : TokenType::kInt, text, 0, 0, at};
    errno = 0;
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) error(p, "integer literal " + text + " is larger than 64 bits");
    }
    tokens_.push_back(t);
    return e;
  }

  // A quoted string with Python's escapes (jinja2 decodes them with "unicode-escape").
  size_t lex_string(size_t p) {
    const char quote = src_[p];
    std::string out;
    size_t i = p + 1;
    auto hex = [&](size_t at, int n) -> char32_t {
      if (at + static_cast<size_t>(n) > src_.size()) error(at, "truncated escape in string");
      char32_t v = 0;
      for (int k = 0; k < n; ++k) {
        const char h = src_[at + static_cast<size_t>(k)];
        if (!std::isxdigit(static_cast<unsigned char>(h))) error(at, "truncated escape in string");
        v = v * 16 + static_cast<char32_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
      }
      return v;
    };
    while (true) {
      if (i >= src_.size()) error(p, "unterminated string");
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) error(p, "unterminated string");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': append_code_point(out, hex(i, 2), i); i += 2; break;
        case 'u': append_code_point(out, hex(i, 4), i); i += 4; break;
        case 'U': append_code_point(out, hex(i, 8), i); i += 8; break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i)
              v = v * 8 + static_cast<char32_t>(src_[i] - '0');
            append_code_point(out, v, i);
          } else {
            // Python keeps unknown escapes as written ("\s" stays backslash-s).
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back(Token{TokenType::kString, out, 0, 0, pos_of(p)});
    return i + 1;
  }

  void append_code_point(std::string& out, char32_t c, size_t at) const {
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) error(at, "escape names an invalid code point");
    append_utf8(out, c);
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

}  // namespace lumen::text::jinja

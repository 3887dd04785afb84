// Jinja lexer with the whitespace rules transformers renders chat templates under:
// trim_blocks (drop the first newline after a block or comment tag), lstrip_blocks (drop the
// spaces and tabs before a block or comment tag that starts a line), the `-` / `+` markers on
// tags, newline normalisation and the dropped final newline (keep_trailing_newline=False).
// Reference: jinja2/lexer.py (Lexer.tokeniter).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lumen::text::jinja {

struct SourcePos {
  int line = 1;
  int col = 1;
};

enum class TokenType {
  kText,        // template data between tags, whitespace rules already applied
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // value already unescaped
  kInt,
  kFloat,
  kOp,  // operator or punctuation, in `text`
  kEof,
};

struct Token {
  TokenType type;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  SourcePos pos;
};

// Tokenizes a whole template; throws lumen::Error "line L:C: ..." on unterminated tags,
// strings or comments and on characters that cannot start a token.
std::vector<Token> tokenize(const std::string& source);

// "line 3:14" for error messages.
std::string describe(SourcePos pos);

}  // namespace lumen::text::jinja

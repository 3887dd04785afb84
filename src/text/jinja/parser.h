// Jinja parser: tokens to a Program. The grammar and operator precedence follow
// jinja2/parser.py (Parser.parse_condexpr ... parse_primary, parse_tuple, parse_subscript),
// so expressions group the way jinja2 groups them (e.g. `**` is left-associative, `-x|f` is
// `(-x)|f`). Unknown filters and tests are parse errors, as in jinja2; constructs lumen does
// not implement (extends, include, call blocks, ...) are parse errors that name the tag.
#pragma once
#include <memory>
#include <string>

#include "text/jinja/ast.h"

namespace lumen::text::jinja {

// Deepest nesting of expressions or blocks a template may have; deeper input is rejected so
// neither parsing nor evaluation can exhaust the stack.
constexpr int kMaxNesting = 128;

std::shared_ptr<const Program> parse_template(const std::string& source);

}  // namespace lumen::text::jinja

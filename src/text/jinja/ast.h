// Syntax tree of a parsed template. Expression and statement nodes are tagged structs: the
// interpreter switches on the kind, and every node keeps its source position so runtime
// errors name the line and column.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/lexer.h"
#include "text/jinja/value.h"

namespace lumen::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,     // literal
    kName,        // name
    kList,        // [items...]
    kTuple,       // (items...)
    kDict,        // {items[0]: items[1], ...} as key/value pairs in items
    kAttr,        // items[0].name
    kItem,        // items[0][items[1]]
    kSlice,       // items[0][items[1]:items[2]:items[3]], absent parts are nullptr
    kCall,        // items[0](items[1..], kwargs)
    kFilter,      // items[0] | name(items[1..], kwargs)
    kTest,        // items[0] is name(items[1..], kwargs); negated when `negate`
    kUnary,       // op items[0]: "-", "+", "not"
    kBinary,      // items[0] op items[1]: + - * / // % ** ~ and or
    kCompare,     // items[0] ops[0] items[1] ops[1] items[2] ... (Python chaining)
    kCondition,   // items[0] if items[1] else items[2] (items[2] may be nullptr)
    kBlockValue,  // the rendered body of a `{% filter %}` or `{% set x | f %}` block
  };
  Kind kind;
  SourcePos pos;
  int depth = 1;  // height of this subtree; the parser caps it so evaluation cannot overflow the stack
  Value literal;
  std::string name;  // name, attribute, filter/test, or operator
  bool negate = false;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // comparison operators: == != < <= > >= in notin
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Where `for` and `set` store values: names (several = tuple unpacking) or ns.attr.
struct Target {
  std::vector<std::string> names;
  std::string attr;  // set: `names[0].attr = ...` when not empty
  bool tuple = false;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // nullptr when required
};

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (cond, body)...; else_body
    kFor,       // for target in expr [if cond] body [else else_body]
    kSet,       // set target = expr
    kSetBlock,  // set target [| filters] body endset; expr is the filter chain or nullptr
    kMacro,     // macro name(params) body
    kBreak,
    kContinue,
    kFilterBlock,  // filter chain (expr over kBlockValue) applied to the rendered body
    kScope,        // body in its own scope: `with` (assignments in `withs`), `generation`
  };
  Kind kind;
  SourcePos pos;
  std::string text;  // kText; macro name
  ExprPtr expr;
  ExprPtr cond;  // for's `if` filter
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
  std::vector<std::pair<std::string, ExprPtr>> withs;
};

// A parsed template: the top-level body plus the source positions it refers to.
struct Program {
  Body body;
};

}  // namespace lumen::text::jinja

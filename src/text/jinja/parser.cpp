#include "text/jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "core/error.h"
#include "text/jinja/template_error.h"
#include "text/jinja/builtins.h"

namespace lumen::text::jinja {
namespace {

const char* token_name(TokenType t) {
  switch (t) {
    case TokenType::kText: return "template text";
    case TokenType::kVarBegin: return "'{{'";
    case TokenType::kVarEnd: return "'}}'";
    case TokenType::kBlockBegin: return "'{%'";
    case TokenType::kBlockEnd: return "'%}'";
    case TokenType::kName: return "name";
    case TokenType::kString: return "string";
    case TokenType::kInt: return "integer";
    case TokenType::kFloat: return "float";
    case TokenType::kOp: return "operator";
    default: return "end of template";
  }
}

std::string show(const Token& t) {
  switch (t.type) {
    case TokenType::kName:
    case TokenType::kOp:
    case TokenType::kInt:
    case TokenType::kFloat: return "'" + t.text + "'";
    default: return token_name(t.type);
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::shared_ptr<const Program> run() {
    auto program = std::make_shared<Program>();
    std::string end;
    program->body = parse_body({}, &end);
    return program;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::kOp && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  [[noreturn]] void error(const SourcePos& pos, const std::string& what) const {
    throw TemplateError("chat template " + describe(pos) + ": " + what, false, what);
  }
  [[noreturn]] void unexpected(const std::string& expected) const {
    error(cur().pos, "expected " + expected + ", got " + show(cur()));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected(std::string("'") + op + "'");
  }
  void expect_block_end() {
    if (cur().type != TokenType::kBlockEnd) unexpected("end of statement block '%}'");
    advance();
  }
  std::string expect_identifier(const char* what) {
    if (cur().type != TokenType::kName) unexpected(what);
    std::string name = cur().text;
    advance();
    return name;
  }

  // Nesting guard for recursive descent.
  struct Nest {
    Parser* p;
    Nest(Parser* parser, const SourcePos& pos) : p(parser) {
      if (++p->nesting_ > kMaxNesting) p->error(pos, "template nested too deeply (limit " + std::to_string(kMaxNesting) + ")");
    }
    ~Nest() { --p->nesting_; }
  };

  ExprPtr make(Expr::Kind kind, SourcePos pos, std::vector<ExprPtr> items = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    e->items = std::move(items);
    update_depth(*e);
    return e;
  }
  void update_depth(Expr& e) {
    int depth = 0;
    for (const auto& c : e.items)
      if (c) depth = std::max(depth, c->depth);
    for (const auto& [k, c] : e.kwargs) depth = std::max(depth, c->depth);
    e.depth = depth + 1;
    if (e.depth > kMaxNesting * 2) error(e.pos, "expression nested too deeply");
  }
  static std::vector<ExprPtr> items(ExprPtr a, ExprPtr b = nullptr) {
    std::vector<ExprPtr> v;
    v.push_back(std::move(a));
    if (b) v.push_back(std::move(b));
    return v;
  }

  // ---- statements ----

  // Parses until a block tag named in `ends` (consumed up to and including its name, which is
  // stored in *end) or the end of the template when `ends` is empty.
  Body parse_body(std::initializer_list<const char*> ends, std::string* end) {
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case TokenType::kText: {
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kText;
          s->pos = t.pos;
          s->text = t.text;
          body.push_back(std::move(s));
          advance();
          break;
        }
        case TokenType::kVarBegin: {
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kOutput;
          s->pos = t.pos;
          advance();
          s->expr = parse_tuple(true, false, {});
          if (cur().type != TokenType::kVarEnd) unexpected("end of print statement '}}'");
          advance();
          body.push_back(std::move(s));
          break;
        }
        case TokenType::kBlockBegin: {
          const Token& name = peek();
          if (name.type != TokenType::kName) error(name.pos, "expected a tag name after '{%', got " + show(name));
          for (const char* e : ends) {
            if (name.text == e) {
              advance();
              advance();
              *end = e;
              return body;
            }
          }
          body.push_back(parse_statement());
          break;
        }
        case TokenType::kEof: {
          if (ends.size() == 0) return body;
          std::string names;
          for (const char* e : ends) names += std::string(names.empty() ? "" : " or ") + "'" + e + "'";
          error(t.pos, "unexpected end of template, expected " + names);
        }
        default: unexpected("template text or a tag");
      }
    }
  }

  StmtPtr parse_statement() {
    const SourcePos pos = cur().pos;
    Nest nest(this, pos);
    advance();  // {%
    const std::string tag = cur().text;
    const SourcePos tag_pos = cur().pos;
    advance();
    auto s = std::make_unique<Stmt>();
    s->pos = tag_pos;
    std::string end;
    if (tag == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond = parse_expression(true);
      expect_block_end();
      while (true) {
        Body body = parse_body({"elif", "else", "endif"}, &end);
        s->branches.emplace_back(std::move(cond), std::move(body));
        if (end == "elif") {
          cond = parse_expression(true);
          expect_block_end();
          continue;
        }
        if (end == "else") {
          expect_block_end();
          s->else_body = parse_body({"endif"}, &end);
        }
        expect_block_end();
        break;
      }
    } else if (tag == "for") {
      s->kind = Stmt::Kind::kFor;
      s->target = parse_names_target("in");
      if (!skip_name("in")) unexpected("'in'");
      s->expr = parse_tuple(false, false, {"recursive"});
      if (skip_name("if")) s->cond = parse_expression(true);
      if (is_name("recursive")) error(cur().pos, "recursive for loops are not supported");
      expect_block_end();
      ++loop_depth_;
      s->body = parse_body({"endfor", "else"}, &end);
      --loop_depth_;
      if (end == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"}, &end);
      }
      expect_block_end();
    } else if (tag == "set") {
      if (cur().type == TokenType::kName && peek().type == TokenType::kOp && peek().text == "." &&
          peek(2).type == TokenType::kName) {
        s->target.names.push_back(cur().text);
        s->target.attr = peek(2).text;
        advance();
        advance();
        advance();
      } else {
        s->target = parse_names_target("=");
      }
      if (skip_op("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = parse_tuple(true, false, {});
        expect_block_end();
      } else {
        s->kind = Stmt::Kind::kSetBlock;
        if (s->target.tuple || !s->target.attr.empty()) error(tag_pos, "a block set needs a single variable name");
        if (is_op("|")) s->expr = parse_filter_chain(make(Expr::Kind::kBlockValue, cur().pos));
        expect_block_end();
        s->body = parse_body({"endset"}, &end);
        expect_block_end();
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->text = expect_identifier("a macro name");
      expect_op("(");
      while (!skip_op(")")) {
        if (!s->params.empty()) expect_op(",");
        if (skip_op(")")) break;
        MacroParam p;
        p.name = expect_identifier("a parameter name");
        if (skip_op("=")) p.default_value = parse_expression(true);
        s->params.push_back(std::move(p));
      }
      expect_block_end();
      const int saved_loops = loop_depth_;
      loop_depth_ = 0;  // break/continue cannot reach a loop around the macro
      s->body = parse_body({"endmacro"}, &end);
      loop_depth_ = saved_loops;
      if (cur().type == TokenType::kName) advance();  // `{% endmacro name %}`
      expect_block_end();
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) error(tag_pos, "'" + tag + "' outside of a loop");
      s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      expect_block_end();
    } else if (tag == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      s->expr = parse_filter_chain(make(Expr::Kind::kBlockValue, cur().pos), /*leading_bar=*/false);
      expect_block_end();
      s->body = parse_body({"endfilter"}, &end);
      expect_block_end();
    } else if (tag == "generation") {
      // transformers' AssistantTracker tag: renders its body (marking assistant tokens,
      // which lumen does not need); jinja2 runs the body as a call block, so it is a scope.
      s->kind = Stmt::Kind::kScope;
      expect_block_end();
      s->body = parse_body({"endgeneration"}, &end);
      expect_block_end();
    } else if (tag == "with") {
      s->kind = Stmt::Kind::kScope;
      while (cur().type != TokenType::kBlockEnd) {
        if (!s->withs.empty()) expect_op(",");
        std::string name = expect_identifier("a variable name");
        expect_op("=");
        s->withs.emplace_back(std::move(name), parse_expression(true));
      }
      expect_block_end();
      s->body = parse_body({"endwith"}, &end);
      expect_block_end();
    } else if (tag == "extends" || tag == "include" || tag == "import" || tag == "from" || tag == "block" ||
               tag == "call" || tag == "do" || tag == "trans" || tag == "autoescape") {
      error(tag_pos, "the '" + tag + "' tag is not supported by lumen's chat template engine");
    } else {
      error(tag_pos, "unknown tag '" + tag + "'");
    }
    return s;
  }

  // `a` or `a, b` or `(a, b)`: names for for/set targets, up to the token `stop`.
  Target parse_names_target(const char* stop) {
    Target t;
    const bool parens = skip_op("(");
    while (true) {
      t.names.push_back(expect_identifier("a variable name"));
      if (!skip_op(",")) break;
      t.tuple = true;
      if (parens ? is_op(")") : (is_name(stop) || is_op(stop))) break;
    }
    if (parens) expect_op(")");
    for (const auto& n : t.names)
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
        error(cur().pos, "cannot assign to '" + n + "'");
    return t;
  }

  // `| f(args) | g` applied to `input` (kBlockValue); `leading_bar` is false for {% filter f %}.
  ExprPtr parse_filter_chain(ExprPtr input, bool leading_bar = true) {
    if (!leading_bar) input = parse_filter(std::move(input));
    while (skip_op("|")) input = parse_filter(std::move(input));
    return input;
  }

  // ---- expressions ----

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    const Token& t = cur();
    if (t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEof) return true;
    if (t.type == TokenType::kOp && (t.text == ")" || t.text == "]" || t.text == "}")) return true;
    for (const char* e : extra_end)
      if (t.type == TokenType::kName && t.text == e) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens, std::initializer_list<const char*> extra_end) {
    const SourcePos pos = cur().pos;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) unexpected("an expression");
    }
    return make(Expr::Kind::kTuple, pos, std::move(args));
  }

  ExprPtr parse_condexpr() {
    Nest nest(this, cur().pos);
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const SourcePos pos = cur().pos;
      advance();
      ExprPtr cond = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      std::vector<ExprPtr> v;
      v.push_back(std::move(expr));
      v.push_back(std::move(cond));
      v.push_back(std::move(otherwise));
      expr = make(Expr::Kind::kCondition, pos, std::move(v));
    }
    return expr;
  }

  ExprPtr binary(const char* op, SourcePos pos, ExprPtr a, ExprPtr b) {
    ExprPtr e = make(Expr::Kind::kBinary, pos, items(std::move(a), std::move(b)));
    e->name = op;
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const SourcePos pos = cur().pos;
      advance();
      left = binary("or", pos, std::move(left), parse_and());
    }
    return left;
  }
  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const SourcePos pos = cur().pos;
      advance();
      left = binary("and", pos, std::move(left), parse_not());
    }
    return left;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      const SourcePos pos = cur().pos;
      Nest nest(this, pos);
      advance();
      ExprPtr e = make(Expr::Kind::kUnary, pos, items(parse_not()));
      e->name = "not";
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    const SourcePos pos = cur().pos;
    ExprPtr first = parse_math1();
    std::vector<ExprPtr> operands;
    std::vector<std::string> ops;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::kOp &&
          (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=")) {
        ops.push_back(t.text);
        advance();
      } else if (is_name("in")) {
        ops.push_back("in");
        advance();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        ops.push_back("notin");
        advance();
        advance();
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    operands.insert(operands.begin(), std::move(first));
    ExprPtr e = make(Expr::Kind::kCompare, pos, std::move(operands));
    e->ops = std::move(ops);
    return e;
  }
  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const SourcePos pos = cur().pos;
      advance();
      left = binary(op == "+" ? "+" : "-", pos, std::move(left), parse_concat());
    }
    return left;
  }
  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const SourcePos pos = cur().pos;
      advance();
      left = binary("~", pos, std::move(left), parse_math2());
    }
    return left;
  }
  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      static const char* kOps[] = {"*", "/", "//", "%"};
      const char* op = *std::find_if(std::begin(kOps), std::end(kOps), [&](const char* o) { return cur().text == o; });
      const SourcePos pos = cur().pos;
      advance();
      left = binary(op, pos, std::move(left), parse_pow());
    }
    return left;
  }
  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const SourcePos pos = cur().pos;
      advance();
      left = binary("**", pos, std::move(left), parse_unary(true));
    }
    return left;
  }
  ExprPtr parse_unary(bool with_filter) {
    const SourcePos pos = cur().pos;
    Nest nest(this, pos);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const std::string op = cur().text;
      advance();
      node = make(Expr::Kind::kUnary, pos, items(parse_unary(false)));
      node->name = op;
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr literal(SourcePos pos, Value v) {
    ExprPtr e = make(Expr::Kind::kLiteral, pos);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const SourcePos pos = t.pos;
    switch (t.type) {
      case TokenType::kName: {
        const std::string name = t.text;
        advance();
        if (name == "true" || name == "True") return literal(pos, Value(true));
        if (name == "false" || name == "False") return literal(pos, Value(false));
        if (name == "none" || name == "None") return literal(pos, Value(None{}));
        ExprPtr e = make(Expr::Kind::kName, pos);
        e->name = name;
        return e;
      }
      case TokenType::kString: {
        // Adjacent string literals concatenate, as in Python.
        std::string s;
        while (cur().type == TokenType::kString) {
          s += cur().text;
          advance();
        }
        return literal(pos, Value(std::move(s)));
      }
      case TokenType::kInt: {
        const int64_t v = t.int_value;
        advance();
        return literal(pos, Value(v));
      }
      case TokenType::kFloat: {
        const double v = t.float_value;
        advance();
        return literal(pos, Value(v));
      }
      case TokenType::kOp:
        if (t.text == "(") {
          advance();
          ExprPtr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          advance();
          std::vector<ExprPtr> v;
          while (!skip_op("]")) {
            if (!v.empty()) expect_op(",");
            if (skip_op("]")) break;
            v.push_back(parse_expression(true));
          }
          return make(Expr::Kind::kList, pos, std::move(v));
        }
        if (t.text == "{") {
          advance();
          std::vector<ExprPtr> v;
          while (!skip_op("}")) {
            if (!v.empty()) expect_op(",");
            if (skip_op("}")) break;
            v.push_back(parse_expression(true));
            expect_op(":");
            v.push_back(parse_expression(true));
          }
          return make(Expr::Kind::kDict, pos, std::move(v));
        }
        break;
      default: break;
    }
    unexpected("an expression");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }
  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        advance();
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const SourcePos pos = cur().pos;
    if (skip_op(".")) {
      if (cur().type == TokenType::kName) {
        ExprPtr e = make(Expr::Kind::kAttr, pos, items(std::move(node)));
        e->name = cur().text;
        advance();
        update_depth(*e);
        return e;
      }
      if (cur().type == TokenType::kInt) {
        ExprPtr index = literal(cur().pos, Value(cur().int_value));
        advance();
        return make(Expr::Kind::kItem, pos, items(std::move(node), std::move(index)));
      }
      unexpected("an attribute name");
    }
    expect_op("[");
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) {
        expect_op(",");
        if (is_op("]")) break;
      }
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.empty()) error(pos, "expected a subscript");
    ExprPtr index;
    if (args.size() == 1) {
      index = std::move(args[0]);
    } else {
      index = make(Expr::Kind::kTuple, pos, std::move(args));
    }
    if (index->kind == Expr::Kind::kSlice) {
      // Re-root the slice on the subscripted value: items = [value, start, stop, step].
      index->items.insert(index->items.begin(), std::move(node));
      update_depth(*index);
      return index;
    }
    return make(Expr::Kind::kItem, pos, items(std::move(node), std::move(index)));
  }

  ExprPtr parse_subscribed() {
    const SourcePos pos = cur().pos;
    std::vector<ExprPtr> parts;
    if (skip_op(":")) {
      parts.push_back(nullptr);
    } else {
      ExprPtr e = parse_expression(true);
      if (!skip_op(":")) return e;
      parts.push_back(std::move(e));
    }
    if (is_op(":") || is_op("]") || is_op(",")) {
      parts.push_back(nullptr);
    } else {
      parts.push_back(parse_expression(true));
    }
    if (skip_op(":") && !is_op("]") && !is_op(",")) {
      parts.push_back(parse_expression(true));
    } else {
      parts.push_back(nullptr);
    }
    return make(Expr::Kind::kSlice, pos, std::move(parts));
  }

  // Arguments after '(' up to ')', into e->items (after any already there) and e->kwargs.
  void parse_call_args(Expr* e) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**")) error(cur().pos, "*args and **kwargs in calls are not supported");
      if (cur().type == TokenType::kName && peek().type == TokenType::kOp && peek().text == "=") {
        std::string name = cur().text;
        advance();
        advance();
        e->kwargs.emplace_back(std::move(name), parse_expression(true));
      } else {
        if (!e->kwargs.empty()) error(cur().pos, "positional argument after keyword argument");
        e->items.push_back(parse_expression(true));
      }
    }
    update_depth(*e);
  }

  ExprPtr parse_call(ExprPtr node) {
    const SourcePos pos = cur().pos;
    ExprPtr e = make(Expr::Kind::kCall, pos, items(std::move(node)));
    parse_call_args(e.get());
    return e;
  }

  std::string parse_dotted_name(const char* what) {
    std::string name = expect_identifier(what);
    while (is_op(".") && peek().type == TokenType::kName) {
      advance();
      name += "." + cur().text;
      advance();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node) {
    const SourcePos pos = cur().pos;
    ExprPtr e = make(Expr::Kind::kFilter, pos, items(std::move(node)));
    e->name = parse_dotted_name("a filter name");
    if (!has_filter(e->name)) error(pos, "no filter named '" + e->name + "'");
    if (is_op("(")) parse_call_args(e.get());
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    const SourcePos pos = cur().pos;
    advance();  // is
    ExprPtr e = make(Expr::Kind::kTest, pos, items(std::move(node)));
    e->negate = skip_name("not");
    const SourcePos name_pos = cur().pos;
    e->name = parse_dotted_name("a test name");
    if (!has_test(e->name)) error(name_pos, "no test named '" + e->name + "'");
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(e.get());
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInt ||
                t.type == TokenType::kFloat || is_op("[") || is_op("{")) &&
               !(t.type == TokenType::kName && (t.text == "else" || t.text == "or" || t.text == "and"))) {
      if (is_name("is")) error(t.pos, "you cannot chain multiple tests with 'is'");
      ExprPtr arg = parse_postfix(parse_primary());
      e->items.push_back(std::move(arg));
      update_depth(*e);
    }
    return e;
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

std::shared_ptr<const Program> parse_template(const std::string& source) { return Parser(tokenize(source)).run(); }

}  // namespace lumen::text::jinja

#include "text/regex.h"

#include <unicode/uchar.h>
#include <unicode/uset.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <cctype>
#include <limits>

#include "core/error.h"
#include "text/unicode.h"

namespace lumen::text {

namespace {

constexpr int kInf = -1;  // unbounded repeat maximum
// Backtracking steps allowed per search before the match is declared pathological.
constexpr int64_t kStepBudgetBase = 1'000'000;
constexpr int64_t kStepBudgetPerChar = 256;
// Largest compiled program (counted repeats are expanded).
constexpr size_t kMaxProgram = 1'000'000;

// A set of code points as sorted, disjoint, inclusive ranges, with a bitmap for ASCII.
struct CharSet {
  std::vector<std::pair<char32_t, char32_t>> ranges;
  uint64_t ascii[2] = {0, 0};

  bool contains(char32_t c) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
    auto it = std::upper_bound(ranges.begin(), ranges.end(), c,
                               [](char32_t v, const std::pair<char32_t, char32_t>& r) { return v < r.first; });
    return it != ranges.begin() && c <= std::prev(it)->second;
  }
};

// RAII owner of an ICU USet.
struct USetPtr {
  USet* s;
  USetPtr() : s(uset_openEmpty()) {}
  ~USetPtr() { uset_close(s); }
  USetPtr(const USetPtr&) = delete;
  USetPtr& operator=(const USetPtr&) = delete;
};

CharSet to_charset(const USet* set) {
  CharSet cs;
  UErrorCode err = U_ZERO_ERROR;
  const int32_t n = uset_getItemCount(set);
  for (int32_t i = 0; i < n; ++i) {
    UChar32 a, b;
    err = U_ZERO_ERROR;
    if (uset_getItem(set, i, &a, &b, nullptr, 0, &err) != 0) continue;  // a string item
    cs.ranges.emplace_back(static_cast<char32_t>(a), static_cast<char32_t>(b));
    for (UChar32 c = a; c <= std::min<UChar32>(b, 127); ++c) cs.ascii[c >> 6] |= uint64_t{1} << (c & 63);
  }
  return cs;
}

enum AssertKind { kBeginLine, kEndLine, kBeginText, kEndText, kEndTextNewline, kWordBoundary, kNotWordBoundary, kSearchStart };

struct Node {
  enum Kind { kEmpty, kSet, kConcat, kAlt, kRepeat, kAssert, kLook, kAtomic } kind = kEmpty;
  int set = -1;
  std::vector<Node> kids;
  int min = 0, max = kInf;
  bool greedy = true;
  int assert_kind = 0;
  bool behind = false, negate = false;
};

enum Op : uint8_t { kOpSet, kOpRun, kOpSplit, kOpJmp, kOpMatch, kOpAssert, kOpLook, kOpAtomic, kOpMark, kOpProgress, kOpEndAt };

struct Inst {
  Op op;
  bool flag = false;  // kOpRun: greedy; kOpLook: behind
  int32_t a = 0, b = 0, c = 0;
  int32_t lo = 0, hi = kInf;  // kOpLook behind: length bounds of the body
};

}  // namespace

struct Regex::Program {
  std::string pattern;
  std::vector<CharSet> sets;
  std::vector<Inst> insts;
  int num_slots = 0;
};

namespace {

// ---------------------------------------------------------------------------------------
// Parser: pattern text -> Node tree. Character sets are built with ICU and flattened.

class Parser {
 public:
  Parser(std::string_view pattern, Regex::Program* prog) : prog_(prog) {
    LUMEN_CHECK(is_valid_utf8(pattern), "regex: pattern is not valid UTF-8");
    pat_ = decode_utf8(pattern);
  }

  Node parse() {
    Node n = parse_alt();
    if (pos_ < pat_.size()) error("unmatched ')'");
    return n;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("regex '", prog_->pattern, "': ", what, " at character ", pos_);
  }
  bool at_end() const { return pos_ >= pat_.size(); }
  char32_t peek(size_t k = 0) const { return pos_ + k < pat_.size() ? pat_[pos_ + k] : 0; }
  char32_t next() {
    if (at_end()) error("unexpected end of pattern");
    return pat_[pos_++];
  }
  bool accept(char32_t c) {
    if (peek() == c && !at_end()) {
      ++pos_;
      return true;
    }
    return false;
  }

  int add_set(USet* s) {
    uset_freeze(s);
    prog_->sets.push_back(to_charset(s));
    return static_cast<int>(prog_->sets.size() - 1);
  }
  Node set_node(USet* s) {
    Node n;
    n.kind = Node::kSet;
    n.set = add_set(s);
    return n;
  }

  void add_char(USet* s, char32_t c) const {
    uset_add(s, static_cast<UChar32>(c));
    if (icase_) uset_closeOver(s, USET_CASE_INSENSITIVE);
  }

  // \p{name}: general category, script or binary property (ICU's loose name matching), plus
  // the POSIX-like names Oniguruma accepts.
  void add_property(USet* s, std::u32string name, bool negate) const {
    if (!name.empty() && name[0] == '^') {
      negate = !negate;
      name.erase(0, 1);
    }
    std::string lower;
    for (char32_t c : name)
      if (c != ' ' && c != '_' && c != '-') append_utf8(lower, c < 128 ? static_cast<char32_t>(std::tolower(static_cast<int>(c))) : c);
    USetPtr p;
    if (lower == "word") {
      add_builtin(p.s, 'w');
    } else if (lower == "digit") {
      add_builtin(p.s, 'd');
    } else if (lower == "alnum") {
      UErrorCode err = U_ZERO_ERROR;
      uset_applyIntPropertyValue(p.s, UCHAR_ALPHABETIC, 1, &err);
      USetPtr nd;
      uset_applyIntPropertyValue(nd.s, UCHAR_GENERAL_CATEGORY_MASK, U_GC_ND_MASK, &err);
      uset_addAll(p.s, nd.s);
    } else if (lower == "punct") {
      UErrorCode err = U_ZERO_ERROR;
      uset_applyIntPropertyValue(p.s, UCHAR_GENERAL_CATEGORY_MASK, U_GC_P_MASK, &err);
    } else if (lower == "space") {
      add_builtin(p.s, 's');
    } else if (lower == "cntrl") {
      UErrorCode err = U_ZERO_ERROR;
      uset_applyIntPropertyValue(p.s, UCHAR_GENERAL_CATEGORY_MASK, U_GC_CC_MASK, &err);
    } else {
      std::u16string u16;
      for (char c : lower) u16.push_back(static_cast<char16_t>(static_cast<unsigned char>(c)));
      UErrorCode err = U_ZERO_ERROR;
      uset_applyPropertyAlias(p.s, reinterpret_cast<const UChar*>(u16.data()), static_cast<int32_t>(u16.size()), nullptr,
                              0, &err);
      if (U_FAILURE(err)) error("unknown property name '" + to_utf8(name) + "'");
    }
    if (icase_) uset_closeOver(p.s, USET_CASE_INSENSITIVE);
    if (negate) uset_complement(p.s);
    uset_addAll(s, p.s);
  }

  // \d \s \w \h and their negations.
  void add_builtin(USet* s, char32_t letter) const {
    const bool negate = letter >= 'A' && letter <= 'Z';
    const char32_t l = negate ? letter + 32 : letter;
    USetPtr p;
    UErrorCode err = U_ZERO_ERROR;
    if (l == 'd') {
      uset_applyIntPropertyValue(p.s, UCHAR_GENERAL_CATEGORY_MASK, U_GC_ND_MASK, &err);
    } else if (l == 's') {
      uset_applyIntPropertyValue(p.s, UCHAR_WHITE_SPACE, 1, &err);
    } else if (l == 'w') {
      uset_applyIntPropertyValue(p.s, UCHAR_ALPHABETIC, 1, &err);
      USetPtr extra;
      uset_applyIntPropertyValue(extra.s, UCHAR_GENERAL_CATEGORY_MASK, U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK, &err);
      uset_addAll(p.s, extra.s);
      USetPtr join;
      uset_applyIntPropertyValue(join.s, UCHAR_JOIN_CONTROL, 1, &err);
      uset_addAll(p.s, join.s);
    } else {  // 'h': hex digit (Ruby syntax)
      uset_addRange(p.s, '0', '9');
      uset_addRange(p.s, 'a', 'f');
      uset_addRange(p.s, 'A', 'F');
    }
    if (negate) uset_complement(p.s);
    uset_addAll(s, p.s);
  }

  uint32_t parse_hex(size_t min_digits, size_t max_digits) {
    uint32_t v = 0;
    size_t n = 0;
    while (n < max_digits && std::isxdigit(static_cast<int>(peek() < 128 ? peek() : 0))) {
      const char32_t c = next();
      v = v * 16 + static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      ++n;
    }
    if (n < min_digits) error("bad hexadecimal escape");
    return v;
  }

  char32_t checked_cp(uint32_t v) {
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) error("code point out of range");
    return v;
  }

  // Escapes that denote one character, shared by classes and atoms; `in_class` makes \b a
  // backspace. Returns false when the escape is not a single character.
  bool escaped_char(char32_t e, bool in_class, char32_t* out) {
    switch (e) {
      case 't': *out = '\t'; return true;
      case 'n': *out = '\n'; return true;
      case 'r': *out = '\r'; return true;
      case 'f': *out = '\f'; return true;
      case 'v': *out = 0x0B; return true;
      case 'a': *out = 0x07; return true;
      case 'e': *out = 0x1B; return true;
      case 'b':
        if (!in_class) return false;
        *out = 0x08;
        return true;
      case '0': {
        uint32_t v = 0;
        for (int k = 0; k < 2 && peek() >= '0' && peek() <= '7'; ++k) v = v * 8 + (next() - '0');
        *out = v;
        return true;
      }
      case 'x':
        if (accept('{')) {
          *out = checked_cp(parse_hex(1, 8));
          if (!accept('}')) error("unterminated \\x{...}");
        } else {
          *out = parse_hex(1, 2);
        }
        return true;
      case 'u':
        *out = checked_cp(parse_hex(4, 4));
        return true;
      default:
        break;
    }
    if ((e >= '1' && e <= '9') || e == 'k' || e == 'g') error("backreferences and subexpression calls are not supported");
    if (e == 'c' || e == 'C' || e == 'M') error("control/meta escapes are not supported");
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) return false;  // a class or an assertion
    *out = e;  // an escaped punctuation or other character stands for itself
    return true;
  }

  std::u32string parse_property_name() {
    std::u32string name;
    if (accept('{')) {
      while (!at_end() && peek() != '}') name.push_back(next());
      if (!accept('}')) error("unterminated \\p{...}");
    } else {
      name.push_back(next());  // one-letter form \pL
    }
    return name;
  }

  // Parses a bracketed class body after '['; returns an open USet the caller owns.
  USet* parse_class() {
    if (++depth_ > kMaxNesting) error("classes nested too deeply");
    USet* s = uset_openEmpty();
    try {
      const bool negate = accept('^');
      bool first = true;
      for (;;) {
        if (at_end()) error("unterminated character class");
        char32_t c = peek();
        if (c == ']' && !first) {
          ++pos_;
          break;
        }
        first = false;
        if (c == '[') {
          ++pos_;
          if (peek() == ':') {
            // POSIX bracket [:name:] / [:^name:]
            const size_t save = pos_;
            ++pos_;
            const bool pneg = accept('^');
            std::u32string name;
            while (!at_end() && peek() != ':' && peek() != ']') name.push_back(next());
            if (accept(':') && accept(']')) {
              add_property(s, name, pneg);
              continue;
            }
            pos_ = save;
          }
          USet* sub = parse_class();
          uset_addAll(s, sub);
          uset_close(sub);
          continue;
        }
        if (c == '&' && peek(1) == '&') {
          pos_ += 2;
          // Intersect what we have so far with the rest of this class (up to its ']').
          USet* rest = parse_class();
          uset_retainAll(s, rest);
          uset_close(rest);
          if (negate) {
            if (icase_) uset_closeOver(s, USET_CASE_INSENSITIVE);
            uset_complement(s);
          }
          --depth_;
          return s;
        }
        // A single character (possibly the start of a range) or an escaped class.
        char32_t lo;
        ++pos_;
        if (c == '\\') {
          const char32_t e = next();
          if (e == 'p' || e == 'P') {
            add_property(s, parse_property_name(), e == 'P');
            continue;
          }
          if (e == 'd' || e == 'D' || e == 's' || e == 'S' || e == 'w' || e == 'W' || e == 'h' || e == 'H') {
            add_builtin(s, e);
            continue;
          }
          if (!escaped_char(e, true, &lo)) error("unsupported escape in class");
        } else {
          lo = c;
        }
        if (peek() == '-' && peek(1) != ']' && pos_ + 1 < pat_.size()) {
          ++pos_;
          char32_t hi = next();
          if (hi == '\\') {
            if (!escaped_char(next(), true, &hi)) error("bad range end in class");
          } else if (hi == '[') {
            error("bad range in class");
          }
          if (hi < lo) error("empty range in class");
          uset_addRange(s, static_cast<UChar32>(lo), static_cast<UChar32>(hi));
          continue;
        }
        uset_add(s, static_cast<UChar32>(lo));
      }
      if (icase_) uset_closeOver(s, USET_CASE_INSENSITIVE);
      if (negate) uset_complement(s);
      --depth_;
      return s;
    } catch (...) {
      uset_close(s);
      throw;
    }
  }

  Node parse_alt() {
    Node first = parse_concat();
    if (peek() != '|' || at_end()) return first;
    Node alt;
    alt.kind = Node::kAlt;
    alt.kids.push_back(std::move(first));
    while (accept('|')) alt.kids.push_back(parse_concat());
    return alt;
  }

  Node parse_concat() {
    Node cat;
    cat.kind = Node::kConcat;
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '(' && peek(1) == '?' && try_inline_flags()) continue;
      cat.kids.push_back(parse_quantified());
    }
    if (cat.kids.size() == 1) return std::move(cat.kids[0]);
    if (cat.kids.empty()) return Node{};
    return cat;
  }

  // (?i) (?-i) (?m) ... applying to the rest of the enclosing group.
  bool try_inline_flags() {
    size_t p = pos_ + 2;
    bool on = true, icase = icase_, dotall = dotall_;
    for (; p < pat_.size(); ++p) {
      const char32_t c = pat_[p];
      if (c == ')') {
        pos_ = p + 1;
        icase_ = icase;
        dotall_ = dotall;
        return true;
      }
      if (c == '-') on = false;
      else if (c == 'i') icase = on;
      else if (c == 'm') dotall = on;
      else if (c == 'x') error("extended mode (?x) is not supported");
      else return false;
    }
    return false;
  }

  bool parse_interval(int* lo, int* hi) {
    // {n} {n,} {n,m} {,m}; anything else means a literal '{'.
    size_t p = pos_ + 1;
    auto digits = [&](int* v) {
      size_t start = p;
      long x = 0;
      while (p < pat_.size() && pat_[p] >= '0' && pat_[p] <= '9') {
        x = x * 10 + (pat_[p] - '0');
        if (x > 100000) error("repeat count too large");
        ++p;
      }
      *v = static_cast<int>(x);
      return p > start;
    };
    int a = 0, b = kInf;
    const bool has_a = digits(&a);
    if (p < pat_.size() && pat_[p] == ',') {
      ++p;
      if (!digits(&b)) b = kInf;
      if (!has_a && b == kInf) return false;
    } else {
      if (!has_a) return false;
      b = a;
    }
    if (p >= pat_.size() || pat_[p] != '}') return false;
    if (b != kInf && b < a) error("bad repeat range");
    pos_ = p + 1;
    *lo = a;
    *hi = b;
    return true;
  }

  Node parse_quantified() {
    Node atom = parse_atom();
    for (int chained = 0;; ++chained) {
      if (chained > 8) error("too many quantifiers in a row");
      int lo, hi;
      const char32_t c = peek();
      if (at_end()) break;
      if (c == '*') {
        ++pos_;
        lo = 0;
        hi = kInf;
      } else if (c == '+') {
        ++pos_;
        lo = 1;
        hi = kInf;
      } else if (c == '?') {
        ++pos_;
        lo = 0;
        hi = 1;
      } else if (c == '{' && parse_interval(&lo, &hi)) {
        // parsed
      } else {
        break;
      }
      Node rep;
      rep.kind = Node::kRepeat;
      rep.min = lo;
      rep.max = hi;
      bool possessive = false;
      if (accept('?')) rep.greedy = false;
      else if (c != '{' && accept('+')) possessive = true;
      rep.kids.push_back(std::move(atom));
      if (possessive) {
        Node at;
        at.kind = Node::kAtomic;
        at.kids.push_back(std::move(rep));
        atom = std::move(at);
      } else {
        atom = std::move(rep);
      }
    }
    return atom;
  }

  Node parse_group() {
    // after '('
    if (++depth_ > kMaxNesting) error("groups nested too deeply");
    Node n;
    const bool save_icase = icase_, save_dotall = dotall_;
    if (accept('?')) {
      const char32_t c = next();
      if (c == ':') {
        n = parse_alt();
      } else if (c == '=' || c == '!') {
        n.kind = Node::kLook;
        n.negate = c == '!';
        n.kids.push_back(parse_alt());
      } else if (c == '<' && (peek() == '=' || peek() == '!')) {
        n.kind = Node::kLook;
        n.behind = true;
        n.negate = next() == '!';
        n.kids.push_back(parse_alt());
      } else if (c == '>') {
        n.kind = Node::kAtomic;
        n.kids.push_back(parse_alt());
      } else if (c == '<' || c == '\'') {
        const char32_t close = c == '<' ? '>' : '\'';
        while (!at_end() && peek() != close) ++pos_;
        if (!accept(close)) error("unterminated group name");
        n = parse_alt();
      } else if (c == '#') {
        while (!at_end() && peek() != ')') ++pos_;
      } else {
        // flags with a scope: (?i:...) (?-i:...)
        --pos_;
        bool on = true;
        for (;;) {
          const char32_t f = next();
          if (f == ':') break;
          if (f == '-') on = false;
          else if (f == 'i') icase_ = on;
          else if (f == 'm') dotall_ = on;
          else error("unsupported group syntax");
        }
        n = parse_alt();
      }
    } else {
      n = parse_alt();
    }
    icase_ = save_icase;
    dotall_ = save_dotall;
    if (!accept(')')) error("missing ')'");
    --depth_;
    return n;
  }

  Node assert_node(int kind) {
    Node n;
    n.kind = Node::kAssert;
    n.assert_kind = kind;
    return n;
  }

  Node parse_atom() {
    const char32_t c = next();
    switch (c) {
      case '(':
        return parse_group();
      case '[': {
        USet* s = parse_class();
        Node n = set_node(s);
        uset_close(s);
        return n;
      }
      case '.': {
        USetPtr s;
        uset_addRange(s.s, 0, 0x10FFFF);
        if (!dotall_) uset_remove(s.s, '\n');
        return set_node(s.s);
      }
      case '^':
        return assert_node(kBeginLine);
      case '$':
        return assert_node(kEndLine);
      case '*':
      case '+':
      case '?':
        error("target of repeat operator is not specified");
      case ')':
        error("unmatched ')'");
      case '\\': {
        const char32_t e = next();
        switch (e) {
          case 'A': return assert_node(kBeginText);
          case 'z': return assert_node(kEndText);
          case 'Z': return assert_node(kEndTextNewline);
          case 'b': return assert_node(kWordBoundary);
          case 'B': return assert_node(kNotWordBoundary);
          case 'G': return assert_node(kSearchStart);
          case 'd': case 'D': case 's': case 'S': case 'w': case 'W': case 'h': case 'H': {
            USetPtr s;
            add_builtin(s.s, e);
            return set_node(s.s);
          }
          case 'p':
          case 'P': {
            USetPtr s;
            add_property(s.s, parse_property_name(), e == 'P');
            return set_node(s.s);
          }
          default:
            break;
        }
        char32_t lit;
        if (!escaped_char(e, false, &lit)) error(std::string("unsupported escape \\") + to_utf8(e));
        USetPtr s;
        add_char(s.s, lit);
        return set_node(s.s);
      }
      default: {
        USetPtr s;
        add_char(s.s, c);
        return set_node(s.s);
      }
    }
  }

  // Parsing recurses per group / nested class; the tree it builds is walked recursively too.
  static constexpr int kMaxNesting = 200;

  Regex::Program* prog_;
  std::u32string pat_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool icase_ = false;
  bool dotall_ = false;
};

// ---------------------------------------------------------------------------------------
// Compiler: Node tree -> instructions.

bool nullable(const Node& n) {
  switch (n.kind) {
    case Node::kEmpty:
    case Node::kAssert:
    case Node::kLook:
      return true;
    case Node::kSet:
      return false;
    case Node::kConcat:
      return std::all_of(n.kids.begin(), n.kids.end(), nullable);
    case Node::kAlt:
      return std::any_of(n.kids.begin(), n.kids.end(), nullable);
    case Node::kRepeat:
      return n.min == 0 || nullable(n.kids[0]);
    case Node::kAtomic:
      return nullable(n.kids[0]);
  }
  return true;
}

// Bounds on the number of characters a node matches (hi = kInf when unbounded).
void length_bounds(const Node& n, long* lo, long* hi) {
  auto add = [](long a, long b) { return (a == kInf || b == kInf) ? long{kInf} : a + b; };
  switch (n.kind) {
    case Node::kEmpty:
    case Node::kAssert:
    case Node::kLook:
      *lo = *hi = 0;
      return;
    case Node::kSet:
      *lo = *hi = 1;
      return;
    case Node::kConcat: {
      *lo = 0;
      *hi = 0;
      for (const Node& k : n.kids) {
        long a, b;
        length_bounds(k, &a, &b);
        *lo += a;
        *hi = add(*hi, b);
      }
      return;
    }
    case Node::kAlt: {
      *lo = std::numeric_limits<long>::max();
      *hi = 0;
      for (const Node& k : n.kids) {
        long a, b;
        length_bounds(k, &a, &b);
        *lo = std::min(*lo, a);
        *hi = (*hi == kInf || b == kInf) ? long{kInf} : std::max(*hi, b);
      }
      return;
    }
    case Node::kRepeat: {
      long a, b;
      length_bounds(n.kids[0], &a, &b);
      *lo = a * n.min;
      *hi = (n.max == kInf || b == kInf) ? (b == 0 ? 0 : long{kInf}) : b * n.max;
      return;
    }
    case Node::kAtomic:
      length_bounds(n.kids[0], lo, hi);
      return;
  }
}

class Compiler {
 public:
  explicit Compiler(Regex::Program* prog) : prog_(prog) {}

  void compile_root(const Node& root) {
    emit(root);
    add({kOpMatch});
  }

 private:
  int pc() const { return static_cast<int>(prog_->insts.size()); }
  int add(Inst in) {
    if (prog_->insts.size() >= kMaxProgram) fail("regex '", prog_->pattern, "': pattern too large after expansion");
    prog_->insts.push_back(in);
    return pc() - 1;
  }
  Inst& at(int i) { return prog_->insts[static_cast<size_t>(i)]; }

  void emit(const Node& n) {
    switch (n.kind) {
      case Node::kEmpty:
        return;
      case Node::kSet:
        add({kOpSet, false, n.set});
        return;
      case Node::kConcat:
        for (const Node& k : n.kids) emit(k);
        return;
      case Node::kAlt: {
        std::vector<int> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          if (i + 1 < n.kids.size()) {
            const int split = add({kOpSplit});
            at(split).a = pc();
            emit(n.kids[i]);
            jumps.push_back(add({kOpJmp}));
            at(split).b = pc();
          } else {
            emit(n.kids[i]);
          }
        }
        for (int j : jumps) at(j).a = pc();
        return;
      }
      case Node::kAssert:
        add({kOpAssert, false, n.assert_kind});
        return;
      case Node::kLook: {
        Inst look{kOpLook, n.behind};
        look.b = n.negate ? 1 : 0;
        if (n.behind) {
          long lo, hi;
          length_bounds(n.kids[0], &lo, &hi);
          look.lo = static_cast<int32_t>(std::min<long>(lo, 1 << 30));
          look.hi = hi == kInf ? kInf : static_cast<int32_t>(std::min<long>(hi, 1 << 30));
        }
        const int l = add(look);
        const int skip = add({kOpJmp});
        at(l).a = pc();
        emit(n.kids[0]);
        if (n.behind) add({kOpEndAt});
        add({kOpMatch});
        at(skip).a = pc();
        return;
      }
      case Node::kAtomic: {
        const int l = add({kOpAtomic});
        const int skip = add({kOpJmp});
        at(l).a = pc();
        emit(n.kids[0]);
        add({kOpMatch});
        at(skip).a = pc();
        at(l).b = pc();
        return;
      }
      case Node::kRepeat:
        emit_repeat(n);
        return;
    }
  }

  void emit_repeat(const Node& n) {
    const Node& body = n.kids[0];
    if (body.kind == Node::kSet) {
      Inst run{kOpRun, n.greedy, body.set, n.min, n.max};
      add(run);
      return;
    }
    for (int i = 0; i < n.min; ++i) emit(body);
    if (n.max == kInf) {
      const bool guard = nullable(body);
      const int slot = guard ? prog_->num_slots++ : -1;
      const int loop = add({kOpSplit});
      const int body_start = pc();
      if (guard) add({kOpMark, false, slot});
      emit(body);
      int progress = -1;
      if (guard) progress = add({kOpProgress, false, slot});
      add({kOpJmp, false, loop});
      const int exit = pc();
      if (n.greedy) {
        at(loop).a = body_start;
        at(loop).b = exit;
      } else {
        at(loop).a = exit;
        at(loop).b = body_start;
      }
      if (guard) at(progress).b = exit;
      return;
    }
    std::vector<int> splits;
    for (int i = n.min; i < n.max; ++i) {
      splits.push_back(add({kOpSplit}));
      at(splits.back()).a = pc();  // provisional: body first
      emit(body);
    }
    const int exit = pc();
    for (int s : splits) {
      const int body_start = at(s).a;
      if (n.greedy) {
        at(s).a = body_start;
        at(s).b = exit;
      } else {
        at(s).a = exit;
        at(s).b = body_start;
      }
    }
  }

  Regex::Program* prog_;
};

// ---------------------------------------------------------------------------------------
// Matcher: a backtracking VM with an explicit stack (no recursion per character).

class Matcher {
 public:
  Matcher(const Regex::Program& p, std::u32string_view text) : p_(p), text_(text) {
    slots_.assign(static_cast<size_t>(p.num_slots), 0);
  }

  bool search(size_t from, size_t* start, size_t* end) {
    search_start_ = from;
    // Linear patterns need a few steps per character; exponential ones blow through this.
    budget_ = kStepBudgetBase + kStepBudgetPerChar * static_cast<int64_t>(text_.size() - from + 1);
    for (size_t s = from; s <= text_.size(); ++s) {
      if (exec(0, s, 0, end)) {
        *start = s;
        return true;
      }
    }
    return false;
  }

 private:
  enum BtKind : uint8_t { kBranch, kRunGreedy, kRunLazy, kRestoreSlot };
  struct Bt {
    BtKind kind;
    int32_t pc;     // where to resume (kRestoreSlot: the slot)
    int32_t run;    // kRunLazy: the run instruction
    size_t pos;     // resume position (runs: current end of the run)
    size_t aux;     // kRunGreedy: minimum end; kRunLazy: count; kRestoreSlot: old value
  };

  bool is_word_at(size_t i) const { return i < text_.size() && is_word_char(text_[i]); }

  bool check_assert(int kind, size_t pos) const {
    const size_t n = text_.size();
    switch (kind) {
      case kBeginLine: return pos == 0 || text_[pos - 1] == '\n';
      case kEndLine: return pos == n || text_[pos] == '\n';
      case kBeginText: return pos == 0;
      case kEndText: return pos == n;
      case kEndTextNewline: return pos == n || (pos + 1 == n && text_[pos] == '\n');
      case kWordBoundary: return (pos > 0 && is_word_at(pos - 1)) != is_word_at(pos);
      case kNotWordBoundary: return (pos > 0 && is_word_at(pos - 1)) == is_word_at(pos);
      case kSearchStart: return pos == search_start_;
    }
    return false;
  }

  // Runs the program from `pc` at `pos` until a kOpMatch; `target` is the required end for
  // a lookbehind body (kOpEndAt).
  bool exec(int pc, size_t pos, size_t target, size_t* end) {
    const size_t base = stack_.size();
    const size_t n = text_.size();
    for (;;) {
      if (--budget_ < 0) fail("regex '", p_.pattern, "': too much backtracking on this input");
      const Inst& in = p_.insts[static_cast<size_t>(pc)];
      bool ok = true;
      switch (in.op) {
        case kOpSet:
          if (pos < n && p_.sets[static_cast<size_t>(in.a)].contains(text_[pos])) {
            ++pos;
            ++pc;
          } else {
            ok = false;
          }
          break;
        case kOpRun: {
          const CharSet& set = p_.sets[static_cast<size_t>(in.a)];
          const size_t min = static_cast<size_t>(in.b);
          const size_t max = in.c == kInf ? n - pos : std::min<size_t>(static_cast<size_t>(in.c), n - pos);
          if (min > n - pos) {
            ok = false;
            break;
          }
          size_t k = 0;
          const size_t want = in.flag ? max : min;
          while (k < want && set.contains(text_[pos + k])) ++k;
          if (k < min) {
            ok = false;
            break;
          }
          if (in.flag) {
            if (k > min) stack_.push_back({kRunGreedy, pc + 1, 0, pos + k, pos + min});
            pos += k;
          } else {
            stack_.push_back({kRunLazy, pc + 1, pc, pos + min, min});
            pos += min;
          }
          ++pc;
          break;
        }
        case kOpSplit:
          stack_.push_back({kBranch, in.b, 0, pos, 0});
          pc = in.a;
          break;
        case kOpJmp:
          pc = in.a;
          break;
        case kOpMatch:
          *end = pos;
          stack_.resize(base);
          return true;
        case kOpEndAt:
          if (pos == target) ++pc;
          else ok = false;
          break;
        case kOpAssert:
          if (check_assert(in.a, pos)) ++pc;
          else ok = false;
          break;
        case kOpLook: {
          size_t e;
          bool found = false;
          if (!in.flag) {
            found = exec(in.a, pos, 0, &e);
          } else {
            const size_t lo = static_cast<size_t>(in.lo);
            const size_t hi = in.hi == kInf ? pos : std::min(pos, static_cast<size_t>(in.hi));
            for (size_t len = lo; len <= hi && !found; ++len) found = exec(in.a, pos - len, pos, &e);
          }
          if (found != (in.b != 0)) ++pc;
          else ok = false;
          break;
        }
        case kOpAtomic: {
          size_t e;
          if (exec(in.a, pos, 0, &e)) {
            pos = e;
            pc = in.b;
          } else {
            ok = false;
          }
          break;
        }
        case kOpMark:
          stack_.push_back({kRestoreSlot, in.a, 0, 0, slots_[static_cast<size_t>(in.a)]});
          slots_[static_cast<size_t>(in.a)] = pos;
          ++pc;
          break;
        case kOpProgress:
          pc = pos == slots_[static_cast<size_t>(in.a)] ? in.b : pc + 1;
          break;
      }
      if (ok) continue;
      // Backtrack to the most recent choice point of this exec.
      for (;;) {
        if (stack_.size() == base) return false;
        Bt& t = stack_.back();
        if (t.kind == kBranch) {
          pc = t.pc;
          pos = t.pos;
          stack_.pop_back();
          break;
        }
        if (t.kind == kRunGreedy) {
          --t.pos;
          pos = t.pos;
          pc = t.pc;
          if (t.pos == t.aux) stack_.pop_back();
          break;
        }
        if (t.kind == kRunLazy) {
          const Inst& run = p_.insts[static_cast<size_t>(t.run)];
          if ((run.c == kInf || t.aux < static_cast<size_t>(run.c)) && t.pos < n &&
              p_.sets[static_cast<size_t>(run.a)].contains(text_[t.pos])) {
            ++t.pos;
            ++t.aux;
            pos = t.pos;
            pc = t.pc;
            break;
          }
          stack_.pop_back();
          continue;
        }
        slots_[static_cast<size_t>(t.pc)] = t.aux;  // kRestoreSlot
        stack_.pop_back();
      }
    }
  }

  const Regex::Program& p_;
  std::u32string_view text_;
  std::vector<Bt> stack_;
  std::vector<size_t> slots_;
  size_t search_start_ = 0;
  int64_t budget_ = kStepBudgetBase;
};

std::string escape_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-&~#").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

Regex Regex::compile(std::string_view pattern) {
  auto prog = std::make_shared<Program>();
  prog->pattern = std::string(pattern);
  Parser parser(pattern, prog.get());
  const Node root = parser.parse();
  Compiler(prog.get()).compile_root(root);
  Regex r;
  r.prog_ = std::move(prog);
  return r;
}

Regex Regex::literal(std::string_view literal) {
  Regex r = compile(escape_literal(literal));
  return r;
}

const std::string& Regex::pattern() const {
  static const std::string empty;
  return prog_ ? prog_->pattern : empty;
}

bool Regex::search(std::u32string_view text, size_t from, size_t* start, size_t* end) const {
  if (!prog_) return false;
  Matcher m(*prog_, text);
  return m.search(from, start, end);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  if (!prog_) return out;
  // Code points and the byte offset of each (plus the end).
  std::u32string cps;
  std::vector<size_t> byte_at;
  cps.reserve(text.size());
  byte_at.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    size_t len;
    byte_at.push_back(i);
    cps.push_back(decode_utf8_at(text, i, &len));
    i += len;
  }
  byte_at.push_back(text.size());
  Matcher m(*prog_, cps);
  size_t last_end = 0;
  bool skip_next_empty = false;
  while (last_end <= cps.size()) {
    size_t s, e;
    if (!m.search(last_end, &s, &e)) break;
    last_end = e;
    if (e == s) {
      last_end += 1;
      if (skip_next_empty) {
        skip_next_empty = false;
        continue;
      }
    } else {
      skip_next_empty = true;
    }
    out.emplace_back(byte_at[s], byte_at[e]);
  }
  return out;
}

}  // namespace lumen::text

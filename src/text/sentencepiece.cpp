#include "text/sentencepiece.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"

namespace lumen::text {

namespace {

// ---- protobuf wire format (https://protobuf.dev/programming-guides/encoding/) ----

class WireReader {
 public:
  WireReader(std::string_view buf, std::string where) : buf_(buf), where_(std::move(where)) {}

  struct Field {
    uint32_t number = 0;
    uint32_t wire = 0;  // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    uint64_t value = 0;
    std::string_view bytes;
  };

  bool next(Field* f) {
    if (pos_ >= buf_.size()) return false;
    const uint64_t key = varint();
    f->number = static_cast<uint32_t>(key >> 3);
    f->wire = static_cast<uint32_t>(key & 7);
    LUMEN_CHECK(f->number != 0 && (key >> 3) <= 0x1FFFFFFF, where_, ": bad protobuf field key at byte ", pos_);
    switch (f->wire) {
      case 0:
        f->value = varint();
        break;
      case 1:
        f->value = fixed(8);
        break;
      case 5:
        f->value = fixed(4);
        break;
      case 2: {
        const uint64_t n = varint();
        LUMEN_CHECK(n <= buf_.size() - pos_, where_, ": field ", f->number, " is longer (", n,
                    " bytes) than what is left of the message (", buf_.size() - pos_, ")");
        f->bytes = buf_.substr(pos_, n);
        pos_ += n;
        break;
      }
      default:
        fail(where_, ": field ", f->number, " has unsupported protobuf wire type ", f->wire);
    }
    return true;
  }

  // Checks that `f` was written with the wire type its schema says.
  void expect(const Field& f, uint32_t wire, const char* name) const {
    LUMEN_CHECK(f.wire == wire, where_, ": field ", f.number, " (", name, ") has wire type ", f.wire, ", expected ",
                wire);
  }
  const std::string& where() const { return where_; }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      LUMEN_CHECK(pos_ < buf_.size(), where_, ": truncated varint at byte ", pos_);
      const auto b = static_cast<unsigned char>(buf_[pos_++]);
      v |= uint64_t{b & 0x7Fu} << shift;
      if (b < 0x80) return v;
    }
    fail(where_, ": varint longer than 10 bytes at byte ", pos_);
  }
  uint64_t fixed(size_t n) {
    LUMEN_CHECK(n <= buf_.size() - pos_, where_, ": truncated fixed", n * 8, " field at byte ", pos_);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t{static_cast<unsigned char>(buf_[pos_ + k])} << (8 * k);
    pos_ += n;
    return v;
  }

  std::string_view buf_;
  std::string where_;
  size_t pos_ = 0;
};

float float_of(uint64_t bits) {
  const auto u = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

SpmModelProto::NormalizerSpec parse_normalizer_spec(std::string_view bytes, const std::string& where) {
  SpmModelProto::NormalizerSpec spec;
  WireReader r(bytes, where);
  WireReader::Field f;
  while (r.next(&f)) {
    switch (f.number) {
      case 1:
        r.expect(f, 2, "name");
        spec.name = f.bytes;
        break;
      case 2:
        r.expect(f, 2, "precompiled_charsmap");
        spec.precompiled_charsmap = f.bytes;
        break;
      case 3:
        r.expect(f, 0, "add_dummy_prefix");
        spec.add_dummy_prefix = f.value != 0;
        break;
      case 4:
        r.expect(f, 0, "remove_extra_whitespaces");
        spec.remove_extra_whitespaces = f.value != 0;
        break;
      case 5:
        r.expect(f, 0, "escape_whitespaces");
        spec.escape_whitespaces = f.value != 0;
        break;
      default:
        break;  // normalization_rule_tsv, extensions
    }
  }
  return spec;
}

void parse_trainer_spec(std::string_view bytes, const std::string& where, SpmModelProto& m) {
  WireReader r(bytes, where);
  WireReader::Field f;
  while (r.next(&f)) {
    switch (f.number) {
      case 3:
        r.expect(f, 0, "model_type");
        LUMEN_CHECK(f.value >= 1 && f.value <= 4, where, ".model_type: unknown value ", f.value);
        m.model_type = static_cast<SpmModelProto::ModelType>(f.value);
        break;
      case 24:
        r.expect(f, 0, "treat_whitespace_as_suffix");
        m.treat_whitespace_as_suffix = f.value != 0;
        break;
      case 35:
        r.expect(f, 0, "byte_fallback");
        m.byte_fallback = f.value != 0;
        break;
      case 44:
        r.expect(f, 2, "unk_surface");
        m.unk_surface = f.bytes;
        break;
      case 45:
      case 46:
      case 47:
      case 48: {
        static constexpr const char* kNames[] = {"unk_piece", "bos_piece", "eos_piece", "pad_piece"};
        r.expect(f, 2, kNames[f.number - 45]);
        // The library falls back to the default name when the field is empty.
        if (f.bytes.empty()) break;
        std::string* slot[] = {&m.unk_piece, &m.bos_piece, &m.eos_piece, &m.pad_piece};
        *slot[f.number - 45] = f.bytes;
        break;
      }
      default:
        break;  // training-only parameters
    }
  }
}

// sentencepiece's string_util::OneCharLen: the length a lead byte announces (1 for
// continuation bytes).
inline size_t one_char_len(unsigned char c) { return "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4]; }

// string_util::IsValidDecodeUTF8: whether `s` starts with a well-formed character (U+FFFD
// itself counts as valid); *len is its length, or 1 when malformed.
bool spm_valid_utf8_prefix(std::string_view s, size_t* len) {
  auto trail = [&](size_t i) { return (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80; };
  auto ok = [](char32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); };
  const auto b0 = static_cast<unsigned char>(s[0]);
  *len = 1;
  if (b0 < 0x80) return true;
  const auto b = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(s[i]) & 0x3F); };
  if (s.size() >= 2 && (b0 & 0xE0) == 0xC0) {
    const char32_t c = (static_cast<char32_t>(b0 & 0x1F) << 6) | b(1);
    if (trail(1) && c >= 0x80 && ok(c)) return *len = 2, true;
  } else if (s.size() >= 3 && (b0 & 0xF0) == 0xE0) {
    const char32_t c = (static_cast<char32_t>(b0 & 0x0F) << 12) | (b(1) << 6) | b(2);
    if (trail(1) && trail(2) && c >= 0x800 && ok(c)) return *len = 3, true;
  } else if (s.size() >= 4 && (b0 & 0xF8) == 0xF0) {
    const char32_t c = (static_cast<char32_t>(b0 & 0x07) << 18) | (b(1) << 12) | (b(2) << 6) | b(3);
    if (trail(1) && trail(2) && trail(3) && c >= 0x10000 && ok(c)) return *len = 4, true;
  }
  return false;
}

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

std::string byte_piece(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

// The byte a "<0xXX>" piece stands for (uppercase hex, as the library writes them), or -1.
int piece_to_byte(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (char c : p.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

// A darts-clone double array (the precompiled charsmap's trie): 32-bit units.
class DoubleArray {
 public:
  DoubleArray() = default;
  explicit DoubleArray(std::string_view blob) {
    units_.resize(blob.size() / 4);
    for (size_t u = 0; u < units_.size(); ++u) {
      uint32_t v = 0;
      for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(blob[u * 4 + static_cast<size_t>(k)]);
      units_[u] = v;
    }
  }
  bool empty() const { return units_.empty(); }

  // Darts::DoubleArray::commonPrefixSearch over all of `key`: calls f(length, value) for
  // each key in the trie that prefixes it, shortest first.
  template <typename F>
  void common_prefix_search(std::string_view key, F&& f) const {
    if (units_.empty()) return;
    size_t id = offset(units_[0]);
    for (size_t i = 0; i < key.size(); ++i) {
      const auto c = static_cast<unsigned char>(key[i]);
      id ^= c;
      if (id >= units_.size()) return;
      const uint32_t unit = units_[id];
      if (label(unit) != c) return;
      id ^= offset(unit);
      if (id >= units_.size()) return;
      if (has_leaf(unit)) f(i + 1, value(units_[id]));
    }
  }

 private:
  static bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
  static uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }
  static uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
  static size_t offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

  std::vector<uint32_t> units_;
};

}  // namespace

SpmModelProto parse_spm_model_proto(std::string_view bytes, const std::string& label) {
  SpmModelProto m;
  WireReader r(bytes, label);
  WireReader::Field f;
  bool has_normalizer = false;
  while (r.next(&f)) {
    switch (f.number) {
      case 1: {
        r.expect(f, 2, "pieces");
        const std::string where = label + ": pieces[" + std::to_string(m.pieces.size()) + "]";
        SpmModelProto::Piece p;
        WireReader pr(f.bytes, where);
        WireReader::Field pf;
        while (pr.next(&pf)) {
          if (pf.number == 1) {
            pr.expect(pf, 2, "piece");
            p.piece = pf.bytes;
          } else if (pf.number == 2) {
            pr.expect(pf, 5, "score");
            p.score = float_of(pf.value);
          } else if (pf.number == 3) {
            pr.expect(pf, 0, "type");
            LUMEN_CHECK(pf.value >= 1 && pf.value <= 6, where, ".type: unknown value ", pf.value);
            p.type = static_cast<SpmModelProto::Type>(pf.value);
          }
        }
        m.pieces.push_back(std::move(p));
        break;
      }
      case 2:
        r.expect(f, 2, "trainer_spec");
        parse_trainer_spec(f.bytes, label + ": trainer_spec", m);
        break;
      case 3:
        r.expect(f, 2, "normalizer_spec");
        m.normalizer = parse_normalizer_spec(f.bytes, label + ": normalizer_spec");
        has_normalizer = true;
        break;
      case 5:
        r.expect(f, 2, "denormalizer_spec");
        m.denormalizer = parse_normalizer_spec(f.bytes, label + ": denormalizer_spec");
        break;
      default:
        break;  // self_test_data, extensions
    }
  }
  LUMEN_CHECK(!m.pieces.empty(), label, ": no pieces (not a SentencePiece model?)");
  (void)has_normalizer;  // absent: the defaults (no charsmap, dummy prefix, whitespace cleanup)
  return m;
}

// ---- Normalizer (normalizer.cc) ----

class SentencePieceModel::Normalizer {
 public:
  Normalizer(const SpmModelProto::NormalizerSpec& spec, bool treat_whitespace_as_suffix, const std::string& where,
             std::function<size_t(std::string_view)> matcher)
      : spec_(spec), suffix_(treat_whitespace_as_suffix), matcher_(std::move(matcher)) {
    const std::string& blob = spec.precompiled_charsmap;
    if (blob.empty()) return;
    // <trie size (u32 LE)><double array><NUL-separated replacement strings>
    LUMEN_CHECK(blob.size() > 4, where, ".precompiled_charsmap: blob is broken (", blob.size(), " bytes)");
    uint32_t trie_bytes = 0;
    for (int k = 3; k >= 0; --k) trie_bytes = (trie_bytes << 8) | static_cast<unsigned char>(blob[static_cast<size_t>(k)]);
    LUMEN_CHECK(trie_bytes < blob.size(), where, ".precompiled_charsmap: trie size ", trie_bytes,
                " exceeds the blob (", blob.size(), " bytes)");
    LUMEN_CHECK(trie_bytes <= blob.size() - 4, where, ".precompiled_charsmap: trie size ", trie_bytes,
                " exceeds the blob (", blob.size(), " bytes)");
    trie_ = DoubleArray(std::string_view(blob).substr(4, trie_bytes));
    normalized_ = blob.substr(4 + trie_bytes);
  }

  // NormalizePrefix: the replacement of the longest charsmap key (or user-defined symbol)
  // at the start of `input`, and the input bytes it consumes.
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view input) const {
    if (input.empty()) return {{}, 0};
    if (matcher_)
      if (size_t n = matcher_(input)) return {input.substr(0, n), n};
    size_t longest_length = 0, longest_value = 0, results = 0;
    trie_.common_prefix_search(input, [&](size_t length, uint32_t value) {
      // The library keeps the first kMaxTrieResultsSize (32) results.
      if (results++ >= 32) return;
      if (longest_length == 0 || length > longest_length) {
        longest_length = length;
        longest_value = value;
      }
    });
    if (longest_length == 0) {
      size_t len;
      if (!spm_valid_utf8_prefix(input, &len)) return {kReplacement, 1};
      return {input.substr(0, len), len};
    }
    LUMEN_CHECK(longest_value < normalized_.size(), "precompiled_charsmap: replacement offset ", longest_value,
                " is outside the replacement strings (", normalized_.size(), " bytes)");
    const size_t end = normalized_.find('\0', longest_value);
    return {std::string_view(normalized_).substr(longest_value, end == std::string::npos ? end : end - longest_value),
            longest_length};
  }

  // Normalizer::Normalize.
  void normalize(std::string_view input, std::string* normalized, std::vector<size_t>* norm_to_orig) const {
    normalized->clear();
    norm_to_orig->clear();
    if (input.empty()) return;
    size_t consumed = 0;
    if (spec_.remove_extra_whitespaces) {  // heading spaces
      while (!input.empty()) {
        const auto p = normalize_prefix(input);
        if (p.first != " ") break;
        input.remove_prefix(p.second);
        consumed += p.second;
      }
    }
    if (input.empty()) return;
    normalized->reserve(input.size() * 3);
    norm_to_orig->reserve(input.size() * 3);
    auto add_ws = [&] {
      if (spec_.escape_whitespaces) {
        normalized->append(kSpaceSymbol);
        norm_to_orig->insert(norm_to_orig->end(), kSpaceSymbol.size(), consumed);
      } else {
        normalized->push_back(' ');
        norm_to_orig->push_back(consumed);
      }
    };
    if (!suffix_ && spec_.add_dummy_prefix) add_ws();
    bool is_prev_space = spec_.remove_extra_whitespaces;
    while (!input.empty()) {
      auto [sp, n] = normalize_prefix(input);
      while (is_prev_space && !sp.empty() && sp.front() == ' ') sp.remove_prefix(1);
      if (!sp.empty()) {
        for (char c : sp) {
          if (spec_.escape_whitespaces && c == ' ') {
            normalized->append(kSpaceSymbol);
            norm_to_orig->insert(norm_to_orig->end(), kSpaceSymbol.size(), consumed);
          } else {
            normalized->push_back(c);
            norm_to_orig->push_back(consumed);
          }
        }
        is_prev_space = sp.back() == ' ';
      }
      consumed += n;
      input.remove_prefix(n);
      if (!spec_.remove_extra_whitespaces) is_prev_space = false;
    }
    if (spec_.remove_extra_whitespaces) {  // trailing spaces
      const std::string_view space = spec_.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
      while (normalized->size() >= space.size() && std::string_view(*normalized).ends_with(space)) {
        const size_t length = normalized->size() - space.size();
        consumed = (*norm_to_orig)[length];
        normalized->resize(length);
        norm_to_orig->resize(length);
      }
    }
    if (suffix_ && spec_.add_dummy_prefix) add_ws();
    norm_to_orig->push_back(consumed);
  }

  const SpmModelProto::NormalizerSpec& spec() const { return spec_; }

 private:
  SpmModelProto::NormalizerSpec spec_;
  bool suffix_;
  std::function<size_t(std::string_view)> matcher_;
  DoubleArray trie_;
  std::string normalized_;
};

// ---- A byte trie over the normal pieces (the Unigram lattice's darts trie) ----

class SentencePieceModel::Trie {
 public:
  void insert(std::string_view key, uint32_t id) {
    uint32_t node = 0;
    for (char ch : key) {
      const auto c = static_cast<unsigned char>(ch);
      if (const MergeTable::Merge* child = edges_.find(node, c)) {
        node = child->rank;
      } else {
        const auto next = static_cast<uint32_t>(values_.size());
        values_.push_back(-1);
        edges_.insert(node, c, {next, 0});
        node = next;
      }
    }
    values_[node] = static_cast<int64_t>(id);
  }
  // The child of `node` along byte `c`, or -1.
  int64_t child(uint32_t node, unsigned char c) const {
    const MergeTable::Merge* m = edges_.find(node, c);
    return m ? static_cast<int64_t>(m->rank) : -1;
  }
  int64_t value(uint32_t node) const { return values_[node]; }

 private:
  MergeTable edges_;                   // (node, byte) -> child node (in `rank`)
  std::vector<int64_t> values_{-1};    // piece id ending at each node, or -1
};

// ---- SentencePieceModel ----

SentencePieceModel::SentencePieceModel(SpmModelProto proto, const std::string& label)
    : proto_(std::move(proto)), label_(label) {
  using Type = SpmModelProto::Type;
  LUMEN_CHECK(proto_.model_type == SpmModelProto::ModelType::kUnigram || proto_.model_type == SpmModelProto::ModelType::kBpe,
              label, ": trainer_spec.model_type ", static_cast<int>(proto_.model_type),
              " (WORD/CHAR) is not supported; only UNIGRAM and BPE models are");
  LUMEN_CHECK(proto_.pieces.size() < (size_t{1} << 24), label, ": too many pieces (", proto_.pieces.size(), ")");
  // ModelInterface::InitializePieces.
  std::array<bool, 256> byte_found{};
  bool has_unk = false;
  normal_.reserve(proto_.pieces.size());
  for (size_t i = 0; i < proto_.pieces.size(); ++i) {
    const auto& sp = proto_.pieces[i];
    const auto id = static_cast<uint32_t>(i);
    const std::string where = label + ": pieces[" + std::to_string(i) + "]";
    LUMEN_CHECK(!sp.piece.empty(), where, ": piece must not be empty");
    LUMEN_CHECK(sp.piece.size() < 8000, where, ": piece is too long");
    LUMEN_CHECK(sp.piece.find('\0') == std::string::npos, where, ": piece must not include a NUL character");
    const bool is_normal = sp.type == Type::kNormal || sp.type == Type::kUserDefined || sp.type == Type::kUnused;
    Vocab& target = is_normal ? normal_ : reserved_;
    LUMEN_CHECK(!target.contains(sp.piece), where, ": '", sp.piece, "' is already defined");
    target.add(sp.piece, id);
    if (sp.type == Type::kUserDefined) user_defined_.push_back(sp.piece);
    if (sp.type == Type::kUnknown) {
      LUMEN_CHECK(!has_unk, where, ": unk is already defined");
      has_unk = true;
      unk_id_ = id;
    }
    if (sp.type == Type::kByte) {
      LUMEN_CHECK(proto_.byte_fallback, where, ": byte piece '", sp.piece, "' is found although byte_fallback is false");
      const int b = piece_to_byte(sp.piece);
      LUMEN_CHECK(b >= 0, where, ": byte piece '", sp.piece, "' is invalid");
      byte_found[static_cast<size_t>(b)] = true;
    }
  }
  LUMEN_CHECK(has_unk, label, ": unk is not defined (no piece of type UNKNOWN)");
  if (proto_.byte_fallback)
    LUMEN_CHECK(std::find(byte_found.begin(), byte_found.end(), false) == byte_found.end(), label,
                ": there are not 256 byte pieces although byte_fallback is true");
  std::sort(user_defined_.begin(), user_defined_.end());

  std::function<size_t(std::string_view)> matcher;
  if (!user_defined_.empty()) matcher = [this](std::string_view s) { return user_defined_prefix(s); };
  normalizer_ = std::make_shared<Normalizer>(proto_.normalizer, proto_.treat_whitespace_as_suffix,
                                             label + ": normalizer_spec", matcher);
  if (proto_.denormalizer && !proto_.denormalizer->precompiled_charsmap.empty())
    denormalizer_ = std::make_shared<Normalizer>(*proto_.denormalizer, false, label + ": denormalizer_spec", nullptr);

  if (proto_.model_type == SpmModelProto::ModelType::kUnigram) {
    auto trie = std::make_shared<Trie>();
    min_score_ = std::numeric_limits<float>::max();
    max_score_ = std::numeric_limits<float>::min();  // FLT_MIN, as the library starts it
    for (size_t i = 0; i < proto_.pieces.size(); ++i) {
      const auto& sp = proto_.pieces[i];
      if (sp.type == Type::kNormal) {
        min_score_ = std::min(min_score_, sp.score);
        max_score_ = std::max(max_score_, sp.score);
      }
      if (sp.type == Type::kNormal || sp.type == Type::kUserDefined || sp.type == Type::kUnused)
        trie->insert(sp.piece, static_cast<uint32_t>(i));
    }
    trie_ = std::move(trie);
  }
}

std::shared_ptr<const SentencePieceModel> SentencePieceModel::from_bytes(std::string_view bytes,
                                                                         const std::string& label) {
  return std::make_shared<const SentencePieceModel>(parse_spm_model_proto(bytes, label), label);
}

std::shared_ptr<const SentencePieceModel> SentencePieceModel::from_file(const std::string& path) {
  auto file = MappedFile::open(path);
  return from_bytes(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
}

size_t SentencePieceModel::user_defined_prefix(std::string_view s) const {
  // user_defined_ is sorted: candidates share the first byte.
  size_t best = 0;
  auto it = std::lower_bound(user_defined_.begin(), user_defined_.end(), s.substr(0, 1));
  for (; it != user_defined_.end() && !it->empty() && (*it)[0] == s[0]; ++it)
    if (it->size() > best && s.starts_with(*it)) best = it->size();
  return best;
}

std::optional<uint32_t> SentencePieceModel::find_piece(std::string_view piece) const {
  if (auto id = reserved_.find(piece)) return id;
  return normal_.find(piece);
}

uint32_t SentencePieceModel::piece_to_id(std::string_view piece) const { return find_piece(piece).value_or(unk_id_); }

std::optional<uint32_t> SentencePieceModel::control_id(const std::string& piece) const {
  const uint32_t id = piece_to_id(piece);
  if (type(id) == SpmModelProto::Type::kControl) return id;
  return std::nullopt;
}

std::string SentencePieceModel::normalize(std::string_view text, std::vector<size_t>* norm_to_orig) const {
  std::string out;
  std::vector<size_t> local;
  normalizer_->normalize(text, &out, norm_to_orig ? norm_to_orig : &local);
  return out;
}

// unigram::Model::EncodeOptimized: Viterbi over byte positions. Path scores are summed in
// float, as in the library builds the fixtures come from: with double sums, equal-score
// segmentations ("-" "--" vs "--" "-") break ties differently.
SentencePieceModel::Result SentencePieceModel::encode_unigram(std::string_view normalized) const {
  using Type = SpmModelProto::Type;
  Result results;
  if (normalized.empty()) return results;
  struct BestPathNode {
    int64_t id = -1;
    float best_path_score = 0;
    int64_t starts_at = -1;
  };
  constexpr float kUnkPenalty = 10.0f;
  const size_t size = normalized.size();
  const float unk_score = min_score_ - kUnkPenalty;
  std::vector<BestPathNode> best(size + 1);
  size_t starts_at = 0;
  while (starts_at < size) {
    const float base = best[starts_at].best_path_score;
    bool has_single_node = false;
    const size_t mblen = std::min(one_char_len(static_cast<unsigned char>(normalized[starts_at])), size - starts_at);
    uint32_t node = 0;
    for (size_t key_pos = starts_at; key_pos < size;) {
      const int64_t next = trie_->child(node, static_cast<unsigned char>(normalized[key_pos]));
      if (next < 0) break;
      node = static_cast<uint32_t>(next);
      ++key_pos;
      const int64_t ret = trie_->value(node);
      if (ret < 0) continue;
      const auto id = static_cast<uint32_t>(ret);
      const Type t = proto_.pieces[id].type;
      if (t == Type::kUnused) continue;
      BestPathNode& target = best[key_pos];
      const size_t length = key_pos - starts_at;
      const float score =
          t == Type::kUserDefined ? static_cast<float>(length) * max_score_ - 0.1f : proto_.pieces[id].score;
      const float candidate = score + base;
      if (target.starts_at == -1 || candidate > target.best_path_score) {
        target.best_path_score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = ret;
      }
      if (!has_single_node && length == mblen) has_single_node = true;
    }
    if (!has_single_node) {
      BestPathNode& target = best[starts_at + mblen];
      const float candidate = unk_score + base;
      if (target.starts_at == -1 || candidate > target.best_path_score) {
        target.best_path_score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = unk_id_;
      }
    }
    starts_at += mblen;
  }
  for (size_t ends_at = size; ends_at > 0;) {
    const BestPathNode& n = best[ends_at];
    const auto start = static_cast<size_t>(n.starts_at);
    results.emplace_back(normalized.substr(start, ends_at - start), static_cast<uint32_t>(n.id));
    ends_at = start;
  }
  std::reverse(results.begin(), results.end());
  return results;
}

// bpe::Model::SampleEncode with no dropout: repeatedly merge the adjacent pair whose joined
// piece has the highest score (leftmost on ties); UNUSED pieces are split back afterwards.
SentencePieceModel::Result SentencePieceModel::encode_bpe(std::string_view normalized) const {
  Result output;
  if (normalized.empty()) return output;
  struct Symbol {
    int prev, next;
    bool freeze;
    std::string_view piece;
  };
  struct SymbolPair {
    int left, right;
    float score;
    size_t size;
  };
  struct Compare {
    bool operator()(const SymbolPair& h1, const SymbolPair& h2) const {
      return h1.score < h2.score || (h1.score == h2.score && h1.left > h2.left);
    }
  };
  std::priority_queue<SymbolPair, std::vector<SymbolPair>, Compare> agenda;
  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  auto maybe_add_pair = [&](int left, int right) {
    if (left == -1 || right == -1 || symbols[static_cast<size_t>(left)].freeze ||
        symbols[static_cast<size_t>(right)].freeze)
      return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    const std::string_view piece(l.piece.data(), l.piece.size() + r.piece.size());
    const auto id = normal_.find(piece);
    if (!id) return;
    agenda.push({left, right, proto_.pieces[*id].score, piece.size()});
    if (proto_.pieces[*id].type == SpmModelProto::Type::kUnused) rev_merge[piece] = {l.piece, r.piece};
  };

  int index = 0;
  for (std::string_view rest = normalized; !rest.empty(); ++index) {
    Symbol s;
    const size_t user = user_defined_.empty() ? 0 : user_defined_prefix(rest);
    s.freeze = user > 0;
    const size_t mblen = user > 0 ? user : std::min(one_char_len(static_cast<unsigned char>(rest[0])), rest.size());
    s.piece = rest.substr(0, mblen);
    s.prev = index - 1;
    rest.remove_prefix(mblen);
    s.next = rest.empty() ? -1 : index + 1;
    symbols.push_back(s);
  }
  for (size_t i = 1; i < symbols.size(); ++i) maybe_add_pair(static_cast<int>(i - 1), static_cast<int>(i));

  while (!agenda.empty()) {
    const SymbolPair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[static_cast<size_t>(top.left)];
    Symbol& right = symbols[static_cast<size_t>(top.right)];
    if (left.piece.empty() || right.piece.empty() || left.piece.size() + right.piece.size() != top.size) continue;
    left.piece = std::string_view(left.piece.data(), left.piece.size() + right.piece.size());
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.left;
    right.piece = {};
    maybe_add_pair(left.prev, top.left);
    maybe_add_pair(top.left, left.next);
  }

  std::function<void(std::string_view)> resegment = [&](std::string_view w) {
    const uint32_t id = piece_to_id(w);
    if (proto_.pieces[id].type != SpmModelProto::Type::kUnused) {
      output.emplace_back(w, id);
      return;
    }
    const auto p = rev_merge.find(w);
    if (p == rev_merge.end()) {
      output.emplace_back(w, id);
      return;
    }
    resegment(p->second.first);
    resegment(p->second.second);
  };
  for (int i = 0; i != -1; i = symbols[static_cast<size_t>(i)].next) resegment(symbols[static_cast<size_t>(i)].piece);
  return output;
}

// SentencePieceProcessor::Encode + PopulateSentencePieceText.
std::vector<SentencePieceModel::Piece> SentencePieceModel::encode(std::string_view text) const {
  std::vector<size_t> norm_to_orig;
  const std::string normalized = normalize(text, &norm_to_orig);
  const Result result =
      proto_.model_type == SpmModelProto::ModelType::kBpe ? encode_bpe(normalized) : encode_unigram(normalized);
  std::vector<Piece> out;
  out.reserve(result.size());
  size_t consumed = 0;
  bool is_prev_unk = false;
  for (const auto& [w, id] : result) {
    const SpmModelProto::Type t = proto_.pieces[id].type;
    const bool is_unk = t == SpmModelProto::Type::kUnknown;
    // The library stops with "all normalized characters are not consumed" here.
    LUMEN_CHECK(t != SpmModelProto::Type::kControl, label_, ": the text segments into control piece '",
                proto_.pieces[id].piece, "', which the library rejects");
    const size_t begin = norm_to_orig[consumed];
    const size_t end = norm_to_orig[consumed + w.size()];
    if (is_unk && proto_.byte_fallback) {
      for (size_t i = 0; i < w.size(); ++i) {
        const std::string bp = byte_piece(static_cast<unsigned char>(w[i]));
        const uint32_t bid = piece_to_id(bp);
        out.push_back({bp, bid, begin, i + 1 == w.size() ? end : begin});
      }
    } else if (is_prev_unk && is_unk) {
      out.back().piece.append(w);
      out.back().end = end;
    } else {
      out.push_back({std::string(w), id, begin, end});
    }
    consumed += w.size();
    is_prev_unk = is_unk;
  }
  return out;
}

// SentencePieceProcessor::Decode.
std::string SentencePieceModel::decode(const std::vector<int64_t>& ids) const {
  using Type = SpmModelProto::Type;
  const auto& nspec = proto_.normalizer;
  std::string text;
  std::string bytes;  // a pending run of byte pieces
  auto flush_bytes = [&] {
    for (size_t offset = 0; offset < bytes.size();) {
      size_t consumed;
      if (spm_valid_utf8_prefix(std::string_view(bytes).substr(offset), &consumed)) {
        text.append(bytes, offset, consumed);
      } else {
        text.append(kReplacement);
      }
      offset += consumed;
    }
    bytes.clear();
  };
  bool is_bos_ws = true;  // whether a leading U+2581 is still to be consumed
  bool bos_ws_seen = false;
  for (int64_t raw : ids) {
    if (raw < 0 || static_cast<uint64_t>(raw) >= size()) continue;
    // The library maps ids to pieces and back (the reserved map wins for a duplicated string).
    const uint32_t id = piece_to_id(proto_.pieces[static_cast<size_t>(raw)].piece);
    std::string_view piece = proto_.pieces[id].piece;
    const Type t = proto_.pieces[id].type;
    if (t == Type::kByte) {
      bytes.push_back(static_cast<char>(piece_to_byte(piece)));
      continue;
    }
    flush_bytes();
    if (bos_ws_seen || !text.empty()) is_bos_ws = false;
    bos_ws_seen = false;
    if (t == Type::kControl) continue;
    if (t == Type::kUnknown) {
      text.append(proto_.unk_surface);
      continue;
    }
    if (is_bos_ws && (nspec.add_dummy_prefix || nspec.remove_extra_whitespaces)) {
      bos_ws_seen = piece.starts_with(kSpaceSymbol);
      if (bos_ws_seen) piece.remove_prefix(kSpaceSymbol.size());
      if (nspec.remove_extra_whitespaces) bos_ws_seen = false;
    }
    for (size_t pos = 0; pos < piece.size();) {
      const size_t hit = piece.find(kSpaceSymbol, pos);
      if (hit == std::string_view::npos) {
        text.append(piece.substr(pos));
        break;
      }
      text.append(piece.substr(pos, hit - pos));
      text.push_back(' ');
      pos = hit + kSpaceSymbol.size();
    }
  }
  flush_bytes();
  if (denormalizer_) {
    std::string out;
    std::vector<size_t> unused;
    denormalizer_->normalize(text, &out, &unused);
    return out;
  }
  return text;
}

}  // namespace lumen::text

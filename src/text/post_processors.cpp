// Post-processors (reference: tokenizers/src/processors/*.rs), for one sequence or a pair.
#include <map>

#include "text/components.h"

namespace lumen::text {

Encoding PostProcessor::process(Encoding enc, Encoding* pair, bool add_special_tokens) const {
  std::vector<Encoding> encs;
  encs.push_back(std::move(enc));
  if (pair) encs.push_back(std::move(*pair));
  for (size_t i = 0; i < encs.size(); ++i) std::fill(encs[i].type_ids.begin(), encs[i].type_ids.end(), int64_t(i));
  encs = process_encodings(std::move(encs), add_special_tokens);
  if (encs.empty()) return {};
  Encoding out = std::move(encs[0]);
  for (size_t i = 1; i < encs.size(); ++i) out.append(encs[i]);
  return out;
}

namespace {

// Shrinks offsets so they exclude the leading/trailing spaces a byte-level token carries
// (processors/byte_level.rs process_offsets). Offsets are in characters here.
void trim_byte_level_offsets(Encoding& enc, bool add_prefix_space) {
  const char32_t space = byte_to_char(' ');
  auto is_space = [&](char32_t c) { return c == space || is_white_space(c); };
  for (size_t i = 0; i < enc.size(); ++i) {
    const std::u32string chars = decode_utf8(enc.tokens[i]);
    size_t leading = 0, trailing = 0;
    while (leading < chars.size() && is_space(chars[leading])) ++leading;
    while (trailing < chars.size() && is_space(chars[chars.size() - 1 - trailing])) ++trailing;
    if (leading == 0 && trailing == 0) continue;
    Offsets& o = enc.offsets[i];
    if (leading > 0) {
      const bool is_first = i == 0 || o.first == 0;
      if (is_first && add_prefix_space && leading == 1) leading = 0;  // keep the space we added
      o.first = std::min(o.first + leading, o.second);
    }
    if (trailing > 0 && o.second >= trailing) o.second = std::max(o.second - trailing, o.first);
  }
}

// Specials around one sequence: [first...] seq [last...].
// The specials take type id `type_id`; the sequence keeps its own.
Encoding wrap(const Encoding& seq, const std::vector<std::pair<std::string, uint32_t>>& before,
              const std::vector<std::pair<std::string, uint32_t>>& after, int64_t type_id = 0) {
  Encoding out;
  auto add_special = [&](const std::pair<std::string, uint32_t>& t) {
    out.ids.push_back(t.second);
    out.tokens.push_back(t.first);
    out.offsets.emplace_back(0, 0);
    out.type_ids.push_back(type_id);
    out.special_tokens_mask.push_back(1);
    out.attention_mask.push_back(1);
    out.word_ids.push_back(-1);
  };
  for (const auto& t : before) add_special(t);
  out.append(seq);
  for (const auto& t : after) add_special(t);
  return out;
}

std::pair<std::string, uint32_t> token_pair(const Fields& f, const std::string& key) {
  const json& v = f.get(key);
  LUMEN_CHECK(v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_unsigned(), f.at(key),
              ": expected [\"token\", id]");
  const uint64_t id = v[1].get<uint64_t>();
  LUMEN_CHECK(id <= UINT32_MAX, f.at(key), ": id out of range");
  return {v[0].get<std::string>(), static_cast<uint32_t>(id)};
}

class ByteLevelPost : public PostProcessor {
 public:
  explicit ByteLevelPost(const Fields& f)
      : trim_offsets_(f.boolean("trim_offsets", true)), add_prefix_space_(f.boolean("add_prefix_space", true)) {}
  size_t added_tokens(bool) const override { return 0; }
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs, bool) const override {
    if (trim_offsets_)
      for (Encoding& enc : encs) trim_byte_level_offsets(enc, add_prefix_space_);
    return encs;
  }

 private:
  bool trim_offsets_, add_prefix_space_;
};

class RobertaProcessing : public PostProcessor {
 public:
  explicit RobertaProcessing(const Fields& f)
      : sep_(token_pair(f, "sep")),
        cls_(token_pair(f, "cls")),
        trim_offsets_(f.boolean("trim_offsets", true)),
        add_prefix_space_(f.boolean("add_prefix_space", true)) {}
  size_t added_tokens(bool pair) const override { return pair ? 4 : 2; }
  // <s> A </s> </s> B </s>, every type id 0 (roberta.rs: "Roberta is weird").
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs, bool add_special_tokens) const override {
    for (Encoding& enc : encs) {
      if (trim_offsets_) trim_byte_level_offsets(enc, add_prefix_space_);
      std::fill(enc.type_ids.begin(), enc.type_ids.end(), 0);
    }
    if (!add_special_tokens) return encs;
    for (size_t i = 0; i < encs.size(); ++i) encs[i] = wrap(encs[i], {i == 0 ? cls_ : sep_}, {sep_});
    return encs;
  }

 private:
  std::pair<std::string, uint32_t> sep_, cls_;
  bool trim_offsets_, add_prefix_space_;
};

class BertProcessing : public PostProcessor {
 public:
  explicit BertProcessing(const Fields& f) : sep_(token_pair(f, "sep")), cls_(token_pair(f, "cls")) {}
  size_t added_tokens(bool pair) const override { return pair ? 3 : 2; }
  // [CLS] A [SEP] B [SEP], type ids 0 up to the first [SEP], 1 after.
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs, bool add_special_tokens) const override {
    if (!add_special_tokens) return encs;
    encs[0] = wrap(encs[0], {cls_}, {sep_}, 0);
    for (size_t i = 1; i < encs.size(); ++i) encs[i] = wrap(encs[i], {}, {sep_}, 1);
    return encs;
  }

 private:
  std::pair<std::string, uint32_t> sep_, cls_;
};

class TemplateProcessing : public PostProcessor {
 public:
  explicit TemplateProcessing(const Fields& f) {
    // special_tokens: {"[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["[CLS]"]}, ...}
    const Fields specials = f.object("special_tokens");
    for (const auto& [name, value] : specials.raw().items()) {
      const Fields st(value, specials.at(name));
      const json& ids = st.array("ids");
      const json& tokens = st.array("tokens");
      LUMEN_CHECK(ids.size() == tokens.size(), st.where(), ": ids and tokens must have the same length");
      std::vector<std::pair<std::string, uint32_t>> seq;
      for (size_t i = 0; i < ids.size(); ++i) {
        LUMEN_CHECK(ids[i].is_number_unsigned() && ids[i].get<uint64_t>() <= UINT32_MAX && tokens[i].is_string(),
                    st.where(), ": bad id/token at ", i);
        seq.emplace_back(tokens[i].get<std::string>(), static_cast<uint32_t>(ids[i].get<uint64_t>()));
      }
      specials_[name] = std::move(seq);
    }
    single_ = parse_template(f, "single");
    // Serialized tokenizers always carry "pair"; without it a pair cannot be encoded.
    if (f.has("pair")) {
      pair_ = parse_template(f, "pair");
      has_pair_ = true;
    }
    where_ = f.where();
    added_single_ = count_added(single_);
    added_pair_ = count_added(pair_);
  }

  size_t added_tokens(bool pair) const override { return pair ? added_pair_ : added_single_; }

  std::vector<Encoding> process_encodings(std::vector<Encoding> encs, bool add_special_tokens) const override {
    const bool pair = encs.size() > 1;
    LUMEN_CHECK(!pair || has_pair_, where_, ": no \"pair\" template, so a pair of texts cannot be encoded");
    Encoding out;
    for (const Piece& p : pair ? pair_ : single_) {
      if (p.is_sequence) {
        const size_t i = p.sequence_b ? 1 : 0;
        LUMEN_CHECK(i < encs.size(), "TemplateProcessing: the single template uses sequence $B");
        Encoding seq = encs[i];
        std::fill(seq.type_ids.begin(), seq.type_ids.end(), p.type_id);
        out.append(seq);
      } else if (add_special_tokens) {
        for (const auto& [token, id] : specials_.at(p.special)) {
          out.ids.push_back(id);
          out.tokens.push_back(token);
          out.offsets.emplace_back(0, 0);
          out.type_ids.push_back(p.type_id);
          out.special_tokens_mask.push_back(1);
          out.attention_mask.push_back(1);
          out.word_ids.push_back(-1);
        }
      }
    }
    std::vector<Encoding> result;
    result.push_back(std::move(out));
    return result;
  }

 private:
  struct Piece {
    bool is_sequence;
    bool sequence_b;
    std::string special;
    int64_t type_id;
  };

  std::vector<Piece> parse_template(const Fields& f, const std::string& key) const {
    const json& list = f.array(key);
    std::vector<Piece> out;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = f.at(key) + "[" + std::to_string(i) + "]";
      const Fields item(list[i], where);
      if (item.has("Sequence")) {
        const Fields s = item.object("Sequence");
        const std::string id = s.str("id");
        LUMEN_CHECK(id == "A" || id == "B", s.at("id"), ": expected \"A\" or \"B\"");
        out.push_back({true, id == "B", "", static_cast<int64_t>(s.uint("type_id"))});
      } else if (item.has("SpecialToken")) {
        const Fields s = item.object("SpecialToken");
        const std::string id = s.str("id");
        LUMEN_CHECK(specials_.count(id), s.at("id"), ": special token '", id, "' is not in special_tokens");
        out.push_back({false, false, id, static_cast<int64_t>(s.uint("type_id"))});
      } else {
        fail(where, ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    return out;
  }

  size_t count_added(const std::vector<Piece>& pieces) const {
    size_t n = 0;
    for (const Piece& p : pieces)
      if (!p.is_sequence) n += specials_.at(p.special).size();
    return n;
  }

  std::map<std::string, std::vector<std::pair<std::string, uint32_t>>> specials_;
  std::vector<Piece> single_, pair_;
  bool has_pair_ = false;
  std::string where_;
  size_t added_single_ = 0, added_pair_ = 0;
};

class SequencePost : public PostProcessor {
 public:
  explicit SequencePost(const Fields& f) {
    const json& list = f.array("processors");
    for (size_t i = 0; i < list.size(); ++i)
      parts_.push_back(PostProcessor::from_json(list[i], f.at("processors") + "[" + std::to_string(i) + "]"));
  }
  size_t added_tokens(bool pair) const override {
    size_t n = 0;
    for (const auto& p : parts_) n += p->added_tokens(pair);
    return n;
  }
  std::vector<Encoding> process_encodings(std::vector<Encoding> encs, bool add_special_tokens) const override {
    for (const auto& p : parts_) encs = p->process_encodings(std::move(encs), add_special_tokens);
    return encs;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

}  // namespace

std::unique_ptr<PostProcessor> PostProcessor::from_json(const json& j, const std::string& where) {
  const Fields f(j, where);
  const std::string type = f.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevelPost>(f);
  if (type == "RobertaProcessing") return std::make_unique<RobertaProcessing>(f);
  if (type == "BertProcessing") return std::make_unique<BertProcessing>(f);
  if (type == "TemplateProcessing") return std::make_unique<TemplateProcessing>(f);
  if (type == "Sequence") return std::make_unique<SequencePost>(f);
  fail(f.at("type"), ": unknown post-processor type '", type, "'");
}

}  // namespace lumen::text

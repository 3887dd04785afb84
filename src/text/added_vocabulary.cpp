#include "text/added_vocabulary.h"

#include <algorithm>

namespace lumen::text {

void AddedVocabulary::Trie::add(std::string_view s, uint32_t id) {
  uint32_t node = 0;
  for (char ch : s) {
    auto& children = next[node];
    auto it = children.find(static_cast<unsigned char>(ch));
    if (it == children.end()) {
      const auto child = static_cast<uint32_t>(next.size());
      children.emplace(static_cast<unsigned char>(ch), child);
      next.emplace_back();
      value.push_back(-1);
      node = child;
    } else {
      node = it->second;
    }
  }
  value[node] = id;
}

size_t AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos, uint32_t* id) const {
  size_t best = 0;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& children = next[node];
    auto it = children.find(static_cast<unsigned char>(text[i]));
    if (it == children.end()) break;
    node = it->second;
    if (value[node] >= 0) {
      best = i + 1;
      *id = static_cast<uint32_t>(value[node]);
    }
  }
  return best;
}

void AddedVocabulary::add_tokens(const std::vector<AddedToken>& tokens, const Model& model,
                                 const Normalizer* normalizer) {
  const auto model_size = static_cast<uint32_t>(model.vocab_size());
  uint32_t next_id = model_size;
  if (!by_id_.empty()) {
    uint32_t max = 0;
    for (const auto& [id, t] : by_id_) max = std::max(max, id);
    next_id = (max >= model_size || model_size == 0) ? max + 1 : model_size;
  }
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    if (auto it = by_content_.find(t.content); it != by_content_.end()) {
      const AddedToken& old = by_id_.at(it->second);
      if (old.single_word == t.single_word && old.lstrip == t.lstrip && old.rstrip == t.rstrip &&
          old.normalized == t.normalized && old.special == t.special)
        continue;
    }
    uint32_t id;
    if (auto known = token_to_id(t.content)) id = *known;
    else if (auto in_model = model.token_to_id(t.content)) id = *in_model;
    else id = next_id++;
    if (t.normalized && normalizer) {
      NormalizedString s(t.content);
      normalizer->normalize(s);
      if (s.get() != t.content) normalized_form_[id] = s.get();
    }
    by_content_[t.content] = id;
    if (t.special) special_.insert(t.content);
    by_id_[id] = t;
    id_end_ = std::max(id_end_, id + 1);
  }
  rebuild_tries();
}

void AddedVocabulary::rebuild_tries() {
  trie_ = Trie{};
  normalized_trie_ = Trie{};
  // Sorted by id so that duplicate patterns resolve the same way on every run.
  std::vector<uint32_t> ids;
  for (const auto& [id, t] : by_id_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint32_t id : ids) {
    const AddedToken& t = by_id_.at(id);
    if (t.normalized) {
      auto it = normalized_form_.find(id);
      normalized_trie_.add(it != normalized_form_.end() ? it->second : t.content, id);
    } else {
      trie_.add(t.content, id);
    }
  }
}

std::optional<uint32_t> AddedVocabulary::token_to_id(std::string_view token) const {
  auto it = by_content_.find(std::string(token));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const AddedToken* AddedVocabulary::token_of(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

std::optional<std::string> AddedVocabulary::decode_token(uint32_t id) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  auto n = normalized_form_.find(id);
  return n != normalized_form_.end() ? n->second : it->second.content;
}

std::vector<std::pair<std::optional<uint32_t>, Offsets>> AddedVocabulary::find_matches(std::string_view sentence,
                                                                                        const Trie& trie) const {
  if (sentence.empty()) return {{std::nullopt, {0, 0}}};
  if (trie.empty()) return {{std::nullopt, {0, sentence.size()}}};
  auto first_char = [&](size_t pos) {
    size_t len;
    return decode_utf8_at(sentence, pos, &len);
  };
  auto last_char_before = [&](size_t pos) {
    size_t b = pos - 1;
    while (b > 0 && is_utf8_continuation(static_cast<unsigned char>(sentence[b]))) --b;
    size_t len;
    return decode_utf8_at(sentence, b, &len);
  };
  std::vector<std::pair<std::optional<uint32_t>, Offsets>> splits;
  size_t start_offset = 0;
  for (size_t pos = 0; pos < sentence.size();) {
    uint32_t id = 0;
    const size_t end = trie.longest_at(sentence, pos, &id);
    if (end == 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = end;
    pos = end;
    const AddedToken& t = by_id_.at(id);
    if (t.single_word) {
      const bool start_space = start == 0 || !is_word_char(last_char_before(start));
      const bool stop_space = stop == sentence.size() || !is_word_char(first_char(stop));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t s = start;  // start of the whitespace run that ends at `start`
      while (s > 0 && is_white_space(last_char_before(s))) s -= utf8_len(last_char_before(s));
      start = std::max(s, start_offset);
    }
    if (t.rstrip) {
      while (stop < sentence.size() && is_white_space(first_char(stop))) stop += utf8_len(first_char(stop));
    }
    if (start_offset < start) splits.push_back({std::nullopt, {start_offset, start}});
    splits.push_back({id, {start, stop}});
    start_offset = stop;
  }
  if (start_offset != sentence.size()) splits.push_back({std::nullopt, {start_offset, sentence.size()}});
  return splits;
}

void AddedVocabulary::split_with(PreTokenizedString& pts, const Trie& trie) const {
  pts.split([&](size_t, NormalizedString&& sentence) {
    std::vector<PreTokenizedString::Split> out;
    for (const auto& [id, range] : find_matches(sentence.get(), trie)) {
      std::optional<NormalizedString> slice = sentence.slice(range.first, range.second);
      LUMEN_CHECK(slice.has_value(), "tokenizer: added-token split is not on a character boundary");
      if (id) {
        std::string value = slice->get();
        const size_t len = value.size();
        out.push_back({std::move(*slice), std::vector<Token>{Token{*id, std::move(value), {0, len}}}});
      } else {
        out.push_back({std::move(*slice), std::nullopt});
      }
    }
    return out;
  });
}

PreTokenizedString AddedVocabulary::extract_and_normalize(const Normalizer* normalizer, std::string_view text) const {
  PreTokenizedString pts{NormalizedString(std::string(text))};
  split_with(pts, trie_);
  pts.normalize([&](NormalizedString& s) {
    if (normalizer) normalizer->normalize(s);
  });
  split_with(pts, normalized_trie_);
  return pts;
}

}  // namespace lumen::text

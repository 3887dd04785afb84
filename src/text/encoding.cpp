#include "text/encoding.h"

namespace lumen::text {

void Encoding::append(const Encoding& o) {
  ids.insert(ids.end(), o.ids.begin(), o.ids.end());
  tokens.insert(tokens.end(), o.tokens.begin(), o.tokens.end());
  offsets.insert(offsets.end(), o.offsets.begin(), o.offsets.end());
  type_ids.insert(type_ids.end(), o.type_ids.begin(), o.type_ids.end());
  special_tokens_mask.insert(special_tokens_mask.end(), o.special_tokens_mask.begin(), o.special_tokens_mask.end());
  attention_mask.insert(attention_mask.end(), o.attention_mask.begin(), o.attention_mask.end());
  word_ids.insert(word_ids.end(), o.word_ids.begin(), o.word_ids.end());
}

void Encoding::truncate(size_t max_len) {
  if (ids.size() <= max_len) return;
  ids.resize(max_len);
  tokens.resize(max_len);
  offsets.resize(max_len);
  type_ids.resize(max_len);
  special_tokens_mask.resize(max_len);
  attention_mask.resize(max_len);
  word_ids.resize(max_len);
}

}  // namespace lumen::text

// Tokenization models (reference: tokenizers/src/models/{bpe,wordpiece,wordlevel,unigram}).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "text/components.h"

namespace lumen::text {

void MergeList::add(std::string_view left, std::string_view right) {
  LUMEN_CHECK(text_.size() + left.size() + right.size() < (uint64_t{1} << 32), "merges: too much text");
  spans_.push_back({static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(left.size()),
                    static_cast<uint32_t>(right.size())});
  text_.append(left);
  text_.append(right);
}

namespace {

std::string byte_token(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

// ---- BPE ----

class Bpe : public Model {
 public:
  Bpe(ModelData data, const std::string& where) : vocab_(std::move(data.vocab)) {
    const Fields f(data.rest, where);
    if (f.has("dropout")) {
      const double p = f.number("dropout");
      LUMEN_CHECK(p >= 0.0 && p <= 1.0, f.at("dropout"), ": must be in [0, 1]");
      // Dropout only matters for training; encoding here is deterministic (dropout 0).
    }
    unk_token_ = f.opt_str("unk_token");
    prefix_ = f.opt_str("continuing_subword_prefix");
    suffix_ = f.opt_str("end_of_word_suffix");
    fuse_unk_ = f.boolean("fuse_unk", false);
    byte_fallback_ = f.boolean("byte_fallback", false);
    ignore_merges_ = f.boolean("ignore_merges", false);

    // Merges -> (left id, right id) -> (rank, merged id). Lookups are software-pipelined:
    // hashes are computed and slots prefetched kAhead merges early.
    const size_t prefix_len = prefix_ ? prefix_->size() : 0;
    const size_t n = data.merges.size();
    constexpr size_t kAhead = 8;
    struct Hashes {
      uint32_t a, b, merged;
    };
    std::vector<Hashes> ring(kAhead);
    std::string merged;
    auto merged_of = [&](size_t i) -> std::string_view {
      if (prefix_len == 0) return data.merges.both(i);
      const std::string_view b = data.merges.right(i);
      LUMEN_CHECK(b.size() >= prefix_len, where, ".merges[", i, "]: token '", b, "' is shorter than the subword prefix");
      merged.assign(data.merges.left(i));
      merged.append(b.substr(prefix_len));
      return merged;
    };
    auto stage = [&](size_t i) {
      Hashes& h = ring[i % kAhead];
      h = {Vocab::hash_of(data.merges.left(i)), Vocab::hash_of(data.merges.right(i)), Vocab::hash_of(merged_of(i))};
      vocab_.prefetch(h.a);
      vocab_.prefetch(h.b);
      vocab_.prefetch(h.merged);
    };
    std::vector<std::array<uint32_t, 3>> ids(n);  // left, right, merged
    for (size_t i = 0; i < std::min(n, kAhead); ++i) stage(i);
    for (size_t i = 0; i < n; ++i) {
      const Hashes h = ring[i % kAhead];
      const std::string_view a = data.merges.left(i), b = data.merges.right(i);
      const auto a_id = vocab_.find(a, h.a);
      const auto b_id = vocab_.find(b, h.b);
      LUMEN_CHECK(a_id, where, ".merges[", i, "]: token '", a, "' is not in the vocab");
      LUMEN_CHECK(b_id, where, ".merges[", i, "]: token '", b, "' is not in the vocab");
      const std::string_view m = merged_of(i);
      const auto m_id = vocab_.find(m, h.merged);
      LUMEN_CHECK(m_id, where, ".merges[", i, "]: merged token '", m, "' is not in the vocab");
      ids[i] = {*a_id, *b_id, *m_id};
      if (i + kAhead < n) stage(i + kAhead);
    }
    merges_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) merges_.prefetch(ids[i + kAhead][0], ids[i + kAhead][1]);
      merges_.insert(ids[i][0], ids[i][1], {static_cast<uint32_t>(i), ids[i][2]});
    }
    byte_ids_.fill(-1);
    if (byte_fallback_)
      for (int b = 0; b < 256; ++b)
        if (auto id = vocab_.find(byte_token(static_cast<uint8_t>(b)))) byte_ids_[static_cast<size_t>(b)] = *id;
  }

  std::vector<Token> tokenize(std::string_view piece) const override {
    if (piece.empty()) return {};
    if (ignore_merges_)
      if (auto id = vocab_.find(piece)) return {Token{*id, std::string(piece), {0, piece.size()}}};
    // Words repeat (the reference caches them too): merge each distinct short word once.
    std::vector<std::pair<uint32_t, uint32_t>> parts;  // (id, byte length)
    const bool cacheable = piece.size() <= kMaxCachedWordBytes;
    bool cached = false;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (auto it = cache_.find(std::string(piece)); it != cache_.end()) {
        parts = it->second;
        cached = true;
      }
    }
    if (!cached) {
      const std::vector<Symbol> word = merge_word(piece);
      parts.reserve(word.size());
      for (const Symbol& s : word) parts.emplace_back(s.id, static_cast<uint32_t>(s.len));
      if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mu_);
        if (cache_.size() < kMaxCachedWords) cache_.emplace(std::string(piece), parts);
      }
    }
    std::vector<Token> out;
    out.reserve(parts.size());
    size_t pos = 0;
    for (const auto& [id, len] : parts) {
      out.push_back({id, std::string(vocab_.token(id).value_or("")), {pos, pos + len}});
      pos += len;
    }
    return out;
  }

  std::optional<uint32_t> token_to_id(std::string_view t) const override { return vocab_.find(t); }
  std::optional<std::string> id_to_token(uint32_t id) const override {
    if (auto t = vocab_.token(id)) return std::string(*t);
    return std::nullopt;
  }
  size_t vocab_size() const override { return vocab_.size(); }

 private:
  struct Symbol {
    uint32_t id;
    int32_t prev, next;
    size_t len;  // bytes of the piece it covers; 0 once merged into its left neighbour
  };

  static void add_symbol(std::vector<Symbol>& w, uint32_t id, size_t len) {
    const auto n = static_cast<int32_t>(w.size());
    if (!w.empty()) w.back().next = n;
    w.push_back({id, n - 1, -1, len});
  }

  uint32_t unk_id() const {
    auto id = vocab_.find(*unk_token_);
    LUMEN_CHECK(id, "BPE: unk token '", *unk_token_, "' is not in the vocab");
    return *id;
  }

  // Initial symbols (one per character, with prefix/suffix, unknown handling), then merges
  // by rank (BPE::merge_word and Word::merge_all).
  std::vector<Symbol> merge_word(std::string_view w) const {
    std::vector<Symbol> word;
    word.reserve(w.size());
    // A pending unknown token: (id, byte length); fused with the next one when fuse_unk.
    bool has_unk = false;
    uint32_t unk_tok = 0;
    size_t unk_len = 0;
    std::string s;
    for (size_t i = 0; i < w.size();) {
      const size_t byte_len = utf8_seq_len(static_cast<unsigned char>(w[i]));
      const bool is_first = i == 0;
      const bool is_last = i + byte_len >= w.size();
      s.clear();
      if (!is_first && prefix_) s += *prefix_;
      s.append(w.substr(i, byte_len));
      if (is_last && suffix_) s += *suffix_;
      i += byte_len;
      if (auto id = vocab_.find(s)) {
        if (has_unk) {
          add_symbol(word, unk_tok, unk_len);
          has_unk = false;
        }
        add_symbol(word, *id, byte_len);
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (char ch : s) all = all && byte_ids_[static_cast<unsigned char>(ch)] >= 0;
        if (all) {
          for (char ch : s) add_symbol(word, static_cast<uint32_t>(byte_ids_[static_cast<unsigned char>(ch)]), 1);
          continue;
        }
      }
      if (unk_token_) {
        if (has_unk && fuse_unk_) {
          unk_len += byte_len;
        } else {
          if (has_unk) add_symbol(word, unk_tok, unk_len);
          has_unk = true;
          unk_tok = unk_id();
          unk_len = byte_len;
        }
      }
    }
    if (has_unk) add_symbol(word, unk_tok, unk_len);
    merge_all(word);
    return word;
  }

  struct QueuedMerge {
    uint32_t rank;
    int32_t pos;
    uint32_t new_id;
    bool operator<(const QueuedMerge& o) const {  // priority_queue pops the lowest rank, then pos
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };

  void merge_all(std::vector<Symbol>& w) const {
    std::priority_queue<QueuedMerge> queue;
    for (size_t i = 0; i + 1 < w.size(); ++i)
      if (const MergeTable::Merge* m = merges_.find(w[i].id, w[i + 1].id))
        queue.push({m->rank, static_cast<int32_t>(i), m->id});
    while (!queue.empty()) {
      const QueuedMerge top = queue.top();
      queue.pop();
      Symbol& cur = w[static_cast<size_t>(top.pos)];
      if (cur.len == 0 || cur.next == -1) continue;
      const Symbol right = w[static_cast<size_t>(cur.next)];
      const MergeTable::Merge* m = merges_.find(cur.id, right.id);
      if (!m || m->id != top.new_id) continue;  // stale entry
      w[static_cast<size_t>(cur.next)].len = 0;
      cur.id = top.new_id;
      cur.len += right.len;
      cur.next = right.next;
      if (right.next >= 0) w[static_cast<size_t>(right.next)].prev = top.pos;
      if (cur.prev >= 0)
        if (const MergeTable::Merge* p = merges_.find(w[static_cast<size_t>(cur.prev)].id, cur.id))
          queue.push({p->rank, cur.prev, p->id});
      if (cur.next >= 0)
        if (const MergeTable::Merge* n = merges_.find(cur.id, w[static_cast<size_t>(cur.next)].id))
          queue.push({n->rank, top.pos, n->id});
    }
    std::erase_if(w, [](const Symbol& s) { return s.len == 0; });
  }

  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kMaxCachedWords = 1 << 17;
  // word -> its merged (id, length) parts; results never depend on anything but the word.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> cache_;

  Vocab vocab_;
  MergeTable merges_;
  std::optional<std::string> unk_token_, prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int64_t, 256> byte_ids_{};
};

// ---- WordPiece ----

class WordPiece : public Model {
 public:
  WordPiece(ModelData data, const std::string& where) : vocab_(std::move(data.vocab)) {
    const Fields f(data.rest, where);
    unk_token_ = f.str("unk_token", "[UNK]");
    prefix_ = f.str("continuing_subword_prefix", "##");
    max_chars_ = f.uint("max_input_chars_per_word", 100);
  }

  std::vector<Token> tokenize(std::string_view seq) const override {
    if (count_chars(seq) > max_chars_) return {unk(seq)};
    std::vector<Token> out;
    std::string sub;
    for (size_t start = 0; start < seq.size();) {
      size_t end = seq.size();
      bool found = false;
      while (start < end) {
        sub.clear();
        if (start > 0) sub = prefix_;
        sub.append(seq.substr(start, end - start));
        if (auto id = vocab_.find(sub)) {
          out.push_back({*id, sub, {start, end}});
          found = true;
          break;
        }
        // Drop the last character.
        do {
          --end;
        } while (end > start && is_utf8_continuation(static_cast<unsigned char>(seq[end])));
      }
      if (!found) return {unk(seq)};
      start = end;
    }
    return out;
  }

  std::optional<uint32_t> token_to_id(std::string_view t) const override { return vocab_.find(t); }
  std::optional<std::string> id_to_token(uint32_t id) const override {
    if (auto t = vocab_.token(id)) return std::string(*t);
    return std::nullopt;
  }
  size_t vocab_size() const override { return vocab_.size(); }

 private:
  Token unk(std::string_view seq) const {
    auto id = vocab_.find(unk_token_);
    LUMEN_CHECK(id, "WordPiece: unk token '", unk_token_, "' is not in the vocab");
    return {*id, unk_token_, {0, seq.size()}};
  }

  Vocab vocab_;
  std::string unk_token_, prefix_;
  size_t max_chars_;
};

// ---- WordLevel ----

class WordLevel : public Model {
 public:
  WordLevel(ModelData data, const std::string& where) : vocab_(std::move(data.vocab)) {
    unk_token_ = Fields(data.rest, where).str("unk_token", "<unk>");
  }
  std::vector<Token> tokenize(std::string_view seq) const override {
    if (auto id = vocab_.find(seq)) return {Token{*id, std::string(seq), {0, seq.size()}}};
    auto unk = vocab_.find(unk_token_);
    LUMEN_CHECK(unk, "WordLevel: unk token '", unk_token_, "' is not in the vocab");
    return {Token{*unk, unk_token_, {0, seq.size()}}};
  }
  std::optional<uint32_t> token_to_id(std::string_view t) const override { return vocab_.find(t); }
  std::optional<std::string> id_to_token(uint32_t id) const override {
    if (auto t = vocab_.token(id)) return std::string(*t);
    return std::nullopt;
  }
  size_t vocab_size() const override { return vocab_.size(); }

 private:
  Vocab vocab_;
  std::string unk_token_;
};

// ---- Unigram ----

class Unigram : public Model {
 public:
  Unigram(ModelData data, const std::string& where) : pieces_(std::move(data.unigram_vocab)) {
    const Fields f(data.rest, where);
    if (f.has("unk_id")) {
      const uint64_t u = f.uint("unk_id");
      LUMEN_CHECK(!pieces_.empty(), f.at("vocab"), ": empty, but unk_id is set");
      LUMEN_CHECK(u < pieces_.size(), f.at("unk_id"), ": ", u, " is outside the vocab (", pieces_.size(), " pieces)");
      unk_id_ = static_cast<uint32_t>(u);
    }
    byte_fallback_ = f.boolean("byte_fallback", false);
    ids_.reserve(pieces_.size());
    nodes_.push_back(-1);
    min_score_ = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < pieces_.size(); ++i) {
      const std::string& p = pieces_[i].first;
      ids_.add(p, static_cast<uint32_t>(i));
      min_score_ = std::min(min_score_, pieces_[i].second);
      // Insert into the byte trie.
      uint32_t node = 0;
      for (char ch : p) {
        const MergeTable::Merge* child = trie_.find(node, static_cast<unsigned char>(ch));
        if (child) {
          node = child->rank;
        } else {
          const auto next = static_cast<uint32_t>(nodes_.size());
          nodes_.push_back(-1);
          trie_.insert(node, static_cast<unsigned char>(ch), {next, 0});
          node = next;
        }
      }
      if (!p.empty()) nodes_[node] = 1;  // a piece ends here (its id is looked up by text)
    }
  }

  std::vector<Token> tokenize(std::string_view sentence) const override {
    std::vector<Token> out;
    size_t offset = 0;
    for (std::string& piece : encode(sentence)) {
      const size_t len = piece.size();
      const Offsets offsets{offset, offset + len};
      if (auto id = ids_.find(piece)) {
        out.push_back({*id, std::move(piece), offsets});
      } else {
        bool done = false;
        if (byte_fallback_) {
          std::vector<Token> bytes;
          for (char ch : piece) {
            const std::string bt = byte_token(static_cast<uint8_t>(ch));
            auto bid = ids_.find(bt);
            if (!bid) break;
            bytes.push_back({*bid, bt, offsets});
          }
          if (bytes.size() == piece.size()) {
            out.insert(out.end(), bytes.begin(), bytes.end());
            done = true;
          }
        }
        if (!done) {
          LUMEN_CHECK(unk_id_, "Unigram: unknown piece and no unk_id");
          out.push_back({*unk_id_, std::move(piece), offsets});
        }
      }
      offset += len;
    }
    return out;
  }

  std::optional<uint32_t> token_to_id(std::string_view t) const override { return ids_.find(t); }
  std::optional<std::string> id_to_token(uint32_t id) const override {
    if (id < pieces_.size()) return pieces_[id].first;
    return std::nullopt;
  }
  size_t vocab_size() const override { return pieces_.size(); }

 private:
  // Viterbi over the lattice of vocabulary pieces (Unigram::encode_optimized); unknown
  // characters get min_score - 10 and consecutive ones are fused.
  std::vector<std::string> encode(std::string_view s) const {
    if (s.empty()) return {};
    constexpr double kUnkPenalty = 10.0;
    const double unk_score = min_score_ - kUnkPenalty;
    struct Node {
      uint32_t id = 0;
      double score = 0.0;
      int64_t starts_at = -1;
    };
    std::vector<Node> best(s.size() + 1);
    for (size_t start = 0; start < s.size();) {
      const double base = best[start].score;
      const size_t mblen = utf8_seq_len(static_cast<unsigned char>(s[start]));
      bool has_single = false;
      uint32_t node = 0;
      for (size_t k = start; k < s.size(); ++k) {
        const MergeTable::Merge* child = trie_.find(node, static_cast<unsigned char>(s[k]));
        if (!child) break;
        node = child->rank;
        if (nodes_[node] < 0) continue;
        const size_t end = k + 1;
        const uint32_t id = *ids_.find(s.substr(start, end - start));
        const double cand = pieces_[id].second + base;
        Node& t = best[end];
        if (t.starts_at < 0 || cand > t.score) t = {id, cand, static_cast<int64_t>(start)};
        if (end - start == mblen) has_single = true;
      }
      if (!has_single) {
        LUMEN_CHECK(unk_id_, "Unigram: unknown character and no unk_id");
        Node& t = best[start + mblen];
        const double cand = unk_score + base;
        if (t.starts_at < 0 || cand > t.score) t = {*unk_id_, cand, static_cast<int64_t>(start)};
      }
      start += mblen;
    }
    std::vector<std::string> results;
    std::vector<std::string_view> unk_run;  // reversed
    auto flush = [&] {
      if (unk_run.empty()) return;
      std::string fused;
      for (auto it = unk_run.rbegin(); it != unk_run.rend(); ++it) fused.append(*it);
      results.push_back(std::move(fused));
      unk_run.clear();
    };
    for (size_t end = s.size(); end > 0;) {
      const Node& n = best[end];
      const auto start = static_cast<size_t>(n.starts_at);
      if (unk_id_ && n.id == *unk_id_) {
        unk_run.push_back(s.substr(start, end - start));
      } else {
        flush();
        results.emplace_back(s.substr(start, end - start));
      }
      end = start;
    }
    flush();
    std::reverse(results.begin(), results.end());
    return results;
  }

  std::vector<std::pair<std::string, double>> pieces_;
  Vocab ids_;
  MergeTable trie_;             // (node, byte) -> child node (in `rank`)
  std::vector<int8_t> nodes_;   // per trie node: 1 when a piece ends there
  std::optional<uint32_t> unk_id_;
  bool byte_fallback_ = false;
  double min_score_ = 0.0;
};

}  // namespace

std::unique_ptr<Model> Model::from_data(ModelData data, const std::string& where) {
  std::string type;
  if (data.rest.contains("type")) {
    const Fields f(data.rest, where);
    type = f.str("type");
  } else if (!data.unigram_vocab.empty()) {
    type = "Unigram";  // the reference guesses untagged models from their fields
  } else if (!data.merges.empty()) {
    type = "BPE";
  } else if (data.rest.contains("continuing_subword_prefix") || data.rest.contains("max_input_chars_per_word")) {
    type = "WordPiece";
  } else {
    fail(where, ".type: missing");
  }
  if (type == "BPE") return std::make_unique<Bpe>(std::move(data), where);
  if (type == "WordPiece") return std::make_unique<WordPiece>(std::move(data), where);
  if (type == "WordLevel") return std::make_unique<WordLevel>(std::move(data), where);
  if (type == "Unigram") return std::make_unique<Unigram>(std::move(data), where);
  fail(where, ".type: unknown model type '", type, "'");
}

}  // namespace lumen::text

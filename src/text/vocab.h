// Flat lookup tables for tokenizer vocabularies, built for fast loading of 100k+ entries:
// all token strings live in one buffer; string -> id is an open-addressing table whose slots
// hold the hash, the string's place in the buffer and the id (a hit costs two cache lines);
// id -> string is a direct array; BPE merges are a table keyed by the id pair.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::text {

uint64_t hash_bytes(std::string_view s);

class Vocab {
 public:
  // Builds from (token, id) entries given as one text buffer and spans into it, inserting
  // with prefetching (a bulk load is bound by memory latency, not by work).
  struct Entry {
    uint32_t offset, len, id;
  };
  static Vocab build(std::string text, const std::vector<Entry>& entries);

  void reserve(size_t n);
  // Adds `token` -> `id`; a token seen again takes the new id (JSON object semantics: the
  // last duplicate key wins). Throws lumen::Error if `id` is absurdly large.
  void add(std::string_view token, uint32_t id);

  std::optional<uint32_t> find(std::string_view token) const { return find(token, hash_of(token)); }
  // The same with the hash precomputed; with prefetch() a caller can overlap the memory
  // latency of many lookups (loading a big vocabulary is bound by it).
  static uint32_t hash_of(std::string_view token) { return static_cast<uint32_t>(hash_bytes(token)); }
  std::optional<uint32_t> find(std::string_view token, uint32_t hash) const;
  void prefetch(uint32_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & (slots_.size() - 1)]);
  }
  bool contains(std::string_view token) const { return find(token).has_value(); }
  // The token of `id`, or nullopt when no token has it.
  std::optional<std::string_view> token(uint32_t id) const;

  size_t size() const { return size_; }
  size_t max_token_bytes() const { return max_len_; }

 private:
  struct Slot {
    uint32_t hash = 0;
    uint32_t offset = 0;  // into buffer_
    uint32_t len = 0;
    uint32_t id = kEmpty;  // kEmpty: free slot
  };
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Span {
    uint32_t offset = 0, len = kEmpty;  // len kEmpty: no token has this id
  };

  void add(std::string_view token, uint32_t id, uint32_t hash);
  size_t probe(std::string_view token, uint32_t hash) const;
  void rehash(size_t capacity);

  std::string buffer_;
  std::vector<Slot> slots_;
  std::vector<Span> by_id_;
  size_t size_ = 0;
  size_t max_len_ = 0;
};

// (left id, right id) -> (rank, merged id).
class MergeTable {
 public:
  struct Merge {
    uint32_t rank, id;
  };
  void reserve(size_t n);
  // Later inserts of the same pair overwrite (as a Rust HashMap collect does).
  void insert(uint32_t a, uint32_t b, Merge m);
  const Merge* find(uint32_t a, uint32_t b) const;
  void prefetch(uint32_t a, uint32_t b) const;
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmptyKey;
    Merge value{0, 0};
  };
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace lumen::text

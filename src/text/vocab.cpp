#include "text/vocab.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace lumen::text {

namespace {

constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;

inline uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

// Ids beyond this are rejected: the id -> token array would not be worth its memory.
constexpr uint32_t kMaxId = 1u << 24;

size_t capacity_for(size_t n) {  // load factor <= 1/2
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  return cap;
}

}  // namespace

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = s.size() * kMul;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  for (size_t k = 0; i + k < s.size(); ++k) tail |= uint64_t{static_cast<unsigned char>(s[i + k])} << (8 * k);
  h = (h ^ tail) * kMul;
  return mix(h);
}

// ---- Vocab ----

Vocab Vocab::build(std::string text, const std::vector<Entry>& entries) {
  Vocab v;
  v.reserve(entries.size());
  v.buffer_.reserve(text.size());
  constexpr size_t kAhead = 8;
  uint32_t ring[kAhead];
  auto view = [&](size_t i) { return std::string_view(text).substr(entries[i].offset, entries[i].len); };
  auto stage = [&](size_t i) {
    ring[i % kAhead] = hash_of(view(i));
    v.prefetch(ring[i % kAhead]);
  };
  for (size_t i = 0; i < std::min(kAhead, entries.size()); ++i) stage(i);
  for (size_t i = 0; i < entries.size(); ++i) {
    const uint32_t h = ring[i % kAhead];
    if (i + kAhead < entries.size()) stage(i + kAhead);
    v.add(view(i), entries[i].id, h);
  }
  return v;
}

void Vocab::reserve(size_t n) {
  const size_t cap = capacity_for(n);
  if (cap > slots_.size()) rehash(cap);
}

void Vocab::rehash(size_t capacity) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  const size_t mask = capacity - 1;
  for (const Slot& s : old) {
    if (s.id == kEmpty) continue;
    size_t i = s.hash & mask;
    while (slots_[i].id != kEmpty) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

size_t Vocab::probe(std::string_view token, uint32_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id == kEmpty) return i;
    if (s.hash == hash && s.len == token.size() && std::memcmp(buffer_.data() + s.offset, token.data(), s.len) == 0)
      return i;
  }
}

void Vocab::add(std::string_view token, uint32_t id) { add(token, id, hash_of(token)); }

void Vocab::add(std::string_view token, uint32_t id, uint32_t hash) {
  LUMEN_CHECK(id < kMaxId, "vocab: token id ", id, " is too large");
  if ((size_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
  Slot& s = slots_[probe(token, hash)];
  if (s.id != kEmpty) {  // duplicate token: re-point it to the new id
    if (s.id < by_id_.size() && by_id_[s.id].offset == s.offset && by_id_[s.id].len == s.len) by_id_[s.id] = Span{};
  } else {
    LUMEN_CHECK(buffer_.size() + token.size() < kEmpty, "vocab: too much token text");
    s.hash = hash;
    s.offset = static_cast<uint32_t>(buffer_.size());
    s.len = static_cast<uint32_t>(token.size());
    buffer_.append(token);
    ++size_;
    max_len_ = std::max(max_len_, token.size());
  }
  s.id = id;
  if (id >= by_id_.size()) by_id_.resize(static_cast<size_t>(id) + 1);
  // An id given to two tokens maps back to the last one (as the reference's reverse map).
  by_id_[id] = Span{s.offset, s.len};
}

std::optional<uint32_t> Vocab::find(std::string_view token, uint32_t hash) const {
  if (slots_.empty()) return std::nullopt;
  const Slot& s = slots_[probe(token, hash)];
  if (s.id == kEmpty) return std::nullopt;
  return s.id;
}

std::optional<std::string_view> Vocab::token(uint32_t id) const {
  if (id >= by_id_.size() || by_id_[id].len == kEmpty) return std::nullopt;
  return std::string_view(buffer_.data() + by_id_[id].offset, by_id_[id].len);
}

// ---- MergeTable ----

void MergeTable::reserve(size_t n) {
  const size_t cap = capacity_for(n);
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  size_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmptyKey) insert(static_cast<uint32_t>(s.key >> 32), static_cast<uint32_t>(s.key), s.value);
}

void MergeTable::insert(uint32_t a, uint32_t b, Merge m) {
  if ((size_ + 1) * 2 > slots_.size()) reserve(std::max<size_t>(16, size_ * 2));
  const uint64_t key = (uint64_t{a} << 32) | b;
  const size_t mask = slots_.size() - 1;
  for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.key == kEmptyKey) {
      s = {key, m};
      ++size_;
      return;
    }
    if (s.key == key) {
      s.value = m;
      return;
    }
  }
}

void MergeTable::prefetch(uint32_t a, uint32_t b) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[mix((uint64_t{a} << 32) | b) & (slots_.size() - 1)]);
}

const MergeTable::Merge* MergeTable::find(uint32_t a, uint32_t b) const {
  if (slots_.empty()) return nullptr;
  const uint64_t key = (uint64_t{a} << 32) | b;
  const size_t mask = slots_.size() - 1;
  for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.key == kEmptyKey) return nullptr;
    if (s.key == key) return &s.value;
  }
}

}  // namespace lumen::text

#include "formats/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace lumen {

using nlohmann::json;

namespace {

// The reference reader (huggingface/safetensors, tensor.rs `read_metadata`) refuses headers
// above 100,000,000 bytes; lumen uses the same bound so both accept the same files.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Dtypes of the safetensors spec that lumen does not store, so the error can say
// "not supported" instead of "unknown".
constexpr const char* kSpecOnlyDtypes[] = {"BOOL",        "I8",  "I16",     "U16",     "U32",     "U64",
                                           "F64",         "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ",
                                           "F8_E5M2FNUZ", "F4",  "F6_E2M3", "F6_E3M2"};

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A JSON value shown in an error, kept short and never throwing (invalid UTF-8 is replaced).
std::string brief(const json& v) {
  if (v.is_structured()) return v.is_object() ? "an object" : "an array";
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 64) s = s.substr(0, 61) + "...";
  return s;
}

bool is_nonnegative_integer(const json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
}

// Parses the header, refusing duplicate keys at any depth. nlohmann keeps the last duplicate, and
// so does the reference reader for tensor names (serde fills a HashMap), while it rejects a
// duplicate field inside an entry. Two entries for one name mean a corrupt file, or one built to
// be read differently by different readers, so lumen refuses both kinds.
json parse_header(const uint8_t* begin, const uint8_t* end, const std::string& label) {
  std::vector<std::set<std::string>> keys_per_object;
  auto reject_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys_per_object.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys_per_object.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!keys_per_object.back().insert(key).second) {
          fail(label, ": safetensors header has the key '", key, "' twice",
               keys_per_object.size() == 1 ? " (duplicate tensor name)" : "");
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, reject_duplicates);
  } catch (const json::exception& e) {
    fail(label, ": safetensors header is not valid JSON: ", e.what());
  }
}

// Reads one header entry {"dtype", "shape", "data_offsets"}; `data_size` bounds the offsets.
SafetensorsEntry parse_entry(const json& v, const std::string& where, uint64_t data_size) {
  LUMEN_CHECK(v.is_object(), where, ": entry is ", brief(v), ", expected an object");
  auto dtype_it = v.find("dtype");
  auto shape_it = v.find("shape");
  auto offsets_it = v.find("data_offsets");
  LUMEN_CHECK(dtype_it != v.end() && dtype_it->is_string(), where, ": field 'dtype' is missing or not a string");
  LUMEN_CHECK(shape_it != v.end() && shape_it->is_array(), where, ": field 'shape' is missing or not an array");
  LUMEN_CHECK(offsets_it != v.end() && offsets_it->is_array() && offsets_it->size() == 2, where,
              ": field 'data_offsets' is missing or not [begin, end]");

  SafetensorsEntry e;
  const auto& dt = dtype_it->get_ref<const std::string&>();
  if (!dtype_from_name(dt, &e.dtype)) {
    bool in_spec =
        std::any_of(std::begin(kSpecOnlyDtypes), std::end(kSpecOnlyDtypes), [&](const char* n) { return dt == n; });
    fail(where, in_spec ? ": dtype '" : ": unknown dtype '", dt.substr(0, 40), in_spec ? "' is not supported" : "'",
         " (lumen reads F32, F16, BF16, I64, I32, U8)");
  }

  // Element count with overflow checks. Zero dims make the count 0, but the other dims still
  // become an int64 Shape whose running product (shape_numel) must not overflow, so the product
  // of the non-zero dims is bounded as well.
  uint64_t numel = 1, nonzero_product = 1;
  constexpr uint64_t kMaxDim = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (const auto& d : *shape_it) {
    LUMEN_CHECK(is_nonnegative_integer(d), where, ": shape has a dimension ", brief(d),
                ", expected a non-negative integer");
    uint64_t dim = d.get<uint64_t>();
    bool fits =
        dim == 0 || (!__builtin_mul_overflow(nonzero_product, dim, &nonzero_product) && nonzero_product <= kMaxDim);
    // (shape_str of what was read so far: the rest of the array is not validated yet)
    if (!fits)
      fail(where, ": shape ", shape_str(e.shape).substr(0, 200), " then ", dim,
           " is too large (element count overflows)");
    numel = dim == 0 ? 0 : numel * dim;
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t want_bytes = 0;
  LUMEN_CHECK(!__builtin_mul_overflow(numel, dtype_size(e.dtype), &want_bytes), where, ": shape ", shape_str(e.shape),
              " of ", dt, " is too large (byte count overflows)");

  for (const auto& o : *offsets_it)
    LUMEN_CHECK(is_nonnegative_integer(o), where, ": data_offsets has ", brief(o), ", expected non-negative integers");
  uint64_t b = (*offsets_it)[0].get<uint64_t>(), en = (*offsets_it)[1].get<uint64_t>();
  LUMEN_CHECK(b <= en, where, ": data_offsets [", b, ", ", en, "] are reversed");
  LUMEN_CHECK(en <= data_size, where, ": data_offsets [", b, ", ", en, "] end past the data section (", data_size,
              " bytes; truncated file?)");
  LUMEN_CHECK(en - b == want_bytes, where, ": shape ", shape_str(e.shape), " of ", dt, " needs ", want_bytes,
              " bytes but data_offsets [", b, ", ", en, "] span ", en - b);
  e.begin = static_cast<size_t>(b);
  e.end = static_cast<size_t>(en);
  return e;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  return parse(mapped->data(), mapped->size(), path, mapped);
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t* data, size_t size, const std::string& label,
                                                        std::shared_ptr<const void> owner) {
  LUMEN_CHECK(size >= 8, label, ": truncated safetensors file (", size, " bytes; the 8-byte header length is missing)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  LUMEN_CHECK(header_len <= kMaxHeaderBytes, label, ": safetensors header length ", header_len,
              " exceeds the 100 MB limit (not a safetensors file, or corrupt)");
  LUMEN_CHECK(header_len <= size - 8, label, ": truncated safetensors file: header says ", header_len,
              " bytes but only ", size - 8, " follow");
  json header = parse_header(data + 8, data + 8 + header_len, label);
  LUMEN_CHECK(header.is_object(), label, ": safetensors header is ", brief(header), ", expected a JSON object");

  auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  f->label_ = label;
  f->owner_ = std::move(owner);
  f->data_section_ = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      // The reference reader takes an optional string -> string map; null means absent.
      if (v.is_null()) continue;
      LUMEN_CHECK(v.is_object(), label, ": __metadata__ is ", brief(v), ", expected an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        LUMEN_CHECK(m.value().is_string(), label, ": __metadata__ value '", m.key(), "' is ", brief(m.value()),
                    ", expected a string");
        f->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    f->entries_.emplace(name, parse_entry(v, label + ": tensor '" + name + "'", data_size));
  }

  // As the reference reader (tensor.rs `Metadata::validate`): sorted by offset, the tensors tile
  // the data section exactly, with no gap, no overlap (no two names aliasing the same bytes) and
  // no trailing bytes. Every file written by HF's writers satisfies this.
  std::vector<std::pair<std::pair<size_t, size_t>, const std::string*>> order;
  for (const auto& [name, e] : f->entries_) order.push_back({{e.begin, e.end}, &name});
  // Ties broken by name, not by pointer, so the error names the same pair on every run.
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : *a.second < *b.second;
  });
  size_t covered = 0;
  const std::string* prev = nullptr;
  for (const auto& [range, name] : order) {
    if (range.first < covered) {
      fail(label, ": tensors '", *prev, "' and '", *name, "' overlap in the data section (bytes ", range.first, " to ",
           covered, ")");
    }
    if (range.first > covered) {
      fail(label, ": tensor '", *name, "' starts at data byte ", range.first, " but ",
           prev ? "tensor '" + *prev + "' ends" : std::string("the data section starts"), " at ", covered,
           " (tensors must be contiguous)");
    }
    covered = range.second;
    prev = name;
  }
  LUMEN_CHECK(covered == data_size, label, ": the data section has ", data_size, " bytes but the tensors cover ",
              covered, " (", data_size - covered, " trailing bytes; the header does not describe the file)");
  return f;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  LUMEN_CHECK(it != entries_.end(), label_, ": no tensor named '", name, "'");
  const auto& e = it->second;
  const uint8_t* p = data_section_ + e.begin;
  Tensor t = Tensor::borrow(e.dtype, e.shape, p, owner_);
  // Files from other writers may leave data unaligned (header length not a multiple of 8, or
  // tensors not sorted by alignment); copy those so kernels may assume natural alignment.
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) return t.clone();
  return t;
}

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  // Data goes in order of decreasing element size (stable), as HF's writer does, so that with an
  // 8-byte aligned data section every tensor is naturally aligned when mapped back.
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& nt : tensors) order.push_back(&nt);
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return dtype_size(a->second.dtype()) > dtype_size(b->second.dtype());
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto* nt : order) {
    const auto& [name, t] = *nt;
    LUMEN_CHECK(name != "__metadata__", "write_safetensors: '__metadata__' cannot name a tensor");
    LUMEN_CHECK(!header.contains(name), "write_safetensors: duplicate tensor name '", name, "'");
    LUMEN_CHECK(t.raw() != nullptr || t.nbytes() == 0, "write_safetensors: tensor '", name, "' has no data");
    header[name] = {
        {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string h;
  try {
    h = header.dump();
  } catch (const json::exception& e) {
    fail("write_safetensors: a tensor name or metadata string is not valid UTF-8: ", e.what());
  }
  while (h.size() % 8 != 0) h.push_back(' ');  // align the data section to 8 bytes
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += h;
  for (const auto* nt : order)
    if (nt->second.nbytes()) out.append(static_cast<const char*>(nt->second.raw()), nt->second.nbytes());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

namespace {

// A weight_map value must name a file directly inside the checkpoint directory: no separators,
// no "." or "..", no NUL (which would silently cut the path short).
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

}  // namespace

void TensorStore::add_file(std::shared_ptr<SafetensorsFile> file) {
  for (const auto& [name, e] : file->entries()) {
    auto [it, inserted] = where_.emplace(name, files_.size());
    LUMEN_CHECK(inserted, source_, ": tensor '", name, "' is in both ", files_[it->second]->label(), " and ",
                file->label());
  }
  files_.push_back(std::move(file));
}

TensorStore TensorStore::open(const std::string& dir_or_file) {
  TensorStore s;
  s.source_ = dir_or_file;
  std::string dir = dir_or_file, index;
  if (is_file(dir_or_file)) {
    if (!ends_with(dir_or_file, ".index.json")) {
      s.add_file(SafetensorsFile::open(dir_or_file));
      return s;
    }
    index = dir_or_file;
    auto slash = dir_or_file.rfind('/');
    dir = slash == std::string::npos ? "." : dir_or_file.substr(0, slash);
  } else {
    LUMEN_CHECK(is_dir(dir_or_file), dir_or_file, ": no such checkpoint directory or file");
    // transformers prefers the single file when both are present.
    std::string single = dir_or_file + "/model.safetensors";
    if (is_file(single)) {
      s.add_file(SafetensorsFile::open(single));
      return s;
    }
    index = dir_or_file + "/model.safetensors.index.json";
    LUMEN_CHECK(is_file(index), dir_or_file, ": no model.safetensors or model.safetensors.index.json");
  }
  s.source_ = index;

  json j;
  try {
    j = json::parse(read_file(index));
  } catch (const json::exception& e) {
    fail(index, ": not valid JSON: ", e.what());
  }
  LUMEN_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index,
              ": missing object 'weight_map'");
  const json& weight_map = j["weight_map"];
  LUMEN_CHECK(!weight_map.empty(), index, ": weight_map is empty");

  // shard file -> the tensor names the index puts there
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    LUMEN_CHECK(it.value().is_string(), index, ": weight_map['", it.key(), "'] is ", brief(it.value()),
                ", expected a shard file name");
    const auto& shard = it.value().get_ref<const std::string&>();
    LUMEN_CHECK(is_plain_file_name(shard), index, ": weight_map['", it.key(), "'] names ", brief(json(shard)),
                ", which is not a file name inside ", dir);
    shards[shard].push_back(it.key());
  }
  // As transformers, every tensor of every listed shard is loaded; the map must agree with them.
  for (const auto& [shard, names] : shards) {
    const std::string shard_path = dir + "/" + shard;
    auto file = with_context(index + ": shard '" + shard + "' (for tensor '" + names.front() + "')",
                             [&] { return SafetensorsFile::open(shard_path); });
    for (const auto& name : names) {
      LUMEN_CHECK(file->has(name), index, ": tensor '", name, "' is mapped to ", shard, ", which does not contain it");
    }
    s.add_file(std::move(file));
  }
  return s;
}

Tensor TensorStore::get(const std::string& name) const {
  auto it = where_.find(name);
  LUMEN_CHECK(it != where_.end(), source_, ": checkpoint has no tensor '", name, "'");
  return files_[it->second]->get(name);
}

Tensor TensorStore::get(const std::string& name, const Shape& want) const {
  Tensor t = get(name);
  LUMEN_CHECK(t.shape() == want, files_[where_.at(name)]->label(), ": tensor '", name, "' has shape ",
              shape_str(t.shape()), ", config wants ", shape_str(want));
  return t;
}

Tensor TensorStore::get_f32(const std::string& name, const Shape& want) const {
  Tensor t = get(name, want);
  LUMEN_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16,
              files_[where_.at(name)]->label(), ": tensor '", name, "' has dtype ", dtype_name(t.dtype()),
              ", expected a float type");
  return t.dtype() == DType::F32 ? t : t.to_f32();
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& [n, i] : where_) out.push_back(n);
  return out;
}

}  // namespace lumen

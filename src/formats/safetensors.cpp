#include "formats/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lumen {

using nlohmann::json;

namespace {

// A header larger than this is not a real checkpoint (HF's own limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
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
              " is implausible (corrupt file?)");
  LUMEN_CHECK(header_len <= size - 8, label, ": truncated safetensors file: header says ", header_len,
              " bytes but only ", size - 8, " follow");
  json header;
  try {
    header = json::parse(data + 8, data + 8 + header_len);
  } catch (const json::exception& e) {
    fail(label, ": safetensors header is not valid JSON: ", e.what());
  }
  LUMEN_CHECK(header.is_object(), label, ": safetensors header is not a JSON object");

  auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  f->label_ = label;
  f->owner_ = std::move(owner);
  f->data_section_ = data + 8 + header_len;
  const size_t data_size = size - 8 - header_len;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      LUMEN_CHECK(v.is_object(), label, ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        LUMEN_CHECK(m.value().is_string(), label, ": __metadata__ value '", m.key(), "' is not a string");
        f->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto where = [&] { return label + ": tensor '" + name + "'"; };
    LUMEN_CHECK(v.is_object(), where(), ": entry is not an object");
    LUMEN_CHECK(v.contains("dtype") && v["dtype"].is_string(), where(), ": missing string field 'dtype'");
    LUMEN_CHECK(v.contains("shape") && v["shape"].is_array(), where(), ": missing array field 'shape'");
    LUMEN_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
                where(), ": missing field 'data_offsets' [begin, end]");
    SafetensorsEntry e;
    std::string dt = v["dtype"].get<std::string>();
    LUMEN_CHECK(dtype_from_name(dt, &e.dtype), where(), ": unsupported dtype '", dt,
                "' (lumen reads F32, F16, BF16, I64, I32, U8)");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      LUMEN_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), where(),
                  ": shape has a non-integer or negative dimension");
      uint64_t dim = d.get<uint64_t>();
      LUMEN_CHECK(dim < (1ull << 40) && (dim == 0 || numel <= (1ull << 40) / dim), where(), ": shape is too large");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"])
      LUMEN_CHECK(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0), where(),
                  ": data_offsets must be non-negative integers");
    uint64_t b = v["data_offsets"][0].get<uint64_t>(), en = v["data_offsets"][1].get<uint64_t>();
    LUMEN_CHECK(b <= en, where(), ": data_offsets [", b, ", ", en, "] are reversed");
    LUMEN_CHECK(en <= data_size, where(), ": data_offsets end ", en, " is past the end of the data (", data_size,
                " bytes; truncated file?)");
    uint64_t want = numel * dtype_size(e.dtype);
    LUMEN_CHECK(en - b == want, where(), ": shape ", shape_str(e.shape), " of ", dt, " needs ", want,
                " bytes but data_offsets span ", en - b);
    e.begin = static_cast<size_t>(b);
    e.end = static_cast<size_t>(en);
    f->entries_.emplace(name, std::move(e));
  }

  // Ranges must not overlap (two names aliasing the same bytes is a corrupt/hostile file).
  std::vector<std::pair<size_t, const std::string*>> order;
  for (const auto& [name, e] : f->entries_)
    if (e.end > e.begin) order.emplace_back(e.begin, &name);
  std::sort(order.begin(), order.end());
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& prev = f->entries_.at(*order[i - 1].second);
    LUMEN_CHECK(prev.end <= order[i].first, label, ": tensors '", *order[i - 1].second, "' and '", *order[i].second,
                "' overlap in the data section");
  }
  return f;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  LUMEN_CHECK(it != entries_.end(), label_, ": no tensor named '", name, "'");
  const auto& e = it->second;
  // Unaligned data (odd header lengths) is copied so kernels may assume natural alignment.
  const uint8_t* p = data_section_ + e.begin;
  Tensor t = Tensor::borrow(e.dtype, e.shape, p, owner_);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) return t.clone();
  return t;
}

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    LUMEN_CHECK(!header.contains(name), "write_safetensors: duplicate tensor name '", name, "'");
    header[name] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // align the data section to 8 bytes
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += h;
  for (const auto& [name, t] : tensors) out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

TensorStore TensorStore::open(const std::string& dir_or_file) {
  TensorStore s;
  s.source_ = dir_or_file;
  auto add_file = [&](const std::string& path) {
    auto f = SafetensorsFile::open(path);
    for (const auto& [name, e] : f->entries()) s.where_[name] = s.files_.size();
    s.files_.push_back(f);
  };
  if (is_file(dir_or_file)) {
    add_file(dir_or_file);
    return s;
  }
  LUMEN_CHECK(is_dir(dir_or_file), dir_or_file, ": no such checkpoint directory or file");
  std::string single = dir_or_file + "/model.safetensors";
  std::string index = dir_or_file + "/model.safetensors.index.json";
  if (is_file(single)) {
    add_file(single);
    return s;
  }
  LUMEN_CHECK(is_file(index), dir_or_file, ": no model.safetensors or model.safetensors.index.json");
  json j;
  try {
    j = json::parse(read_file(index));
  } catch (const json::exception& e) {
    fail(index, ": not valid JSON: ", e.what());
  }
  LUMEN_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index,
              ": missing object 'weight_map'");
  std::map<std::string, size_t> shard_index;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    LUMEN_CHECK(it.value().is_string(), index, ": weight_map['", it.key(), "'] is not a file name");
    std::string shard = it.value().get<std::string>();
    LUMEN_CHECK(shard.find('/') == std::string::npos && shard != ".." && !shard.empty(), index,
                ": weight_map['", it.key(), "'] names '", shard, "', which is not a file in the directory");
    if (!shard_index.count(shard)) {
      shard_index[shard] = s.files_.size();
      s.files_.push_back(SafetensorsFile::open(dir_or_file + "/" + shard));
    }
    const auto& file = s.files_[shard_index[shard]];
    LUMEN_CHECK(file->has(it.key()), index, ": tensor '", it.key(), "' is mapped to ", shard,
                ", which does not contain it");
    s.where_[it.key()] = shard_index[shard];
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

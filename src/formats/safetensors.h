// safetensors: 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then data.
// Reading maps the file and hands out borrowed tensors; every header field is validated
// (dtype known, shape * dtype size == byte range, ranges inside the file and not overlapping).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace lumen {

struct SafetensorsEntry {
  DType dtype;
  Shape shape;
  size_t begin = 0;  // offsets relative to the start of the data section
  size_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates its header. Errors name the path and the offending tensor.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Parses an in-memory buffer (not copied; `owner` keeps it alive). `label` names it in errors.
  static std::shared_ptr<SafetensorsFile> parse(const uint8_t* data, size_t size, const std::string& label,
                                                std::shared_ptr<const void> owner);

  const std::string& label() const { return label_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // A borrowed view of the tensor's bytes. Throws when absent.
  Tensor get(const std::string& name) const;

 private:
  std::string label_;
  const uint8_t* data_section_ = nullptr;
  std::shared_ptr<const void> owner_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any stored dtype) in safetensors form; atomically replaces `path`.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map": name -> shard file). Also accepts a single file.
class TensorStore {
 public:
  static TensorStore open(const std::string& dir_or_file);

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  // Borrowed tensor; throws naming the checkpoint when missing.
  Tensor get(const std::string& name) const;
  // As get(), and checks the shape: "model.safetensors: tensor 'x' has shape [..], config wants [..]".
  Tensor get(const std::string& name, const Shape& want) const;
  // f32 copy (converting f16/bf16) with shape check: what most blocks keep.
  Tensor get_f32(const std::string& name, const Shape& want) const;
  std::vector<std::string> names() const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace lumen

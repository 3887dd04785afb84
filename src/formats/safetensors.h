// safetensors: 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then data.
// Reading maps the file and hands out borrowed tensors. The header is validated as strictly as
// the reference reader (huggingface/safetensors tensor.rs `read_metadata` + `Metadata::validate`):
// header <= 100 MB and inside the file, a JSON object, dtype known, shape * dtype size == byte
// range without overflow, and the ranges tile the data section exactly (no gap, overlap or
// trailing bytes). Stricter than the reference: a duplicate tensor name is an error (it keeps
// the last). Every failure is a lumen::Error naming the file and, where there is one, the tensor.
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

// Writes tensors (any stored dtype) in safetensors form; atomically replaces `path` (on failure
// the old file is left as it was). Data is laid out by decreasing element size so every tensor
// is naturally aligned when mapped back; the header lists names in sorted order.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map": name -> shard file). Also accepts a single
// .safetensors file or the path of an index file. As transformers, every tensor of every listed
// shard is available; errors: a shard name that is not a plain file name in the directory
// ("../x", "a/b"), a missing or corrupt shard, a name mapped to a shard without it, a name in
// two shards.
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
  // The file or index the tensors came from (names it in errors).
  const std::string& source() const { return source_; }

 private:
  void add_file(std::shared_ptr<SafetensorsFile> file);

  std::string source_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace lumen

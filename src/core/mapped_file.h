// Read-only memory map of a whole file. Tensors borrowed from it hold a shared_ptr to it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lumen {

class MappedFile {
 public:
  // Throws lumen::Error naming the path when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Whole file into a string (small files: JSON configs, tokenizer files).
std::string read_file(const std::string& path);
// Writes via a temporary file and rename, so an existing file is never left half-written.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace lumen

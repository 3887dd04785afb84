// An SQLite index of image embeddings for text-to-image search. Each row keeps the file's
// size and modification time, so re-adding a folder embeds only new or changed files, and
// rows of files that disappeared are dropped. The index records which model made it and
// refuses to mix embeddings of another.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dual_encoder_session.h"

struct sqlite3;

namespace lumen {

struct IndexUpdate {
  size_t scanned = 0, added = 0, updated = 0, unchanged = 0, removed = 0, failed = 0;
  std::vector<std::string> errors;  // "path: why" for images that could not be read
};

struct SearchHit {
  std::string path;
  float score = 0;  // cosine similarity
};

class ImageIndex {
 public:
  // Opens (creating if needed) the index at `path` for the model at `model_dir`.
  static ImageIndex open(const std::string& path, const std::string& model_dir, const std::string& family,
                         int64_t dim);
  ImageIndex(ImageIndex&&) noexcept;
  ~ImageIndex();

  // Scans `folder` recursively for .jpg/.jpeg/.png/.webp and embeds new/changed files in batches,
  // committing after each batch so an interrupted run keeps its work.
  IndexUpdate add_folder(const std::string& folder, const DualEncoderSession& session, const DecodeOptions& decode,
                         int batch, const std::function<void(size_t done, size_t total)>& progress);
  // Best `top` images for a normalised query embedding [1, dim] or [dim].
  std::vector<SearchHit> query(const Tensor& query_embedding, size_t top) const;
  size_t size() const;

 private:
  ImageIndex() = default;
  sqlite3* db_ = nullptr;
  std::string path_;
  int64_t dim_ = 0;
};

}  // namespace lumen

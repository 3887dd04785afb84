#include "runtime/image_index.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <utility>

namespace lumen {

namespace fs = std::filesystem;

namespace {

// A prepared statement that finalises itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, const std::string& label) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      fail(label, ": SQLite error: ", sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* get() { return s_; }
  void bind(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind_blob(int i, const void* p, size_t n) { sqlite3_bind_blob(s_, i, p, static_cast<int>(n), SQLITE_TRANSIENT); }
  bool step(const std::string& label) {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail(label, ": SQLite error: ", sqlite3_errmsg(db_));
    return false;
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

void exec(sqlite3* db, const char* sql, const std::string& label) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    fail(label, ": SQLite error: ", msg);
  }
}

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp";
}

}  // namespace

ImageIndex::ImageIndex(ImageIndex&& o) noexcept : db_(o.db_), path_(std::move(o.path_)), dim_(o.dim_) { o.db_ = nullptr; }

ImageIndex::~ImageIndex() {
  if (db_) sqlite3_close(db_);
}

ImageIndex ImageIndex::open(const std::string& path, const std::string& model_dir, const std::string& family,
                            int64_t dim) {
  ImageIndex idx;
  idx.path_ = path;
  idx.dim_ = dim;
  if (sqlite3_open_v2(path.c_str(), &idx.db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    std::string msg = idx.db_ ? sqlite3_errmsg(idx.db_) : "out of memory";
    fail(path, ": cannot open index: ", msg);
  }
  sqlite3_busy_timeout(idx.db_, 5000);
  exec(idx.db_,
       "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
       "CREATE TABLE IF NOT EXISTS images(path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
       " embedding BLOB NOT NULL);",
       path + " (not an SQLite index?)");
  // The model identity: embeddings of different models must never be compared.
  std::error_code ec;
  std::string model_id = family + ":" + fs::weakly_canonical(model_dir, ec).string();
  const std::vector<std::pair<std::string, std::string>> want = {
      {"format", "lumen-index-1"}, {"model", model_id}, {"dim", std::to_string(dim)}};
  for (const auto& [k, v] : want) {
    Stmt get(idx.db_, "SELECT value FROM meta WHERE key = ?", path);
    get.bind(1, k);
    if (get.step(path)) {
      std::string have = reinterpret_cast<const char*>(sqlite3_column_text(get.get(), 0));
      LUMEN_CHECK(have == v, path, ": index was built with ", k, " '", have, "', not '", v,
                  "'; use another --index file for this model");
    } else {
      Stmt put(idx.db_, "INSERT INTO meta(key, value) VALUES(?, ?)", path);
      put.bind(1, k);
      put.bind(2, v);
      put.step(path);
    }
  }
  return idx;
}

IndexUpdate ImageIndex::add_folder(const std::string& folder, const DualEncoderSession& session,
                                   const DecodeOptions& decode, int batch,
                                   const std::function<void(size_t, size_t)>& progress) {
  std::error_code ec;
  LUMEN_CHECK(fs::is_directory(folder, ec), folder, ": not a directory");
  struct FileInfo { std::string path; int64_t size, mtime_ns; bool known; };
  std::vector<FileInfo> todo;
  IndexUpdate u;
  std::vector<std::string> present;
  {
    Stmt get(db_, "SELECT size, mtime_ns FROM images WHERE path = ?", path_);
    for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_regular_file(ec) || !is_image_name(it->path())) continue;
      std::string p = fs::absolute(it->path(), ec).lexically_normal().string();
      struct stat st {};
      if (::stat(p.c_str(), &st) != 0) continue;
      int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      ++u.scanned;
      present.push_back(p);
      get.reset();
      get.bind(1, p);
      bool known = get.step(path_);
      if (known && sqlite3_column_int64(get.get(), 0) == st.st_size && sqlite3_column_int64(get.get(), 1) == mtime) {
        ++u.unchanged;
        continue;
      }
      todo.push_back({p, static_cast<int64_t>(st.st_size), mtime, known});
    }
  }
  std::sort(todo.begin(), todo.end(), [](const FileInfo& a, const FileInfo& b) { return a.path < b.path; });

  Stmt put(db_, "INSERT OR REPLACE INTO images(path, size, mtime_ns, embedding) VALUES(?, ?, ?, ?)", path_);
  batch = std::max(1, batch);
  size_t done = 0;
  if (progress) progress(0, todo.size());
  for (size_t start = 0; start < todo.size(); start += static_cast<size_t>(batch)) {
    size_t end = std::min(todo.size(), start + static_cast<size_t>(batch));
    std::vector<Image> images;
    std::vector<const FileInfo*> ok;
    for (size_t i = start; i < end; ++i) {
      try {
        images.push_back(decode_image_file(todo[i].path, decode));
        ok.push_back(&todo[i]);
      } catch (const Error& e) {
        ++u.failed;
        u.errors.push_back(e.what());
      }
    }
    if (!images.empty()) {
      Tensor e = session.embed_images(images);  // [n, dim]
      LUMEN_CHECK(e.dim(1) == dim_, "model produced ", e.dim(1), "-d embeddings, index holds ", dim_);
      exec(db_, "BEGIN", path_);
      for (size_t k = 0; k < ok.size(); ++k) {
        put.reset();
        put.bind(1, ok[k]->path);
        put.bind(2, ok[k]->size);
        put.bind(3, ok[k]->mtime_ns);
        put.bind_blob(4, e.data<float>() + static_cast<int64_t>(k) * dim_, static_cast<size_t>(dim_) * sizeof(float));
        put.step(path_);
        ++(ok[k]->known ? u.updated : u.added);
      }
      exec(db_, "COMMIT", path_);
    }
    done = end;
    if (progress) progress(done, todo.size());
  }

  // Drop rows for files under this folder that are gone.
  std::string prefix = fs::absolute(folder, ec).lexically_normal().string();
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  std::sort(present.begin(), present.end());
  std::vector<std::string> gone;
  {
    Stmt all(db_, "SELECT path FROM images WHERE substr(path, 1, ?) = ?", path_);
    all.bind(1, static_cast<int64_t>(prefix.size()));
    all.bind(2, prefix);
    while (all.step(path_)) {
      std::string p = reinterpret_cast<const char*>(sqlite3_column_text(all.get(), 0));
      if (!std::binary_search(present.begin(), present.end(), p)) gone.push_back(p);
    }
  }
  if (!gone.empty()) {
    Stmt del(db_, "DELETE FROM images WHERE path = ?", path_);
    exec(db_, "BEGIN", path_);
    for (const auto& p : gone) {
      del.reset();
      del.bind(1, p);
      del.step(path_);
    }
    exec(db_, "COMMIT", path_);
    u.removed = gone.size();
  }
  return u;
}

std::vector<SearchHit> ImageIndex::query(const Tensor& q, size_t top) const {
  LUMEN_CHECK(q.numel() == dim_, "query embedding has ", q.numel(), " values, index holds ", dim_, "-d embeddings");
  std::vector<SearchHit> hits;
  Stmt all(db_, "SELECT path, embedding FROM images", path_);
  const float* qv = q.data<float>();
  while (all.step(path_)) {
    const void* blob = sqlite3_column_blob(all.get(), 1);
    int bytes = sqlite3_column_bytes(all.get(), 1);
    if (bytes != static_cast<int>(dim_ * sizeof(float)) || !blob) continue;  // foreign row: ignore
    double dot = 0;
    const auto* ev = static_cast<const unsigned char*>(blob);
    for (int64_t i = 0; i < dim_; ++i) {
      float x;
      std::memcpy(&x, ev + i * 4, 4);
      dot += static_cast<double>(x) * qv[i];
    }
    hits.push_back({reinterpret_cast<const char*>(sqlite3_column_text(all.get(), 0)), static_cast<float>(dot)});
  }
  size_t k = std::min(top, hits.size());
  std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(k), hits.end(),
                    [](const SearchHit& a, const SearchHit& b) { return a.score > b.score; });
  hits.resize(k);
  return hits;
}

size_t ImageIndex::size() const {
  Stmt c(db_, "SELECT COUNT(*) FROM images", path_);
  c.step(path_);
  return static_cast<size_t>(sqlite3_column_int64(c.get(), 0));
}

}  // namespace lumen

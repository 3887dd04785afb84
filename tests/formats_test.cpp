// Checkpoint and config readers: safetensors (reading HF-written files, validation of every
// header field, writing, sharded checkpoints) and JsonView (typed reads, errors naming fields).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>

#include "core/half.h"
#include "core/mapped_file.h"
#include "formats/json_config.h"
#include "formats/safetensors.h"

namespace lumen {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kData = std::string(LUMEN_TEST_DATA) + "/formats";
const std::string kClipDir = kData + "/clip";
const std::string kClipModel = kClipDir + "/model.safetensors";

// A fresh directory under /tmp, removed (with everything in it) when the test ends.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lumen_formats_XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::vector<std::string> dir_listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A safetensors image: 8-byte little-endian length, `header` as given, then `data`.
std::string st_bytes(const std::string& header, const std::string& data = "") {
  std::string out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

std::shared_ptr<SafetensorsFile> parse_bytes(const std::string& bytes, const std::string& label = "bad.safetensors") {
  auto owner = std::make_shared<std::string>(bytes);
  return SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), label, owner);
}

// The message of the lumen::Error that `f` throws; fails the test when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a lumen::Error";
  return "";
}

// gtest only (gmock is not linked): "haystack contains needle", printing both on failure.
::testing::AssertionResult contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << haystack << "' does not contain '" << needle << "'";
}

void expect_error(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* part : parts) EXPECT_TRUE(contains(message, part));
}

uint64_t fnv1a64(const void* data, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.raw()), t.nbytes()); }

// reference.json: what a Python struct-based reader (make_reference.py) finds in the HF files.
const json& reference() {
  static const json ref = JsonView::load_file(kData + "/reference.json");
  return ref;
}

Shape ref_shape(const std::string& file, const std::string& tensor) {
  return reference().at(file).at("tensors").at(tensor).at("shape").get<Shape>();
}

// Tensors of every stored dtype with random bytes; odd sizes and empty shapes included.
std::vector<std::pair<std::string, Tensor>> every_dtype_tensors(uint32_t seed) {
  std::mt19937 rng(seed);
  auto random_tensor = [&](DType dtype, Shape shape) {
    Tensor t = Tensor::zeros(dtype, std::move(shape));
    auto* p = static_cast<uint8_t*>(t.raw());
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
    return t;
  };
  // U8 first with an odd byte count: the writer must still align the wider types after it.
  return {{"u8.odd", random_tensor(DType::U8, {3, 5})},     {"f32.matrix", random_tensor(DType::F32, {4, 3})},
          {"f16.vector", random_tensor(DType::F16, {7})},   {"bf16.cube", random_tensor(DType::BF16, {2, 3, 2})},
          {"i64.ids", random_tensor(DType::I64, {1, 5})},   {"i32.scalar", random_tensor(DType::I32, {})},
          {"f32.empty", random_tensor(DType::F32, {0, 4})}, {"u8.empty", random_tensor(DType::U8, {2, 0})}};
}

// ---------------------------------------------------------------------------------------------
// Reading HF-written files

TEST(SafetensorsRead, MatchesIndependentReader) {
  for (const auto& [file, want] : reference().items()) {
    SCOPED_TRACE(file);
    auto st = SafetensorsFile::open(kData + "/" + file);
    using StringMap = std::map<std::string, std::string>;
    EXPECT_EQ(st->metadata(), want.at("metadata").get<StringMap>());
    ASSERT_EQ(st->entries().size(), want.at("tensors").size());
    for (const auto& [name, w] : want.at("tensors").items()) {
      SCOPED_TRACE(name);
      ASSERT_TRUE(st->has(name));
      Tensor t = st->get(name);
      EXPECT_EQ(dtype_name(t.dtype()), w.at("dtype").get<std::string>());
      EXPECT_EQ(t.shape(), w.at("shape").get<Shape>());
      EXPECT_EQ(hex64(fnv1a64(t.raw(), t.nbytes())), w.at("fnv1a64").get<std::string>());
      const auto& first = w.at("first");
      for (size_t i = 0; i < first.size(); ++i) {
        if (t.dtype() == DType::F32) {
          EXPECT_EQ(static_cast<double>(t.data<float>()[i]), first[i].get<double>());
        } else {
          ASSERT_EQ(t.dtype(), DType::I64);
          EXPECT_EQ(t.data<int64_t>()[i], first[i].get<int64_t>());
        }
      }
      // HF's writer sorts by alignment, so everything maps in place and naturally aligned.
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % dtype_size(t.dtype()), 0u);
    }
  }
}

TEST(SafetensorsRead, BorrowedTensorOutlivesFileAndStore) {
  TempDir dir;
  fs::copy_file(kClipModel, dir / "model.safetensors");
  const std::string name = "text_model.embeddings.position_embedding.weight";
  Tensor kept;
  {
    TensorStore store = TensorStore::open(dir.path());
    kept = store.get(name, ref_shape("clip/model.safetensors", name));
    auto file = SafetensorsFile::open(dir / "model.safetensors");
    file.reset();
  }
  // The mapping stays alive through the tensor alone, even with the file gone from disk.
  fs::remove(dir / "model.safetensors");
  EXPECT_EQ(hex64(fnv1a64(kept.raw(), kept.nbytes())),
            reference()["clip/model.safetensors"]["tensors"][name]["fnv1a64"].get<std::string>());
  EXPECT_EQ(static_cast<double>(kept.data<float>()[0]),
            reference()["clip/model.safetensors"]["tensors"][name]["first"][0].get<double>());
}

TEST(SafetensorsRead, UnalignedDataIsCopiedAligned) {
  // A 13-byte header leaves the data section at file offset 21: the F32 must come back aligned.
  float values[2] = {1.5f, -2.25f};
  std::string data(reinterpret_cast<const char*>(values), sizeof values);
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header += std::string((8 - (header.size() + 8) % 8) % 8 + 1, ' ');  // one byte past aligned
  auto st = parse_bytes(st_bytes(header, data));
  Tensor x = st->get("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw()) % 4, 0u);
  EXPECT_EQ(x.data<float>()[0], values[0]);
  EXPECT_EQ(x.data<float>()[1], values[1]);
}

TEST(SafetensorsRead, AcceptsWhatTheSpecAllows) {
  // Empty file body, metadata null, extra fields in an entry (the reference reader ignores
  // them), zero-element tensors between others, scalars, trailing header spaces, any order.
  EXPECT_TRUE(parse_bytes(st_bytes("{}"))->entries().empty());
  EXPECT_TRUE(parse_bytes(st_bytes(R"({"__metadata__":null}  )"))->metadata().empty());
  std::string data(12, '\0');
  auto st = parse_bytes(st_bytes(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12],"extra":1},
                                     "z":{"dtype":"I64","shape":[0,5],"data_offsets":[4,4]},
                                     "a":{"dtype":"U8","shape":[],"data_offsets":[0,1]},
                                     "c":{"dtype":"U8","shape":[3],"data_offsets":[1,4]}})",
                                 data));
  EXPECT_EQ(st->entries().size(), 4u);
  EXPECT_EQ(st->get("z").shape(), (Shape{0, 5}));
  EXPECT_EQ(st->get("a").numel(), 1);
}

TEST(SafetensorsRead, FuzzSeedCorpusIsValid) {
  // The fuzzer starts from these; each must parse and survive a write/read round trip.
  const std::string corpus = std::string(LUMEN_SOURCE_DIR) + "/fuzz/corpus/safetensors";
  size_t seen = 0;
  for (const auto& f : fs::directory_iterator(corpus)) {
    SCOPED_TRACE(f.path().string());
    auto st = SafetensorsFile::open(f.path().string());
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& [name, e] : st->entries()) tensors.emplace_back(name, st->get(name));
    auto again = parse_bytes(serialize_safetensors(tensors, st->metadata()));
    EXPECT_EQ(again->metadata(), st->metadata());
    ASSERT_EQ(again->entries().size(), tensors.size());
    for (const auto& [name, t] : tensors) EXPECT_EQ(bytes_of(again->get(name)), bytes_of(t)) << name;
    ++seen;
  }
  EXPECT_GE(seen, 3u);
}

// ---------------------------------------------------------------------------------------------
// Rejecting malformed files: every case names the file, and the tensor where there is one.

struct BadFile {
  const char* what;
  std::string bytes;
  std::vector<const char*> message_parts;
};

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::string one_tensor(const std::string& dtype, const std::string& shape, const std::string& offsets,
                       size_t data_bytes) {
  return st_bytes(R"({"t":)" + entry(dtype, shape, offsets) + "}", std::string(data_bytes, '\0'));
}

std::string with_length(uint64_t header_len, const std::string& rest) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  return out + rest;
}

TEST(SafetensorsParse, RejectsMalformedFiles) {
  const std::vector<BadFile> cases = {
      {"empty", "", {"truncated", "0 bytes"}},
      {"short length", std::string(7, '\0'), {"truncated", "7 bytes"}},
      {"header past end", with_length(1000, "{}"), {"truncated", "header says 1000", "only 2 follow"}},
      {"huge header", with_length(uint64_t{1} << 63, "{}"), {"exceeds the 100 MB limit"}},
      {"header just over limit", with_length(100'000'001, "{}"), {"exceeds the 100 MB limit"}},
      {"not json", st_bytes("not json"), {"not valid JSON"}},
      {"trailing garbage", st_bytes("{} x"), {"not valid JSON"}},
      {"invalid utf-8", st_bytes("{\"\xff\":1}"), {"not valid JSON"}},
      {"array header", st_bytes("[1,2]"), {"header is an array, expected a JSON object"}},
      {"entry not object", st_bytes(R"({"t":3})"), {"tensor 't'", "entry is 3"}},
      {"no dtype", st_bytes(R"({"t":{"shape":[],"data_offsets":[0,4]}})", "abcd"), {"tensor 't'", "'dtype'"}},
      {"dtype not string",
       st_bytes(R"({"t":{"dtype":4,"shape":[],"data_offsets":[0,4]}})", "abcd"),
       {"tensor 't'", "'dtype'"}},
      {"no shape", st_bytes(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"), {"tensor 't'", "'shape'"}},
      {"three offsets", one_tensor("F32", "[1]", "[0,4,4]", 4), {"tensor 't'", "'data_offsets'"}},
      {"negative dim", one_tensor("F32", "[-1]", "[0,4]", 4), {"tensor 't'", "dimension -1"}},
      {"float dim", one_tensor("F32", "[1.0]", "[0,4]", 4), {"tensor 't'", "dimension 1.0"}},
      {"string dim", one_tensor("F32", R"(["1"])", "[0,4]", 4), {"tensor 't'", "dimension \"1\""}},
      {"dim beyond u64", one_tensor("F32", "[100000000000000000000]", "[0,4]", 4), {"tensor 't'", "dimension"}},
      {"negative offset", one_tensor("F32", "[1]", "[-4,0]", 4), {"tensor 't'", "data_offsets has -4"}},
      {"float offset", one_tensor("F32", "[1]", "[0,4.0]", 4), {"tensor 't'", "data_offsets has 4.0"}},
      {"unknown dtype", one_tensor("Q7", "[1]", "[0,4]", 4), {"tensor 't'", "unknown dtype 'Q7'"}},
      {"unsupported dtype", one_tensor("F64", "[1]", "[0,8]", 8), {"tensor 't'", "dtype 'F64' is not supported"}},
      {"bytes != shape*dtype",
       one_tensor("F32", "[2,2]", "[0,8]", 8),
       {"tensor 't'", "shape [2, 2] of F32 needs 16 bytes but data_offsets [0, 8] span 8"}},
      {"offsets past data",
       one_tensor("F32", "[2]", "[0,8]", 4),
       {"tensor 't'", "end past the data section (4 bytes; truncated file?)"}},
      {"reversed offsets", one_tensor("F32", "[2]", "[8,0]", 8), {"tensor 't'", "reversed"}},
      {"overlap",
       st_bytes(R"({"a":)" + entry("F32", "[2]", "[0,8]") + R"(,"b":)" + entry("F32", "[2]", "[4,12]") + "}",
                std::string(12, '\0')),
       {"tensors 'a' and 'b' overlap"}},
      {"alias",
       st_bytes(R"({"a":)" + entry("F32", "[1]", "[0,4]") + R"(,"b":)" + entry("F32", "[1]", "[0,4]") + "}",
                std::string(4, '\0')),
       {"tensors 'a' and 'b' overlap"}},
      {"gap",
       st_bytes(R"({"a":)" + entry("F32", "[1]", "[0,4]") + R"(,"b":)" + entry("F32", "[1]", "[8,12]") + "}",
                std::string(12, '\0')),
       {"tensor 'b' starts at data byte 8 but tensor 'a' ends at 4", "contiguous"}},
      {"gap at start", one_tensor("F32", "[1]", "[4,8]", 8), {"tensor 't' starts at data byte 4"}},
      {"trailing bytes", one_tensor("F32", "[1]", "[0,4]", 8), {"data section has 8 bytes but the tensors cover 4"}},
      {"element overflow",
       one_tensor("F32", "[4294967296,4294967296,4294967296]", "[0,4]", 4),
       {"tensor 't'", "too large"}},
      {"byte overflow", one_tensor("F32", "[4611686018427387904]", "[0,4]", 4), {"tensor 't'", "too large"}},
      {"zero dim beside huge ones",
       one_tensor("F32", "[0,9223372036854775807,2]", "[0,0]", 0),
       {"tensor 't'", "too large"}},
      {"duplicate tensor",
       st_bytes(R"({"a":)" + entry("U8", "[1]", "[0,1]") + R"(,"a":)" + entry("U8", "[1]", "[1,2]") + "}",
                std::string(2, '\0')),
       {"key 'a' twice", "duplicate tensor name"}},
      {"duplicate field",
       st_bytes(R"({"t":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}})", "x"),
       {"key 'dtype' twice"}},
      {"metadata not object", st_bytes(R"({"__metadata__":3})"), {"__metadata__ is 3"}},
      {"metadata value not string", st_bytes(R"({"__metadata__":{"k":1}})"), {"__metadata__ value 'k' is 1"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::string message = error_of([&] { parse_bytes(c.bytes); });
    EXPECT_EQ(message.rfind("bad.safetensors: ", 0), 0u) << message;
    for (const char* part : c.message_parts) EXPECT_TRUE(contains(message, part));
  }
}

TEST(SafetensorsParse, OpenNamesPath) {
  TempDir dir;
  write_text(dir / "short.safetensors", "abc");
  expect_error(error_of([&] { SafetensorsFile::open(dir / "short.safetensors"); }),
               {"short.safetensors: truncated safetensors file (3 bytes"});
  expect_error(error_of([&] { SafetensorsFile::open(dir / "absent.safetensors"); }),
               {"absent.safetensors: cannot open"});
  auto st = SafetensorsFile::open(kClipModel);
  expect_error(error_of([&] { st->get("nope"); }), {"clip/model.safetensors: no tensor named 'nope'"});
}

// ---------------------------------------------------------------------------------------------
// Writing

TEST(SafetensorsWrite, RoundTripEveryDtype) {
  TempDir dir;
  auto tensors = every_dtype_tensors(7);
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "round trip"}};
  write_safetensors(dir / "all.safetensors", tensors, metadata);

  auto st = SafetensorsFile::open(dir / "all.safetensors");
  EXPECT_EQ(st->metadata(), metadata);
  ASSERT_EQ(st->entries().size(), tensors.size());
  for (const auto& [name, want] : tensors) {
    SCOPED_TRACE(name);
    Tensor got = st->get(name);
    EXPECT_EQ(got.dtype(), want.dtype());
    EXPECT_EQ(got.shape(), want.shape());
    EXPECT_EQ(bytes_of(got), bytes_of(want));
    // Mapped in place (no aligning copy): every entry starts on a multiple of its element size.
    EXPECT_EQ(st->entries().at(name).begin % dtype_size(want.dtype()), 0u);
  }
  // The file is exactly what serialize_safetensors produces, and writing what was read gives it back.
  std::string file_bytes = read_file(dir / "all.safetensors");
  EXPECT_EQ(serialize_safetensors(tensors, metadata), file_bytes);
  std::vector<std::pair<std::string, Tensor>> reread;
  for (const auto& [name, t] : tensors) reread.emplace_back(name, st->get(name));
  EXPECT_EQ(serialize_safetensors(reread, metadata), file_bytes);
}

TEST(SafetensorsWrite, HeaderLayoutFollowsSpec) {
  auto tensors = every_dtype_tensors(11);
  std::string bytes = serialize_safetensors(tensors);
  // Independent decode with plain JSON: LE length, padded header, contiguous ranges covering the data.
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  json header = json::parse(bytes.substr(8, n));
  EXPECT_FALSE(header.contains("__metadata__"));  // omitted when empty, as HF does
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, t] : tensors) {
    const auto& e = header.at(name);
    EXPECT_EQ(e.at("dtype").get<std::string>(), dtype_name(t.dtype()));
    EXPECT_EQ(e.at("shape").get<Shape>(), t.shape());
    ranges.emplace_back(e.at("data_offsets")[0].get<uint64_t>(), e.at("data_offsets")[1].get<uint64_t>());
    EXPECT_EQ(bytes.substr(8 + n + ranges.back().first, t.nbytes()), bytes_of(t)) << name;
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    EXPECT_EQ(b, covered);
    covered = e;
  }
  EXPECT_EQ(8 + n + covered, bytes.size());
}

TEST(SafetensorsWrite, RejectsBadInput) {
  Tensor a = Tensor::zeros({2});
  expect_error(error_of([&] { serialize_safetensors({{"a", a}, {"a", a}}); }), {"duplicate tensor name 'a'"});
  expect_error(error_of([&] { serialize_safetensors({{"__metadata__", a}}); }), {"'__metadata__' cannot name"});
  expect_error(error_of([&] { serialize_safetensors({{"x", Tensor()}}); }), {"tensor 'x' has no data"});
  expect_error(error_of([&] { serialize_safetensors({{"bad\xff", a}}); }), {"not valid UTF-8"});
}

// Makes writes past `bytes` fail with EFBIG (as a full disk would) for the life of the object.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, saved_handler_);
  }

 private:
  rlimit saved_{};
  void (*saved_handler_)(int) = nullptr;
};

TEST(SafetensorsWrite, FailedWriteLeavesOldFileIntact) {
  TempDir dir;
  const std::string path = dir / "weights.safetensors";
  write_safetensors(path, every_dtype_tensors(1));
  const std::string old_bytes = read_file(path);
  std::vector<std::pair<std::string, Tensor>> big = {{"big", Tensor::zeros({64, 1024})}};  // 256 KiB

  {
    // Disk full half-way through the temporary file.
    FileSizeLimit limit(16 * 1024);
    expect_error(error_of([&] { write_safetensors(path, big); }), {"weights.safetensors"});
  }
  EXPECT_EQ(read_file(path), old_bytes);
  EXPECT_EQ(dir_listing(dir.path()), std::vector<std::string>{"weights.safetensors"});  // no temporary left

  // A directory that cannot be written to (only meaningful when not root: root ignores modes).
  if (::geteuid() != 0) {
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
    expect_error(error_of([&] { write_safetensors(path, big); }), {"weights.safetensors", "cannot create"});
    fs::permissions(dir.path(), fs::perms::owner_all, fs::perm_options::replace);
    EXPECT_EQ(read_file(path), old_bytes);
  }

  // Failing before any byte is written (bad input) also leaves the old file alone.
  EXPECT_THROW(write_safetensors(path, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}}), Error);
  EXPECT_EQ(read_file(path), old_bytes);
  EXPECT_EQ(dir_listing(dir.path()), std::vector<std::string>{"weights.safetensors"});
}

// ---------------------------------------------------------------------------------------------
// TensorStore: single files and sharded checkpoints

TEST(TensorStore, OpensDirectoryOrFile) {
  auto from_dir = TensorStore::open(kClipDir);
  auto from_file = TensorStore::open(kClipModel);
  EXPECT_EQ(from_dir.names(), from_file.names());
  EXPECT_EQ(from_dir.names().size(), reference()["clip/model.safetensors"]["tensors"].size());
  EXPECT_EQ(from_dir.source(), kClipDir);
  expect_error(error_of([&] { TensorStore::open(kData + "/no_such_dir"); }), {"no_such_dir: no such checkpoint"});
  TempDir empty;
  expect_error(error_of([&] { TensorStore::open(empty.path()); }),
               {"no model.safetensors or model.safetensors.index.json"});
  expect_error(error_of([&] { from_dir.get("nope"); }), {"checkpoint has no tensor 'nope'"});
}

TEST(TensorStore, ShapeCheckMessage) {
  auto store = TensorStore::open(kClipDir);
  const std::string name = "text_model.embeddings.position_embedding.weight";
  Shape have = ref_shape("clip/model.safetensors", name);
  EXPECT_EQ(store.get(name, have).shape(), have);
  Shape want = have;
  want.back() *= 2;
  EXPECT_EQ(error_of([&] { store.get(name, want); }),
            kClipModel + ": tensor '" + name + "' has shape " + shape_str(have) + ", config wants " + shape_str(want));
  EXPECT_EQ(error_of([&] { store.get_f32(name, {}); }),
            kClipModel + ": tensor '" + name + "' has shape " + shape_str(have) + ", config wants []");
}

TEST(TensorStore, GetF32ConvertsHalfTypes) {
  TempDir dir;
  // IEEE bit patterns: 1.5 = f16 0x3E00 / bf16 0x3FC0; -2.25 = f16 0xC080 / bf16 0xC010;
  // 2^-24 = f16 0x0001 (smallest subnormal); 65504 = f16 0x7BFF (largest finite).
  const uint16_t f16_bits[] = {0x3E00, 0xC080, 0x0001, 0x7BFF};
  const uint16_t bf16_bits[] = {0x3FC0, 0xC010, 0x3380, 0x477F};
  const float f16_want[] = {1.5f, -2.25f, 5.9604645e-08f, 65504.f};
  const float bf16_want[] = {1.5f, -2.25f, 5.9604645e-08f, 65280.f};
  Tensor h = Tensor::zeros(DType::F16, {2, 2});
  Tensor b = Tensor::zeros(DType::BF16, {4});
  std::memcpy(h.raw(), f16_bits, sizeof f16_bits);
  std::memcpy(b.raw(), bf16_bits, sizeof bf16_bits);
  write_safetensors(dir / "model.safetensors", {{"h", h}, {"b", b}, {"ids", Tensor::from_ids({1, 2}, {2})}});
  auto store = TensorStore::open(dir.path());
  Tensor hf = store.get_f32("h", {2, 2});
  Tensor bf = store.get_f32("b", {4});
  ASSERT_EQ(hf.dtype(), DType::F32);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(hf.data<float>()[i], f16_want[i]) << i;
    EXPECT_EQ(bf.data<float>()[i], bf16_want[i]) << i;
  }
  expect_error(error_of([&] { store.get_f32("ids", {2}); }), {"tensor 'ids' has dtype I64, expected a float type"});
}

// Splits the clip fixture into three shards plus an index, as transformers' save_pretrained does.
struct ShardedCheckpoint {
  TempDir dir;
  std::vector<std::string> shard_names;
  json index;

  ShardedCheckpoint() {
    auto whole = SafetensorsFile::open(kClipModel);
    std::vector<std::vector<std::pair<std::string, Tensor>>> shards(3);
    size_t i = 0, total = 0;
    for (const auto& [name, e] : whole->entries()) {
      shards[i++ % 3].emplace_back(name, whole->get(name));
      total += e.end - e.begin;
    }
    index = {{"metadata", {{"total_size", total}}}, {"weight_map", json::object()}};
    for (size_t s = 0; s < shards.size(); ++s) {
      shard_names.push_back("model-0000" + std::to_string(s + 1) + "-of-00003.safetensors");
      write_safetensors(dir / shard_names.back(), shards[s], {{"format", "pt"}});
      for (const auto& [name, t] : shards[s]) index["weight_map"][name] = shard_names.back();
    }
    write_index();
  }
  void write_index() const { write_text(dir / "model.safetensors.index.json", index.dump(1)); }
  std::string index_path() const { return dir / "model.safetensors.index.json"; }
  std::string open_error() const {
    return error_of([&] { TensorStore::open(dir.path()); });
  }
};

TEST(TensorStore, ShardedMatchesSingleFile) {
  ShardedCheckpoint ckpt;
  auto whole = TensorStore::open(kClipModel);
  for (const std::string& opened : {ckpt.dir.path(), ckpt.index_path()}) {
    SCOPED_TRACE(opened);
    auto sharded = TensorStore::open(opened);
    EXPECT_EQ(sharded.source(), ckpt.index_path());
    ASSERT_EQ(sharded.names(), whole.names());
    for (const auto& name : whole.names()) {
      Tensor a = whole.get(name), b = sharded.get(name);
      EXPECT_EQ(a.dtype(), b.dtype());
      EXPECT_EQ(a.shape(), b.shape());
      EXPECT_EQ(bytes_of(a), bytes_of(b)) << name;
    }
  }
  // Shape errors name the shard the tensor lives in.
  const std::string name = ckpt.index["weight_map"].begin().key();
  const std::string shard = ckpt.index["weight_map"].begin().value();
  expect_error(error_of([&] {
                 TensorStore::open(ckpt.dir.path()).get(name, {1, 2, 3});
               }),
               {shard.c_str(), "config wants [1, 2, 3]"});
}

TEST(TensorStore, ShardTensorMissingFromIndexIsStillLoaded) {
  // transformers loads every tensor of every listed shard, whatever the weight_map says.
  ShardedCheckpoint ckpt;
  const std::string dropped = ckpt.index["weight_map"].begin().key();
  ckpt.index["weight_map"].erase(dropped);
  ckpt.write_index();
  EXPECT_TRUE(TensorStore::open(ckpt.dir.path()).has(dropped));
}

TEST(TensorStore, RejectsBadIndex) {
  {
    ShardedCheckpoint ckpt;
    write_text(ckpt.index_path(), "{\"weight_map\": {");
    expect_error(ckpt.open_error(), {"model.safetensors.index.json: not valid JSON"});
  }
  {
    ShardedCheckpoint ckpt;
    write_text(ckpt.index_path(), R"({"metadata": {}})");
    expect_error(ckpt.open_error(), {"model.safetensors.index.json: missing object 'weight_map'"});
  }
  {
    ShardedCheckpoint ckpt;
    write_text(ckpt.index_path(), R"({"weight_map": {}})");
    expect_error(ckpt.open_error(), {"model.safetensors.index.json: weight_map is empty"});
  }
  {
    ShardedCheckpoint ckpt;
    ckpt.index["weight_map"]["logit_scale"] = 5;
    ckpt.write_index();
    expect_error(ckpt.open_error(), {"weight_map['logit_scale'] is 5, expected a shard file name"});
  }
}

TEST(TensorStore, RejectsMissingOrCorruptShard) {
  {
    ShardedCheckpoint ckpt;
    fs::remove(ckpt.dir / ckpt.shard_names[1]);
    expect_error(ckpt.open_error(), {"model.safetensors.index.json: shard 'model-00002-of-00003.safetensors'",
                                     "model-00002-of-00003.safetensors: cannot open"});
  }
  {
    ShardedCheckpoint ckpt;
    fs::resize_file(ckpt.dir / ckpt.shard_names[2], 100);
    expect_error(ckpt.open_error(), {"model-00003-of-00003.safetensors: truncated"});
  }
}

TEST(TensorStore, RejectsNameMappedToWrongShard) {
  ShardedCheckpoint ckpt;
  const std::string name = ckpt.index["weight_map"].begin().key();
  const std::string right = ckpt.index["weight_map"][name];
  const std::string wrong = right == ckpt.shard_names[0] ? ckpt.shard_names[1] : ckpt.shard_names[0];
  ckpt.index["weight_map"][name] = wrong;
  ckpt.write_index();
  std::string message = ckpt.open_error();
  EXPECT_TRUE(contains(message, "tensor '" + name + "' is mapped to " + wrong + ", which does not contain it"));
}

TEST(TensorStore, RejectsTensorInTwoShards) {
  ShardedCheckpoint ckpt;
  // A fourth shard repeating a tensor of the first; the index points the name at the new shard,
  // but the first shard (still listed for its other tensors) holds it too.
  auto first = SafetensorsFile::open(ckpt.dir / ckpt.shard_names[0]);
  const std::string name = first->entries().begin()->first;
  write_safetensors(ckpt.dir / "extra.safetensors", {{name, first->get(name)}});
  ckpt.index["weight_map"][name] = "extra.safetensors";
  ckpt.write_index();
  EXPECT_TRUE(contains(ckpt.open_error(), "tensor '" + name + "' is in both"));
}

TEST(TensorStore, RejectsShardPathsOutsideTheDirectory) {
  ShardedCheckpoint ckpt;
  // A real safetensors file next to the checkpoint directory, so "../" would find one.
  const std::string outside = ckpt.dir.path() + "_outside.safetensors";
  fs::copy_file(ckpt.dir / ckpt.shard_names[0], outside, fs::copy_options::overwrite_existing);
  const std::string name = ckpt.index["weight_map"].begin().key();
  const std::string outside_name = fs::path(outside).filename().string();
  for (const std::string& bad :
       {"../" + outside_name, outside, std::string("sub/x.safetensors"), std::string(".."), std::string("."),
        std::string(""), std::string("a\\b.safetensors"), std::string("model\0x", 7)}) {
    SCOPED_TRACE(bad);
    ckpt.index["weight_map"][name] = bad;
    ckpt.write_index();
    EXPECT_TRUE(contains(ckpt.open_error(), "which is not a file name inside"));
  }
  fs::remove(outside);
}

// ---------------------------------------------------------------------------------------------
// JsonView

TEST(JsonView, ReadsFixtureConfigConsistentWithCheckpoint) {
  const std::string path = kClipDir + "/config.json";
  json j = JsonView::load_file(path);
  JsonView config(&j, path);
  JsonView vision = config.child("vision_config");
  JsonView text = config.child("text_config");
  EXPECT_EQ(vision.where(), path + ": vision_config");
  // The config must describe the checkpoint's tensors: [hidden, channels, patch, patch] etc.
  int64_t hidden = vision.get_int("hidden_size"), patch = vision.get_int("patch_size");
  EXPECT_EQ(ref_shape("clip/model.safetensors", "vision_model.embeddings.patch_embedding.weight"),
            (Shape{hidden, vision.get_int("num_channels"), patch, patch}));
  int64_t n_patches = (vision.get_int("image_size") / patch) * (vision.get_int("image_size") / patch);
  EXPECT_EQ(ref_shape("clip/model.safetensors", "vision_model.embeddings.position_embedding.weight"),
            (Shape{n_patches + 1, hidden}));
  EXPECT_EQ(ref_shape("clip/model.safetensors", "text_model.embeddings.token_embedding.weight"),
            (Shape{text.get_int("vocab_size"), text.get_int("hidden_size")}));
  EXPECT_EQ(ref_shape("clip/model.safetensors", "visual_projection.weight"),
            (Shape{config.get_int("projection_dim"), hidden}));
  EXPECT_EQ(vision.get_string("hidden_act"), "quick_gelu");
  EXPECT_GT(vision.get_double("layer_norm_eps"), 0.0);
  // logit_scale is initialised from the config value (stored as f32).
  auto store = TensorStore::open(kClipDir);
  EXPECT_FLOAT_EQ(store.get_f32("logit_scale", {}).data<float>()[0],
                  static_cast<float>(config.get_double("logit_scale_init_value")));
}

TEST(JsonView, ErrorsNameFileAndFieldPath) {
  json j = JsonView::parse_text(R"({
    "vision_config": {"patch_size": "16", "deep": {"flag": 1, "inner": {"x": true}}, "sizes": [1, "x"]},
    "scalar": 3, "nothing": null, "list": [1.5, "y"]
  })",
                                "config.json");
  JsonView config(&j, "config.json");
  JsonView vision = config.child("vision_config");
  EXPECT_EQ(error_of([&] { vision.get_int("patch_size"); }),
            "config.json: vision_config.patch_size: expected an integer, got string \"16\"");
  EXPECT_EQ(error_of([&] { vision.get_int("patch_sizes"); }),
            "config.json: vision_config.patch_sizes: required field is missing");
  EXPECT_EQ(error_of([&] { vision.child("deep").child("inner").get_string("x"); }),
            "config.json: vision_config.deep.inner.x: expected a string, got boolean true");
  EXPECT_EQ(error_of([&] { vision.child("deep").get_bool("flag"); }),
            "config.json: vision_config.deep.flag: expected true or false, got number 1");
  EXPECT_EQ(error_of([&] { config.child("scalar"); }), "config.json: scalar: expected an object, got number 3");
  EXPECT_EQ(error_of([&] { config.child("nothing"); }), "config.json: nothing: required field is missing");
  EXPECT_EQ(error_of([&] { vision.get_ints("sizes"); }),
            "config.json: vision_config.sizes[1]: expected an integer, got string \"x\"");
  EXPECT_EQ(error_of([&] { config.get_doubles("list"); }), "config.json: list[1]: expected a number, got string \"y\"");
  EXPECT_EQ(error_of([&] { config.get_double("vision_config"); }),
            "config.json: vision_config: expected a number, got object");
  json arr = json::array({1, 2});
  EXPECT_EQ(error_of([&] { JsonView(&arr, "config.json").get_int("a"); }),
            "config.json: expected a JSON object, got array");
  // A label containing ": " still yields correct paths.
  JsonView odd(&j, "/tmp/a: b/config.json");
  EXPECT_EQ(error_of([&] { odd.child("vision_config").child("deep").get_int("nope"); }),
            "/tmp/a: b/config.json: vision_config.deep.nope: required field is missing");
  expect_error(error_of([&] { JsonView::parse_text("{\"a\": ", "broken.json"); }), {"broken.json: not valid JSON"});
  expect_error(error_of([&] { JsonView::load_file(kData + "/absent.json"); }), {"absent.json: cannot open"});
}

TEST(JsonView, TypedReadsAndFallbacks) {
  json j = JsonView::parse_text(R"({
    "int": 224, "intf": 224.0, "frac": 224.5, "huge": 1e300, "u64": 18446744073709551615,
    "min": -9223372036854775808, "max": 9223372036854775807, "nan_like": "NaN",
    "mean": 0.5, "means": [0.48145466, 0.4578275, 0.40821073], "ints": [1, 2.0, -3],
    "null": null, "t": true, "s": "text", "obj": {"k": 1}
  })",
                                "c.json");
  JsonView c(&j, "c.json");
  EXPECT_EQ(c.get_int("int"), 224);
  EXPECT_EQ(c.get_int("intf"), 224);
  EXPECT_EQ(c.get_int("min"), INT64_MIN);
  EXPECT_EQ(c.get_int("max"), INT64_MAX);
  for (const char* bad : {"frac", "huge", "u64", "nan_like", "obj"}) {
    SCOPED_TRACE(bad);
    expect_error(error_of([&] { c.get_int(bad); }), {"expected an integer"});
  }
  EXPECT_EQ(c.get_doubles("mean"), std::vector<double>{0.5});
  EXPECT_EQ(c.get_doubles("means"), (std::vector<double>{0.48145466, 0.4578275, 0.40821073}));
  EXPECT_EQ(c.get_ints("ints"), (std::vector<int64_t>{1, 2, -3}));
  EXPECT_TRUE(c.get_bool("t"));
  EXPECT_EQ(c.get_string("s"), "text");
  // null is "not set": has() is false and fallbacks apply.
  EXPECT_FALSE(c.has("null"));
  EXPECT_FALSE(c.has("absent"));
  EXPECT_TRUE(c.has("obj"));
  EXPECT_EQ(c.get_int("null", 7), 7);
  EXPECT_EQ(c.get_double("absent", 0.25), 0.25);
  EXPECT_FALSE(c.get_bool("absent", false));
  EXPECT_EQ(c.get_string("null", "d"), "d");
  EXPECT_EQ(c.get_doubles("absent", {1.0, 2.0}), (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(c.get_ints("absent", {4}), std::vector<int64_t>{4});
  EXPECT_FALSE(c.child_opt("null").has_value());
  ASSERT_TRUE(c.child_opt("obj").has_value());
  EXPECT_EQ(c.child_opt("obj")->get_int("k"), 1);
  // A present value of the wrong type is an error even where a fallback exists.
  expect_error(error_of([&] { c.get_int("s", 3); }), {"c.json: s: expected an integer"});
}

}  // namespace
}  // namespace lumen

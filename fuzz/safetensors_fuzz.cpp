// libFuzzer target: SafetensorsFile::parse on arbitrary bytes. Bad input must end in a
// lumen::Error; anything else (crash, sanitizer report, other exception) is a bug. A file that
// parses must hand out every tensor in bounds, and write back to bytes that parse to the same.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "formats/safetensors.h"

namespace {

// Reads every byte of the tensor so ASan sees any out-of-bounds view.
uint64_t touch(const lumen::Tensor& t) {
  uint64_t sum = 0;
  const auto* p = static_cast<const uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  return sum;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "safetensors_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A private copy of exactly `size` bytes so reads past the end are caught.
  auto owner = std::shared_ptr<uint8_t[]>(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(owner.get(), data, size);
  std::shared_ptr<lumen::SafetensorsFile> file;
  try {
    file = lumen::SafetensorsFile::parse(owner.get(), size, "fuzz.safetensors", owner);
  } catch (const lumen::Error&) {
    return 0;
  }

  std::vector<std::pair<std::string, lumen::Tensor>> tensors;
  uint64_t total = 0;
  for (const auto& [name, e] : file->entries()) {
    lumen::Tensor t = file->get(name);
    check(t.shape() == e.shape && t.dtype() == e.dtype, "get() matches the entry");
    check(t.nbytes() == e.end - e.begin, "entry byte range matches shape * dtype");
    check(reinterpret_cast<uintptr_t>(t.raw()) % lumen::dtype_size(t.dtype()) == 0, "get() is aligned");
    total += touch(t);
    tensors.emplace_back(name, t);
  }

  // Round trip: what parsed must serialize, and parse back to the same tensors and metadata.
  auto bytes = std::make_shared<std::string>(lumen::serialize_safetensors(tensors, file->metadata()));
  auto again = lumen::SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(),
                                             "fuzz.roundtrip", bytes);
  check(again->metadata() == file->metadata(), "metadata survives a round trip");
  check(again->entries().size() == tensors.size(), "tensor count survives a round trip");
  uint64_t total_again = 0;
  for (const auto& [name, t] : tensors) {
    lumen::Tensor u = again->get(name);
    check(u.shape() == t.shape() && u.dtype() == t.dtype(), "shape and dtype survive a round trip");
    check(u.nbytes() == t.nbytes() && (t.nbytes() == 0 || std::memcmp(u.raw(), t.raw(), t.nbytes()) == 0),
          "bytes survive a round trip");
    total_again += touch(u);
  }
  check(total == total_again, "byte sums agree");
  return 0;
}

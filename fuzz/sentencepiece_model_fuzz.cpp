// libFuzzer target: a SentencePiece .model (protobuf ModelProto) from arbitrary bytes, then
// encode/decode with whatever loaded. Malformed input must end in a lumen::Error naming the
// part at fault; a crash, a hang, a sanitizer report or any other exception is a bug.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/sentencepiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto spm = lumen::text::SentencePieceModel::from_bytes(bytes, "fuzz.model");
    for (const std::string& sample : {std::string(""), std::string("Hello world! I'm 12 ünïcödé 你好 🦙"),
                                     std::string("  a\tb\nc  "), std::string("\xFF\xC3 x\xE2\x82", 6)}) {
      std::vector<int64_t> ids;
      for (const auto& p : spm->encode(sample)) ids.push_back(p.id);
      (void)spm->decode(ids);
    }
    std::vector<int64_t> ids;
    for (size_t i = 0; i < size && i < 16; ++i) ids.push_back(static_cast<int64_t>(data[i]) * 3 - 5);
    (void)spm->decode(ids);
    (void)spm->bos_id();
  } catch (const lumen::Error&) {
  }
  return 0;
}

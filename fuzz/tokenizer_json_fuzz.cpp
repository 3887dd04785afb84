// libFuzzer target: Tokenizer::from_json_string on arbitrary text (a tokenizer.json held in
// memory), then encode/decode with whatever loaded. Malformed input must end in a
// lumen::Error naming the part at fault; a crash, a hang, a sanitizer report or any other
// exception is a bug.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const lumen::Tokenizer tok = lumen::Tokenizer::from_json_string(text, "fuzz.json");
    for (const char* sample : {"", "Hello world! I'm 12 ünïcödé 你好 🦙", "  a\tb\nc  ", "<s>x</s><|endoftext|>"}) {
      for (bool special : {false, true}) {
        const lumen::Encoding e = tok.encode(sample, special);
        (void)tok.decode(e.ids, false);
        (void)tok.decode(e.ids, true);
      }
    }
    std::vector<int64_t> ids;
    for (size_t i = 0; i < size && i < 16; ++i) ids.push_back(static_cast<int64_t>(data[i]) * 3 - 5);
    (void)tok.decode(ids, false);
    (void)tok.vocab_size();
    (void)tok.bos_id();
    (void)tok.pad_id();
  } catch (const lumen::Error&) {
  }
  return 0;
}

// libFuzzer target: JsonView::parse_text on arbitrary text, then every typed read on every key
// of every object reachable through child(). Bad input must end in a lumen::Error; a crash, a
// sanitizer report or any other exception (e.g. a nlohmann type_error leaking out) is a bug.
#include <cstdint>
#include <string>

#include "formats/json_config.h"

namespace {

// Calls `read` and swallows the lumen::Error a wrong-typed or missing field raises.
template <typename F>
void attempt(F&& read) {
  try {
    read();
  } catch (const lumen::Error&) {
  }
}

void read_everything(const lumen::JsonView& view, int depth) {
  if (depth > 8 || !view.raw().is_object()) return;
  (void)view.where();
  for (const auto& item : view.raw().items()) {
    const std::string& key = item.key();
    (void)view.has(key);
    (void)view.field(key);
    attempt([&] { (void)view.get_int(key); });
    attempt([&] { (void)view.get_int(key, 1); });
    attempt([&] { (void)view.get_double(key); });
    attempt([&] { (void)view.get_double(key, 0.5); });
    attempt([&] { (void)view.get_bool(key); });
    attempt([&] { (void)view.get_bool(key, true); });
    attempt([&] { (void)view.get_string(key); });
    attempt([&] { (void)view.get_string(key, "x"); });
    attempt([&] { (void)view.get_doubles(key); });
    attempt([&] { (void)view.get_doubles(key, {1.0}); });
    attempt([&] { (void)view.get_ints(key); });
    attempt([&] { (void)view.get_ints(key, {1}); });
    attempt([&] {
      if (auto child = view.child_opt(key)) read_everything(*child, depth + 1);
    });
    attempt([&] { read_everything(view.child(key), depth + 1); });
  }
  // Absent keys take the fallback or fail cleanly.
  attempt([&] { (void)view.get_int("no such key"); });
  attempt([&] { (void)view.child("no such key"); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = lumen::JsonView::parse_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const lumen::Error&) {
    return 0;
  }
  lumen::JsonView root(&j, "fuzz.json");
  attempt([&] { (void)root.get_int("a"); });  // the root may be an array or a scalar
  read_everything(root, 0);
  return 0;
}

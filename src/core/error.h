// Errors are values with context: every failure that a user can cause (bad file, bad shape,
// bad request) is thrown as lumen::Error with a message naming the file/field/tensor at fault.
// Front ends catch it at the top and print it; nothing aborts on bad input.
#pragma once
#include <stdexcept>
#include <string>
#include <sstream>

namespace lumen {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from pieces: fail("model.safetensors: tensor '", name, "' missing").
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(os.str());
}

// Check a user-facing condition; message built only on failure.
#define LUMEN_CHECK(cond, ...)             \
  do {                                     \
    if (!(cond)) ::lumen::fail(__VA_ARGS__); \
  } while (0)

// Adds context to errors raised inside `body` ("loading clip/model.safetensors: ...").
template <typename F>
auto with_context(const std::string& context, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace lumen

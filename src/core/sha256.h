// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex. Used where content identifies a
// cached result (the server's image-feature cache): a collision-resistant key means one
// client's image can never be answered with another's features.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lumen {

std::string sha256_hex(const uint8_t* data, size_t size);
inline std::string sha256_hex(const std::string& s) {
  return sha256_hex(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace lumen

#include "vision/exif.h"

#include <cstring>

namespace lumen {

namespace {

struct TiffReader {
  const uint8_t* data;
  size_t size;
  bool big_endian;

  bool u16(size_t at, uint32_t* out) const {
    if (at > size || size - at < 2) return false;
    *out = big_endian ? (uint32_t(data[at]) << 8 | data[at + 1]) : (uint32_t(data[at + 1]) << 8 | data[at]);
    return true;
  }
  bool u32(size_t at, uint32_t* out) const {
    if (at > size || size - at < 4) return false;
    const uint8_t* p = data + at;
    *out = big_endian ? (uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3])
                      : (uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]);
    return true;
  }
};

constexpr uint32_t kOrientationTag = 0x0112;
enum TiffType : uint32_t { kShort = 3, kLong = 4, kSShort = 8, kSLong = 9 };

}  // namespace

int exif_orientation(const uint8_t* data, size_t size) noexcept {
  if (data == nullptr) return 0;
  // Image.Exif.load strips every leading "Exif\0\0".
  while (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) {
    data += 6;
    size -= 6;
  }
  if (size < 8) return 0;
  TiffReader r{data, size, false};
  if (std::memcmp(data, "II", 2) == 0) {
    r.big_endian = false;
  } else if (std::memcmp(data, "MM", 2) == 0) {
    r.big_endian = true;
  } else {
    return 0;
  }
  uint32_t ifd0 = 0, count = 0;
  if (!r.u32(4, &ifd0) || !r.u16(ifd0, &count)) return 0;
  // Entries are 12 bytes: tag u16, type u16, count u32, value-or-offset (4 bytes).
  // PIL keeps the entries read before a truncation, so a short IFD just ends the scan.
  for (uint32_t i = 0; i < count; ++i) {
    size_t entry = size_t(ifd0) + 2 + size_t(i) * 12;
    uint32_t tag = 0, type = 0, n = 0;
    if (!r.u16(entry, &tag) || !r.u16(entry + 2, &type) || !r.u32(entry + 4, &n)) return 0;
    if (size - entry < 12) return 0;
    if (tag != kOrientationTag) continue;
    if (n != 1) return -1;
    uint32_t v = 0;
    switch (type) {
      case kShort:
      case kSShort:
        r.u16(entry + 8, &v);
        break;
      case kLong:
      case kSLong:
        r.u32(entry + 8, &v);
        break;
      default:
        return -1;
    }
    // Only 1..8 mean anything; any other value is "present, do nothing" (-1), so that a
    // present-but-odd tag still hides the XMP fallback as it does in PIL.
    return (v >= 1 && v <= 8) ? static_cast<int>(v) : -1;
  }
  return 0;
}

int xmp_orientation(const uint8_t* data, size_t size) noexcept {
  if (data == nullptr) return 0;
  static const char kKey[] = "tiff:Orientation";
  const size_t key_len = sizeof(kKey) - 1;
  for (size_t i = 0; i + key_len < size; ++i) {
    if (std::memcmp(data + i, kKey, key_len) != 0) continue;
    size_t at = i + key_len;
    if (at + 2 < size && data[at] == '=' && data[at + 1] == '"') {
      uint8_t d = data[at + 2];
      if (d >= '0' && d <= '9') return d - '0';
    } else if (at + 1 < size && data[at] == '>') {
      uint8_t d = data[at + 1];
      if (d >= '0' && d <= '9') return d - '0';
    }
  }
  return 0;
}

int resolve_orientation(int exif_value, int xmp_value) noexcept {
  int o = exif_value != 0 ? exif_value : xmp_value;
  return (o >= 2 && o <= 8) ? o : 1;
}

}  // namespace lumen

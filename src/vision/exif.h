// The EXIF/XMP orientation lookups PIL performs in Image.getexif() (used by
// ImageOps.exif_transpose). Pure byte parsing: bounds-checked, allocation-free, never throws.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lumen {

// Orientation tag (0x0112) of IFD0 in an EXIF blob: a TIFF header ("II*\0" / "MM\0*"),
// optionally preceded by one or more "Exif\0\0" (PIL strips them all).
// Returns 1..8 when the tag is a single SHORT/LONG/SSHORT/SLONG with that value, -1 when the
// tag is present in any other form or value (PIL then neither transposes nor looks at XMP), and
// 0 when the tag is absent or the blob is not readable.
int exif_orientation(const uint8_t* data, size_t size) noexcept;

// PIL's XMP fallback, used only when EXIF has no orientation: the first match of
// `tiff:Orientation(="|>)([0-9])` in the packet; 0 when there is none.
int xmp_orientation(const uint8_t* data, size_t size) noexcept;

// Combines the two as Image.getexif() does: EXIF first, XMP only when the EXIF tag is absent.
// Returns the orientation to apply (2..8) or 1 when nothing is to be done.
int resolve_orientation(int exif_value, int xmp_value) noexcept;

}  // namespace lumen

// Image-decoding flags shared by every command that reads images.
#pragma once
#include "apps/cli/commands.h"
#include "vision/image.h"

namespace lumen::cli {

inline void add_image_flags(CLI::App* cmd, DecodeOptions* d) {
  cmd->add_option("--max-pixels", d->max_pixels,
                  "Refuse images with more pixels than this (decompression-bomb guard)")
      ->capture_default_str();
}

}  // namespace lumen::cli

// A one-line progress bar on stderr for long work (indexing, benchmarks). On a terminal it
// redraws in place; otherwise it prints a line at every 10% so logs stay short.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace lumen::cli {

class ProgressBar {
 public:
  ProgressBar(std::string what, size_t total, bool enabled = true)
      : what_(std::move(what)), total_(total), enabled_(enabled && total > 0), tty_(::isatty(2) != 0),
        start_(std::chrono::steady_clock::now()) {}

  void update(size_t done) {
    if (!enabled_) return;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    const int width = 30;
    const int filled = static_cast<int>(width * done / total_);
    if (tty_) {
      std::fprintf(stderr, "\r%s [%s%s] %zu/%zu  %.1f/s ", what_.c_str(), std::string(static_cast<size_t>(filled), '#').c_str(),
                   std::string(static_cast<size_t>(width - filled), ' ').c_str(), done, total_, rate);
      if (done == total_) std::fprintf(stderr, "\n");
    } else {
      size_t decile = done * 10 / total_;
      if (decile != last_decile_ || done == total_) {
        std::fprintf(stderr, "%s %zu/%zu (%.1f/s)\n", what_.c_str(), done, total_, rate);
        last_decile_ = decile;
      }
    }
    std::fflush(stderr);
  }

 private:
  std::string what_;
  size_t total_;
  bool enabled_, tty_;
  size_t last_decile_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lumen::cli

// Memory read bandwidth with 1 thread and with the whole pool, for buffers from L2-sized to
// far beyond the last-level cache, read as 1, 4 or 8 side-by-side streams per thread. The DRAM figure (largest buffer) is the bound for decode:
// tokens/s <= bandwidth / weight bytes read per token. Not a test.
// Usage: membw_bench [--mib 1024] [--reps 5]
// On a shared machine other jobs steal bandwidth: the best of the repeats is reported.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench/membw.h"

int main(int argc, char** argv) {
  using namespace lumen;
  size_t big_mib = 1024;
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) big_mib = static_cast<size_t>(std::atol(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  std::printf("read bandwidth, GB/s (1e9 B/s), best of %d; wall and per-thread CPU time\n", reps);
  std::printf("%-12s %-8s %17s %17s\n", "buffer", "streams", "1 thread", num_threads() > 1 ? "pool" : "");
  for (size_t mib : {size_t{1}, size_t{32}, size_t{256}, big_mib}) {
    bench::Buffer buf(mib << 20);
    for (int streams : {1, 4, 8}) {
      const bench::Bandwidth one = bench::read_bandwidth(buf, 1, reps, streams);
      std::printf("%7zu MiB %-8d %8.1f %8.1f", mib, streams, one.wall, one.cpu);
      if (num_threads() > 1) {
        const bench::Bandwidth all = bench::read_bandwidth(buf, num_threads(), reps, streams);
        std::printf(" %8.1f %8.1f  (%d threads)", all.wall, all.cpu, num_threads());
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return 0;
}

// A small persistent thread pool. parallel_for splits [0, n) into one contiguous chunk per
// thread; the calling thread does chunk 0, so threads=1 runs inline with no synchronisation.
#pragma once
#include <cstdint>
#include <functional>

namespace lumen {

// Sets the number of threads used by every kernel (>= 1). Default: hardware concurrency.
void set_num_threads(int n);
int num_threads();

// Runs fn(begin, end) over [0, n) split into at most num_threads() chunks of >= min_chunk.
// Nested calls (from inside a worker) run inline.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

}  // namespace lumen

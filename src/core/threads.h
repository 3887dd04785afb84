// A small persistent thread pool. parallel_for splits [0, n) into at most one contiguous chunk
// per thread; the chunks are claimed on demand by the calling thread and the workers, so a
// worker that is late to wake (or whose core is busy) costs the caller no waiting for chunks
// nobody has started. threads=1 runs inline with no synchronisation.
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

// Runs fn(begin, end) over [0, n) in pieces of `grain` (the last may be shorter), more pieces
// than threads, each claimed on demand by whichever thread is free. For work where a thread
// may fall behind (descheduled on a shared machine, or uneven pieces), a late thread then
// holds up at most one piece instead of its whole 1/threads share. Nested calls run inline.
void parallel_for_dynamic(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace lumen

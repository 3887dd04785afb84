#include "core/threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace lumen {
namespace {

thread_local bool t_in_worker = false;

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return n_; }

  void resize(int n) {
    n = std::max(1, n);
    if (n == n_) return;
    stop();
    n_ = n;
    quit_ = false;
    // New workers must not mistake the last finished job for a new one: they start from the
    // current generation.
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, g = generation_] { loop(g); });
  }

  // Runs job(c) for every c in [0, chunks). Chunks are handed out on demand (an atomic
  // counter), not one per thread: the caller starts on them at once, and when a worker is
  // late (asleep, or its core busy with another process) the caller takes its chunks instead
  // of sitting in a wait for them. Returns after every chunk has finished.
  void run(int chunks, const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> serial(run_mutex_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &job;
      chunks_ = chunks;
      next_.store(0, std::memory_order_relaxed);
      ++generation_;
    }
    cv_.notify_all();
    t_in_worker = true;
    drain(job, chunks);
    t_in_worker = false;
    // Every chunk has been claimed; wait for the workers still running theirs. A worker that
    // wakes after this sees job_ == nullptr and goes back to sleep.
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return active_ == 0; });
    job_ = nullptr;
  }

 private:
  void drain(const std::function<void(int)>& job, int chunks) {
    for (int c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks;) job(c);
  }

  void loop(uint64_t seen) {
    t_in_worker = true;
    for (;;) {
      const std::function<void(int)>* job;
      int chunks;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
        job = job_;
        chunks = chunks_;
        if (!job) continue;  // woke after that region ended
        ++active_;
      }
      drain(*job, chunks);
      std::lock_guard<std::mutex> lk(m_);
      if (--active_ == 0) done_cv_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  int n_ = 0;
  std::vector<std::thread> workers_;
  std::mutex m_, run_mutex_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  int chunks_ = 0;
  std::atomic<int> next_{0};  // next unclaimed chunk of the current region
  int active_ = 0;            // workers inside the current region's job
  uint64_t generation_ = 0;
  bool quit_ = false;
};

Pool& pool() {
  static Pool p(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return p;
}

}  // namespace

void set_num_threads(int n) { pool().resize(n); }
int num_threads() { return pool().size(); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  int threads = num_threads();
  int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  int chunks = static_cast<int>(std::min<int64_t>(threads, max_chunks));
  if (chunks <= 1 || t_in_worker) {
    fn(0, n);
    return;
  }
  pool().run(chunks, [&](int c) {
    int64_t begin = n * c / chunks;
    int64_t end = n * (c + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

void parallel_for_dynamic(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>({1, grain, (n + (1 << 20) - 1) >> 20});  // at most 2^20 pieces
  const int64_t pieces = (n + grain - 1) / grain;
  if (pieces <= 1 || num_threads() <= 1 || t_in_worker) {
    fn(0, n);
    return;
  }
  pool().run(static_cast<int>(pieces), [&](int c) { fn(c * grain, std::min(n, (c + 1) * grain)); });
}

}  // namespace lumen

// Serving many chat requests on one VlmSession: a bounded request queue, N slots, and one
// worker thread that owns all model compute. An admitted request's images are encoded (features
// from a cache keyed by the image's SHA-256, so the images of a multi-turn chat are encoded
// once); then every step is one DecoderLm::forward_batch that carries one decode row for each
// answering slot and up to `prefill_chunk` prompt rows of the slots still prefilling (chunked
// prefill: a long prompt no longer stalls the others' answers for its whole prefill).
// Continuous batching: a finished slot is refilled from the queue between steps.
//
//   GenerationScheduler sched(session, {.slots = 4, .max_queue = 64});
//   auto job = sched.submit(std::move(request));       // throws QueueFull when the queue is full
//   while (job->wait_text(&piece, 1s)) send(piece);    // or job->wait_done()
//   job->cancel();                                     // client went away
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/vlm_session.h"

namespace lumen {

// One image of a request: decoded pixels and the SHA-256 of the bytes they came from.
struct RequestImage {
  Image image;
  std::string sha256;
};

struct GenerationRequest {
  std::string prompt_text;           // rendered chat, one image marker per image
  std::vector<RequestImage> images;  // in marker order
  GenerationParams params;
  // When max_new_tokens was not asked for, it is cut to what fits the context instead of an error.
  bool max_tokens_explicit = false;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// Why a request ended. Stop/Length are normal; the others carry `error`.
enum class JobEnd { Running, Stop, Length, Cancelled, Timeout, BadRequest, Failed, Shutdown };

// A submitted request, shared by the scheduler (writer) and the front end (reader).
class GenerationJob {
 public:
  // Waits up to `wait` for new text or the end. Appends the new text to *out; returns false
  // once the job has ended and all its text was taken.
  bool wait_text(std::string* out, std::chrono::milliseconds wait);
  // Blocks until the job ends.
  void wait_done();
  // Asks the scheduler to stop this request at its next step (or drop it from the queue).
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Valid once ended.
  JobEnd end() const;
  std::string text() const;  // all text produced
  std::string error() const;
  int64_t prompt_tokens() const;
  int64_t completion_tokens() const;
  int64_t cached_images() const;  // images whose features came from the cache
  double queue_seconds() const, prefill_seconds() const, decode_seconds() const;

 private:
  friend class GenerationScheduler;
  void emit(const std::string& piece);
  void finish(JobEnd end, std::string error = {});

  GenerationRequest req_;
  std::chrono::steady_clock::time_point submitted_ = std::chrono::steady_clock::now();
  std::atomic<bool> cancelled_{false};
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::string text_, unread_;
  JobEnd end_ = JobEnd::Running;
  std::string error_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, cached_images_ = 0;
  bool admitted_ = false;  // holds a slot (worker thread only)
  double queue_s_ = 0, prefill_s_ = 0, decode_s_ = 0;
};

struct SchedulerOptions {
  int slots = 1;                 // sequences decoded together
  size_t max_queue = 64;         // waiting requests beyond the slots; more are refused
  size_t image_cache_entries = 64;
  // Prompt rows one step prefills at most, over all prefilling slots (0 = each prompt whole).
  int64_t prefill_chunk = 256;
};

struct SchedulerStats {
  size_t queued = 0, active = 0;
  int64_t image_cache_hits = 0, image_cache_misses = 0;
  int64_t batched_steps = 0, batched_rows = 0;  // forwards and the sequences they carried
  int64_t prefill_rows = 0;                      // prompt rows those forwards carried
  int64_t mixed_steps = 0;                       // forwards that prefilled and decoded together
  int64_t cancelled = 0, timed_out = 0;
};

class QueueFull : public Error {
 public:
  using Error::Error;
};

class GenerationScheduler {
 public:
  GenerationScheduler(const VlmSession& session, SchedulerOptions options);
  ~GenerationScheduler();  // shutdown(0)
  GenerationScheduler(const GenerationScheduler&) = delete;
  GenerationScheduler& operator=(const GenerationScheduler&) = delete;

  // Queues a request. Throws QueueFull when max_queue requests are already waiting, Error
  // when shutting down.
  std::shared_ptr<GenerationJob> submit(GenerationRequest request);
  // Refuses new requests; lets queued and running ones finish for up to `grace`, then ends the
  // rest with JobEnd::Shutdown and stops the worker.
  void shutdown(std::chrono::milliseconds grace);
  SchedulerStats stats() const;
  const VlmSession& session() const { return session_; }

 private:
  struct Slot;
  void worker();
  // Admits one request: image features, prompt embeddings, KV cache; the prompt is prefilled
  // by the following steps. Null when the request ends at once (no new tokens asked for).
  std::unique_ptr<Slot> start(const std::shared_ptr<GenerationJob>& job);
  // One forward over every slot (decode rows and prefill chunks); slots that end are reset.
  void step(std::vector<std::unique_ptr<Slot>>& slots);
  Tensor image_features(const RequestImage& image, bool* hit);
  // Ends a job: frees its slot in the count first, so a client that sends its next request
  // the moment this one ends finds the slot free; then wakes the job's reader.
  void end_job(const std::shared_ptr<GenerationJob>& job, JobEnd end, const std::string& msg = {});
  // Samples from logits row `lg` for `slot`, emits text; returns false when the slot is done.
  bool advance(Slot& slot, const float* logits);

  const VlmSession& session_;
  SchedulerOptions opt_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenerationJob>> queue_;
  size_t active_ = 0;
  bool accepting_ = true, stop_ = false;
  std::chrono::steady_clock::time_point drain_deadline_ = std::chrono::steady_clock::time_point::max();
  SchedulerStats stats_;
  // Image features by SHA-256, least recently used at the back. Only the worker touches it.
  std::list<std::pair<std::string, Tensor>> lru_;
  std::unordered_map<std::string, std::list<std::pair<std::string, Tensor>>::iterator> lru_index_;
  std::thread thread_;
};

const char* job_end_name(JobEnd e);  // "stop", "length", "cancelled", "timeout", ...

}  // namespace lumen

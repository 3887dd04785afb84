#include "runtime/scheduler.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace lumen {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// A user's request was at fault (context overflow, image markers in the text, bad sampling
// parameters): the front end answers 400, not 500.
class RequestError : public Error {
 public:
  using Error::Error;
};

}  // namespace

const char* job_end_name(JobEnd e) {
  switch (e) {
    case JobEnd::Running: return "running";
    case JobEnd::Stop: return "stop";
    case JobEnd::Length: return "length";
    case JobEnd::Cancelled: return "cancelled";
    case JobEnd::Timeout: return "timeout";
    case JobEnd::BadRequest: return "bad_request";
    case JobEnd::Failed: return "failed";
    case JobEnd::Shutdown: return "shutdown";
  }
  return "?";
}

// ---- GenerationJob ----

bool GenerationJob::wait_text(std::string* out, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lk(m_);
  cv_.wait_for(lk, wait, [&] { return !unread_.empty() || end_ != JobEnd::Running; });
  if (!unread_.empty()) {
    *out += unread_;
    unread_.clear();
    return true;
  }
  return end_ == JobEnd::Running;
}

void GenerationJob::wait_done() {
  std::unique_lock<std::mutex> lk(m_);
  cv_.wait(lk, [&] { return end_ != JobEnd::Running; });
}

JobEnd GenerationJob::end() const {
  std::lock_guard<std::mutex> lk(m_);
  return end_;
}
std::string GenerationJob::text() const {
  std::lock_guard<std::mutex> lk(m_);
  return text_;
}
std::string GenerationJob::error() const {
  std::lock_guard<std::mutex> lk(m_);
  return error_;
}
int64_t GenerationJob::prompt_tokens() const {
  std::lock_guard<std::mutex> lk(m_);
  return prompt_tokens_;
}
int64_t GenerationJob::completion_tokens() const {
  std::lock_guard<std::mutex> lk(m_);
  return completion_tokens_;
}
int64_t GenerationJob::cached_images() const {
  std::lock_guard<std::mutex> lk(m_);
  return cached_images_;
}
double GenerationJob::queue_seconds() const {
  std::lock_guard<std::mutex> lk(m_);
  return queue_s_;
}
double GenerationJob::prefill_seconds() const {
  std::lock_guard<std::mutex> lk(m_);
  return prefill_s_;
}
double GenerationJob::decode_seconds() const {
  std::lock_guard<std::mutex> lk(m_);
  return decode_s_;
}

void GenerationJob::emit(const std::string& piece) {
  if (piece.empty()) return;
  {
    std::lock_guard<std::mutex> lk(m_);
    text_ += piece;
    unread_ += piece;
  }
  cv_.notify_all();
}

void GenerationJob::finish(JobEnd end, std::string error) {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (end_ != JobEnd::Running) return;
    end_ = end;
    error_ = std::move(error);
  }
  cv_.notify_all();
}

// ---- GenerationScheduler ----

struct GenerationScheduler::Slot {
  std::shared_ptr<GenerationJob> job;
  KvCache cache;
  TokenSampler sampler;
  TextStreamer streamer;
  std::vector<int64_t> context;  // prompt + generated ids (repetition penalty)
  int64_t generated = 0, max_new = 0;
  int64_t next = -1;  // the token the next decode step feeds
  Tensor prompt;       // [L, D] prompt embeddings until prefilled, then released
  int64_t prefilled = 0;
  bool prefilling() const { return prompt.defined(); }
  Clock::time_point admitted, decode_start;
  Slot(std::shared_ptr<GenerationJob> j, const GenerationParams& p, const Tokenizer& tok)
      : job(std::move(j)), sampler(p.sampling), streamer(tok, p.stop) {}
};

GenerationScheduler::GenerationScheduler(const VlmSession& session, SchedulerOptions options)
    : session_(session), opt_(options) {
  LUMEN_CHECK(opt_.slots >= 1, "the scheduler needs at least one slot, got ", opt_.slots);
  thread_ = std::thread([this] { worker(); });
}

GenerationScheduler::~GenerationScheduler() { shutdown(std::chrono::milliseconds(0)); }

std::shared_ptr<GenerationJob> GenerationScheduler::submit(GenerationRequest request) {
  auto job = std::make_shared<GenerationJob>();
  job->req_ = std::move(request);
  {
    std::lock_guard<std::mutex> lk(m_);
    LUMEN_CHECK(accepting_, "the server is shutting down");
    // Free slots take requests at once; beyond them, max_queue may wait.
    const size_t free_slots = static_cast<size_t>(opt_.slots) - std::min(active_, static_cast<size_t>(opt_.slots));
    if (queue_.size() >= opt_.max_queue + free_slots)
      throw QueueFull("the request queue is full (" + std::to_string(opt_.max_queue) +
                      " waiting); try again later");
    queue_.push_back(job);
  }
  cv_.notify_all();
  return job;
}

void GenerationScheduler::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (!thread_.joinable()) return;
    accepting_ = false;
    stop_ = true;
    drain_deadline_ = Clock::now() + grace;
  }
  cv_.notify_all();
  thread_.join();
}

SchedulerStats GenerationScheduler::stats() const {
  std::lock_guard<std::mutex> lk(m_);
  SchedulerStats s = stats_;
  s.queued = queue_.size();
  s.active = active_;
  return s;
}

Tensor GenerationScheduler::image_features(const RequestImage& image, bool* hit) {
  auto it = lru_index_.find(image.sha256);
  if (it != lru_index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used first
    *hit = true;
    return it->second->second;
  }
  *hit = false;
  Tensor f = session_.encode_image(image.image);
  if (opt_.image_cache_entries == 0 || image.sha256.empty()) return f;
  lru_.emplace_front(image.sha256, f);
  lru_index_[image.sha256] = lru_.begin();
  while (lru_.size() > opt_.image_cache_entries) {
    lru_index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return f;
}

std::unique_ptr<GenerationScheduler::Slot> GenerationScheduler::start(const std::shared_ptr<GenerationJob>& job) {
  const Clock::time_point t0 = Clock::now();
  const GenerationRequest& req = job->req_;
  const DecoderLm& lm = session_.model().lm();
  std::vector<Tensor> feats;
  int64_t hits = 0;
  PreparedPrompt p;
  try {
    for (const auto& img : req.images) {
      bool hit = false;
      feats.push_back(image_features(img, &hit));
      if (hit) ++hits;
      std::lock_guard<std::mutex> lk(m_);
      ++(hit ? stats_.image_cache_hits : stats_.image_cache_misses);
    }
    p = session_.prepare_encoded(req.prompt_text, feats);
  } catch (const Error& e) {
    throw RequestError(e.what());
  }
  const int64_t L = static_cast<int64_t>(p.ids.size());
  const int64_t ctx = std::min(lm.cfg.max_positions, session_.model().max_context());
  int64_t max_new = req.params.max_new_tokens;
  if (L + max_new > ctx) {
    if (req.max_tokens_explicit || L >= ctx)
      throw RequestError("context overflow: the prompt takes " + std::to_string(L) + " tokens and " +
                         std::to_string(max_new) + " new tokens were asked for, but the model's context is " +
                         std::to_string(ctx) + " tokens");
    max_new = ctx - L;
  }
  std::unique_ptr<Slot> slot;
  try {
    slot = std::make_unique<Slot>(job, req.params, session_.tokenizer());
  } catch (const Error& e) {
    throw RequestError(e.what());  // sampling parameters out of range
  }
  slot->max_new = max_new;
  slot->context = p.ids;
  {
    std::lock_guard<std::mutex> lk(job->m_);
    job->prompt_tokens_ = L;
    job->cached_images_ = hits;
    job->queue_s_ = seconds_between(job->submitted_, t0);
  }
  if (max_new == 0) {
    end_job(job, JobEnd::Length);
    return nullptr;
  }
  slot->cache = lm.new_cache(L + max_new);
  slot->prompt = std::move(p.embeds);  // [L, D]
  slot->admitted = t0;
  return slot;
}

void GenerationScheduler::step(std::vector<std::unique_ptr<Slot>>& slots) {
  const DecoderLm& lm = session_.model().lm();
  const int64_t V = lm.cfg.vocab_size, D = lm.cfg.dim;
  // Rows of this forward: each answering slot's next token, then prompt chunks in admission
  // order while the budget lasts (a slot that gets no rows this step waits for the next).
  int64_t budget = opt_.prefill_chunk > 0 ? opt_.prefill_chunk : std::numeric_limits<int64_t>::max();
  std::vector<Slot*> in;                 // slots in this step, in row order
  std::vector<int64_t> rows;             // their row counts
  std::vector<int64_t> decode_ids;
  int64_t prefill_rows = 0;
  for (auto& s : slots)
    if (!s->prefilling()) {
      in.push_back(s.get());
      rows.push_back(1);
      decode_ids.push_back(s->next);
    }
  const int64_t n_decode = static_cast<int64_t>(in.size());
  for (auto& s : slots) {
    if (!s->prefilling() || budget == 0) continue;
    const int64_t take = std::min(budget, s->prompt.dim(0) - s->prefilled);
    in.push_back(s.get());
    rows.push_back(take);
    budget -= take;
    prefill_rows += take;
  }
  if (in.empty()) return;
  const int64_t total = n_decode + prefill_rows;
  try {
    Tensor x = Tensor::zeros({total, D});  // [total, D]
    if (n_decode > 0) {
      Tensor e = lm.embed(decode_ids.data(), n_decode);
      std::memcpy(x.data<float>(), e.data<float>(), e.nbytes());
    }
    std::vector<DecoderLm::SequenceChunk> chunks;
    int64_t r = n_decode;
    for (size_t i = 0; i < in.size(); ++i) {
      chunks.push_back({&in[i]->cache, rows[i]});
      if (static_cast<int64_t>(i) < n_decode) continue;
      const float* src = in[i]->prompt.data<float>() + in[i]->prefilled * D;
      std::memcpy(x.data<float>() + r * D, src, static_cast<size_t>(rows[i] * D) * sizeof(float));
      r += rows[i];
    }
    Tensor h = lm.forward_batch(x, chunks);  // [total, D]
    // Logits only where a token is sampled: decode rows, and the last row of a finished prompt.
    std::vector<int64_t> pick;  // row of h per slot in `in`, -1 = still prefilling
    r = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const bool last_chunk = static_cast<int64_t>(i) < n_decode ||
                              in[i]->prefilled + rows[i] == in[i]->prompt.dim(0);
      pick.push_back(last_chunk ? r + rows[i] - 1 : -1);
      r += rows[i];
    }
    std::vector<int64_t> sampled;
    for (int64_t p : pick)
      if (p >= 0) sampled.push_back(p);
    Tensor hs = Tensor::zeros({static_cast<int64_t>(sampled.size()), D});
    for (size_t j = 0; j < sampled.size(); ++j)
      std::memcpy(hs.data<float>() + static_cast<int64_t>(j) * D, h.data<float>() + sampled[j] * D,
                  static_cast<size_t>(D) * sizeof(float));
    Tensor logits = lm.logits(hs.data<float>(), static_cast<int64_t>(sampled.size()));  // [sampled, V]
    size_t j = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      Slot& s = *in[i];
      if (static_cast<int64_t>(i) >= n_decode) {
        s.prefilled += rows[i];
        if (pick[i] < 0) continue;
        // The prompt is in the cache: its first token is sampled now.
        s.prompt = Tensor();
        s.decode_start = Clock::now();
        std::lock_guard<std::mutex> lk(s.job->m_);
        s.job->prefill_s_ = seconds_between(s.admitted, s.decode_start);
      }
      if (!advance(s, logits.data<float>() + static_cast<int64_t>(j++) * V)) {
        for (auto& owned : slots)
          if (owned.get() == &s) owned.reset();
      }
    }
  } catch (const std::exception& e) {
    // A failed step leaves every cache in it in doubt: end those requests.
    for (auto& s : slots)
      if (s && std::find(in.begin(), in.end(), s.get()) != in.end()) {
        end_job(s->job, JobEnd::Failed, std::string("model step failed: ") + e.what());
        s.reset();
      }
  }
  slots.erase(std::remove(slots.begin(), slots.end(), nullptr), slots.end());
  std::lock_guard<std::mutex> lk(m_);
  ++stats_.batched_steps;
  stats_.batched_rows += static_cast<int64_t>(in.size());
  stats_.prefill_rows += prefill_rows;
  if (n_decode > 0 && prefill_rows > 0) ++stats_.mixed_steps;
}

bool GenerationScheduler::advance(Slot& s, const float* logits) {
  const GenerationParams& params = s.job->req_.params;
  const int64_t V = session_.model().lm().cfg.vocab_size;
  std::vector<float> lg(logits, logits + V);
  if (s.generated < params.min_new_tokens)  // MinNewTokensLengthLogitsProcessor
    for (int64_t e : params.eos_ids)
      if (e >= 0 && e < V) lg[static_cast<size_t>(e)] = -std::numeric_limits<float>::infinity();
  const int64_t next = s.sampler.sample(lg, s.context);
  auto done = [&](JobEnd end) {
    if (end != JobEnd::Cancelled) s.job->emit(s.streamer.finish());
    {
      std::lock_guard<std::mutex> lk(s.job->m_);
      s.job->completion_tokens_ = s.generated;
      s.job->decode_s_ = seconds_between(s.decode_start, Clock::now());
    }
    end_job(s.job, end);
    return false;
  };
  if (std::find(params.eos_ids.begin(), params.eos_ids.end(), next) != params.eos_ids.end()) return done(JobEnd::Stop);
  ++s.generated;
  s.context.push_back(next);
  s.job->emit(s.streamer.push(next));
  if (s.streamer.stopped()) return done(JobEnd::Stop);
  if (s.generated >= s.max_new) return done(JobEnd::Length);
  s.next = next;
  return true;
}

void GenerationScheduler::end_job(const std::shared_ptr<GenerationJob>& job, JobEnd end, const std::string& msg) {
  {
    std::lock_guard<std::mutex> lk(m_);
    if (job->admitted_ && active_ > 0) --active_;
    job->admitted_ = false;
    if (end == JobEnd::Cancelled) ++stats_.cancelled;
    if (end == JobEnd::Timeout) ++stats_.timed_out;
  }
  job->finish(end, msg);
}

void GenerationScheduler::worker() {
  std::vector<std::unique_ptr<Slot>> slots;
  // Ends a job that never got (or lost) its slot, with the message the client sees.
  auto stop_reason = [](const GenerationJob& job, Clock::time_point now, bool past_drain, JobEnd* end,
                        std::string* msg) {
    if (job.cancelled()) {
      *end = JobEnd::Cancelled;
      *msg = "the request was cancelled";
    } else if (now >= job.req_.deadline) {
      *end = JobEnd::Timeout;
      *msg = "the request timed out";
    } else if (past_drain) {
      *end = JobEnd::Shutdown;
      *msg = "the server is shutting down";
    } else {
      return false;
    }
    return true;
  };
  for (;;) {
    std::vector<std::shared_ptr<GenerationJob>> admit;
    std::vector<std::pair<std::shared_ptr<GenerationJob>, std::pair<JobEnd, std::string>>> dropped;
    bool past_drain = false;
    {
      std::unique_lock<std::mutex> lk(m_);
      // Wake at least once a second while idle-waiting so queued requests time out on time.
      cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_ || !queue_.empty() || !slots.empty(); });
      const Clock::time_point now = Clock::now();
      past_drain = now >= drain_deadline_;
      if (stop_ && queue_.empty() && slots.empty()) break;
      // Drop queued requests that were cancelled or timed out while waiting.
      for (auto it = queue_.begin(); it != queue_.end();) {
        JobEnd end;
        std::string msg;
        if (stop_reason(**it, now, past_drain, &end, &msg)) {
          dropped.push_back({*it, {end, msg}});
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      while (slots.size() + admit.size() < static_cast<size_t>(opt_.slots) && !queue_.empty()) {
        admit.push_back(queue_.front());
        admit.back()->admitted_ = true;
        ++active_;
        queue_.pop_front();
      }
    }
    for (auto& [job, why] : dropped) end_job(job, why.first, why.second);
    // Admission: images encoded, prompt embedded; the steps below prefill it.
    for (auto& job : admit) {
      try {
        if (auto s = start(job)) slots.push_back(std::move(s));
      } catch (const RequestError& e) {
        end_job(job, JobEnd::BadRequest, e.what());
      } catch (const std::exception& e) {
        end_job(job, JobEnd::Failed, e.what());
      }
    }
    // Slots whose client left, whose time ran out, or that the shutdown grace ends.
    const Clock::time_point now = Clock::now();
    for (auto& s : slots) {
      JobEnd end;
      std::string msg;
      if (stop_reason(*s->job, now, past_drain, &end, &msg)) {
        {
          std::lock_guard<std::mutex> lk(s->job->m_);
          s->job->completion_tokens_ = s->generated;
        }
        end_job(s->job, end, msg);
        s.reset();
      }
    }
    slots.erase(std::remove(slots.begin(), slots.end(), nullptr), slots.end());
    if (!slots.empty()) step(slots);
  }
}

}  // namespace lumen

// Prometheus text exposition (version 0.0.4) of the server's counters: requests by endpoint
// and status, tokens, latency histograms, queue depth. Thread-safe; rendered on GET /metrics.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lumen::server {

class Metrics {
 public:
  // A finished request: its endpoint ("/v1/chat/completions"), HTTP status and duration.
  void observe_request(const std::string& endpoint, int status, double seconds);
  void observe_tokens(const std::string& model, int64_t prompt, int64_t completion);
  void observe_time_to_first_token(double seconds);
  // Gauges are sampled at render time: {name, help, {labels, value}...}.
  struct Gauge {
    std::string name, help;
    std::string type = "gauge";  // or "counter" for totals kept elsewhere (the scheduler's)
    std::vector<std::pair<std::string, double>> values;  // label set ("model=\"x\"") -> value
  };
  std::string render(const std::vector<Gauge>& gauges) const;

  static const std::vector<double>& latency_buckets();

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket (not cumulative); last = +Inf
    double sum = 0;
    uint64_t n = 0;
    void add(double v);
  };
  mutable std::mutex m_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram ttft_;
  std::map<std::string, std::pair<int64_t, int64_t>> tokens_;  // model -> prompt, completion
};

}  // namespace lumen::server

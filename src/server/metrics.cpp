#include "server/metrics.h"

#include <sstream>

namespace lumen::server {

const std::vector<double>& Metrics::latency_buckets() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return b;
}

void Metrics::Histogram::add(double v) {
  const auto& b = latency_buckets();
  if (counts.empty()) counts.assign(b.size() + 1, 0);
  size_t i = 0;
  while (i < b.size() && v > b[i]) ++i;
  ++counts[i];
  sum += v;
  ++n;
}

void Metrics::observe_request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lk(m_);
  ++requests_[{endpoint, status}];
  latency_[endpoint].add(seconds);
}

void Metrics::observe_tokens(const std::string& model, int64_t prompt, int64_t completion) {
  std::lock_guard<std::mutex> lk(m_);
  auto& t = tokens_[model];
  t.first += prompt;
  t.second += completion;
}

void Metrics::observe_time_to_first_token(double seconds) {
  std::lock_guard<std::mutex> lk(m_);
  ttft_.add(seconds);
}

namespace {

void write_histogram(std::ostringstream& os, const std::string& name, const std::string& labels,
                     const std::vector<uint64_t>& counts, double sum, uint64_t n) {
  const auto& b = Metrics::latency_buckets();
  uint64_t cum = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < b.size(); ++i) {
    cum += counts.empty() ? 0 : counts[i];
    os << name << "_bucket{" << labels << sep << "le=\"" << b[i] << "\"} " << cum << "\n";
  }
  os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << n << "\n";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  os << name << "_sum" << braces << " " << sum << "\n";
  os << name << "_count" << braces << " " << n << "\n";
}

}  // namespace

std::string Metrics::render(const std::vector<Gauge>& gauges) const {
  std::lock_guard<std::mutex> lk(m_);
  std::ostringstream os;
  os << "# HELP lumen_requests_total HTTP requests answered, by endpoint and status.\n"
     << "# TYPE lumen_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    os << "lumen_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  os << "# HELP lumen_request_duration_seconds Time from request to the end of the response.\n"
     << "# TYPE lumen_request_duration_seconds histogram\n";
  for (const auto& [ep, h] : latency_)
    write_histogram(os, "lumen_request_duration_seconds", "endpoint=\"" + ep + "\"", h.counts, h.sum, h.n);
  os << "# HELP lumen_time_to_first_token_seconds Time from a chat request to its first generated text.\n"
     << "# TYPE lumen_time_to_first_token_seconds histogram\n";
  write_histogram(os, "lumen_time_to_first_token_seconds", "", ttft_.counts, ttft_.sum, ttft_.n);
  os << "# HELP lumen_prompt_tokens_total Prompt tokens processed (image positions included).\n"
     << "# TYPE lumen_prompt_tokens_total counter\n";
  for (const auto& [model, t] : tokens_) os << "lumen_prompt_tokens_total{model=\"" << model << "\"} " << t.first << "\n";
  os << "# HELP lumen_completion_tokens_total Tokens generated.\n"
     << "# TYPE lumen_completion_tokens_total counter\n";
  for (const auto& [model, t] : tokens_)
    os << "lumen_completion_tokens_total{model=\"" << model << "\"} " << t.second << "\n";
  for (const auto& g : gauges) {
    os << "# HELP " << g.name << " " << g.help << "\n# TYPE " << g.name << " " << g.type << "\n";
    for (const auto& [labels, v] : g.values)
      os << g.name << (labels.empty() ? "" : "{" + labels + "}") << " " << v << "\n";
  }
  return os.str();
}

}  // namespace lumen::server

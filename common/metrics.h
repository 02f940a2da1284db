// Metrics: a Prometheus registry (prometheus-cpp) shared by the services of one process, and the
// HTTP figures every listener records. GET /metrics on any listener renders the whole registry
// in the Prometheus text format; series carry a `service` label.
//
// Thread-safe: counters and histograms are atomic or internally locked.
#pragma once

#include <array>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace plyr {

class MetricsRegistry {
 public:
  MetricsRegistry();
  prometheus::Registry& registry() { return *registry_; }
  // The Prometheus text exposition of every series.
  std::string Render() const;
  // plyr_runtime_info{backend,task_run,thread_model,threads} 1: which I/O backend is in use, and
  // how its completions reach a running thread ("cooperative", "interrupt"; "-" on epoll).
  void SetRuntimeInfo(const std::string& backend, const std::string& task_run, const std::string& thread_model,
                      unsigned threads);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

// Per-listener HTTP figures. Series are created up front so the hot path never takes the
// registry's lock.
class HttpMetrics {
 public:
  HttpMetrics(MetricsRegistry& registry, const std::string& service);

  void RecordRequest(unsigned status, std::uint64_t body_bytes, double seconds);
  prometheus::Gauge& open_connections() { return *open_connections_; }
  prometheus::Counter& rejected_connections() { return *rejected_connections_; }
  prometheus::Counter& timed_out_connections() { return *timed_out_connections_; }

 private:
  static constexpr std::array<unsigned, 21> kStatuses = {101, 200, 201, 204, 206, 304, 307, 400, 401, 402, 403,
                                                         404, 405, 408, 413, 416, 429, 431, 500, 503, 0};
  std::array<prometheus::Counter*, kStatuses.size()> requests_{};
  prometheus::Counter* body_bytes_ = nullptr;
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Gauge* open_connections_ = nullptr;
  prometheus::Counter* rejected_connections_ = nullptr;
  prometheus::Counter* timed_out_connections_ = nullptr;
};

}  // namespace plyr

#include "common/metrics.h"

#include <prometheus/text_serializer.h>

namespace plyr {

MetricsRegistry::MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {}

std::string MetricsRegistry::Render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void MetricsRegistry::SetRuntimeInfo(const std::string& backend, const std::string& task_run,
                                     const std::string& thread_model, unsigned threads) {
  prometheus::BuildGauge()
      .Name("plyr_runtime_info")
      .Help("The I/O backend and thread layout of this process (value is always 1)")
      .Register(*registry_)
      .Add({{"backend", backend},
            {"task_run", task_run},
            {"thread_model", thread_model},
            {"threads", std::to_string(threads)}})
      .Set(1);
}

HttpMetrics::HttpMetrics(MetricsRegistry& metrics, const std::string& service) {
  auto& registry = metrics.registry();
  auto& requests = prometheus::BuildCounter()
                       .Name("plyr_http_requests_total")
                       .Help("HTTP requests answered, by status code (\"other\" for rare codes)")
                       .Register(registry);
  for (std::size_t i = 0; i < kStatuses.size(); ++i) {
    std::string code = kStatuses[i] ? std::to_string(kStatuses[i]) : "other";
    requests_[i] = &requests.Add({{"service", service}, {"code", code}});
  }
  body_bytes_ = &prometheus::BuildCounter()
                     .Name("plyr_http_response_body_bytes_total")
                     .Help("Response body bytes written")
                     .Register(registry)
                     .Add({{"service", service}});
  duration_ = &prometheus::BuildHistogram()
                   .Name("plyr_http_request_duration_seconds")
                   .Help("Time from a complete request header to the last response byte written")
                   .Register(registry)
                   .Add({{"service", service}},
                        prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  open_connections_ = &prometheus::BuildGauge()
                           .Name("plyr_http_open_connections")
                           .Help("Connections currently open")
                           .Register(registry)
                           .Add({{"service", service}});
  rejected_connections_ = &prometheus::BuildCounter()
                               .Name("plyr_http_rejected_connections_total")
                               .Help("Connections refused because the connection cap was reached")
                               .Register(registry)
                               .Add({{"service", service}});
  timed_out_connections_ = &prometheus::BuildCounter()
                                .Name("plyr_http_timed_out_connections_total")
                                .Help("Connections closed by a read, idle or write deadline")
                                .Register(registry)
                                .Add({{"service", service}});
}

void HttpMetrics::RecordRequest(unsigned status, std::uint64_t body_bytes, double seconds) {
  std::size_t slot = kStatuses.size() - 1;
  for (std::size_t i = 0; i + 1 < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) {
      slot = i;
      break;
    }
  }
  requests_[slot]->Increment();
  body_bytes_->Increment(static_cast<double>(body_bytes));
  duration_->Observe(seconds);
}

}  // namespace plyr

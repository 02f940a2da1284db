// SupporterClient: "does this viewer support this artist?", asked of atprotofans.
//
// Calls GET {base}/xrpc/com.atprotofans.validateSupporter?supporter=VIEWER&subject=ARTIST&signer=ARTIST
// and reads `valid` from the JSON answer. Definitive answers (valid true or false) are cached
// for `cache_ttl`; errors, timeouts and garbage are never cached, and report kUnavailable so the
// caller can answer 503 rather than guess. Concurrent checks of the same pair share one
// request in flight.
//
// Thread-safe: Check() may run on any executor; waiters are resumed on their own executors.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/url/url.hpp>
#include <prometheus/counter.h>

#include "common/http_client.h"
#include "common/status.h"

namespace plyr::streamer {

enum class SupportStatus { kSupporter, kNotSupporter, kUnavailable };

struct SupporterClientOptions {
  std::string base_url = "https://atprotofans.com";
  std::chrono::milliseconds timeout{5000};
  std::chrono::seconds cache_ttl{300};
  std::size_t cache_max_entries = 100'000;
  // Counted when set (metrics): answers from the cache, and lookups sent to the service.
  prometheus::Counter* cache_hits = nullptr;
  prometheus::Counter* upstream_lookups = nullptr;
};

class SupporterClient {
 public:
  // Validates the base URL: https anywhere, plain http only for a loopback host. InvalidArgument
  // (naming the URL) for anything else.
  static StatusOr<std::unique_ptr<SupporterClient>> Create(HttpClient& http, SupporterClientOptions options);

  asio::awaitable<SupportStatus> Check(const std::string& viewer_did, const std::string& artist_did);

  // Counters for tests and metrics.
  std::uint64_t upstream_requests() const;
  std::uint64_t cache_hits() const;

 private:
  struct Flight;
  SupporterClient(HttpClient& http, SupporterClientOptions options, boost::urls::url base)
      : http_(http), options_(std::move(options)), base_(std::move(base)) {}
  asio::awaitable<SupportStatus> Fetch(const std::string& viewer_did, const std::string& artist_did);

  struct CacheEntry {
    bool valid = false;
    std::chrono::steady_clock::time_point expires;
  };

  HttpClient& http_;
  SupporterClientOptions options_;
  boost::urls::url base_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, CacheEntry> cache_;                 // guarded by mutex_
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by mutex_
  std::uint64_t upstream_requests_ = 0;                               // guarded by mutex_
  std::uint64_t cache_hits_ = 0;                                      // guarded by mutex_
};

}  // namespace plyr::streamer

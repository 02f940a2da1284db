#include "streamer/supporter_client.h"

#include <cctype>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

namespace plyr::streamer {

namespace {

// True for an address in 127.0.0.0/8 or ::1, or the name localhost (RFC 6761): the hosts where
// plain HTTP never leaves the machine. A name such as 127.example.com is not one.
bool IsLoopbackHost(const boost::urls::url& url) {
  switch (url.host_type()) {
    case boost::urls::host_type::ipv4: return url.host_ipv4_address().is_loopback();
    case boost::urls::host_type::ipv6: return url.host_ipv6_address().is_loopback();
    case boost::urls::host_type::name: {
      std::string name = url.host();
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return name == "localhost" || name == "localhost.";
    }
    default: return false;
  }
}

}  // namespace

// A lookup in flight and the coroutines waiting for it. Each waiter parks on a timer of its own
// executor; the leader stores the answer and cancels the timer from that executor.
struct SupporterClient::Flight {
  struct Waiter {
    explicit Waiter(const asio::any_io_executor& ex) : timer(ex, std::chrono::steady_clock::time_point::max()) {}
    asio::steady_timer timer;
    SupportStatus status = SupportStatus::kUnavailable;
  };
  std::vector<std::shared_ptr<Waiter>> waiters;
};

StatusOr<std::unique_ptr<SupporterClient>> SupporterClient::Create(HttpClient& http, SupporterClientOptions options) {
  auto parsed = boost::urls::parse_absolute_uri(options.base_url);
  // Boost.URL 1.81 reads http://127.0.0.1.nip.io as host 127.0.0.1 and path ".nip.io": a path
  // after a host must start with '/', or the URL is not what it looks like.
  const bool path_glued_to_host =
      parsed && !parsed->encoded_path().empty() && parsed->encoded_path().front() != '/';
  if (!parsed || path_glued_to_host) {
    return Status(StatusCode::kInvalidArgument, "supporter URL is not an absolute URL: " + options.base_url);
  }
  boost::urls::url base(*parsed);
  if (base.scheme() != "https" && !(base.scheme() == "http" && IsLoopbackHost(base))) {
    return Status(StatusCode::kInvalidArgument,
                  "supporter URL must be https (plain http only on loopback): " + options.base_url);
  }
  return std::unique_ptr<SupporterClient>(new SupporterClient(http, std::move(options), std::move(base)));
}

std::uint64_t SupporterClient::upstream_requests() const {
  std::lock_guard lock(mutex_);
  return upstream_requests_;
}

std::uint64_t SupporterClient::cache_hits() const {
  std::lock_guard lock(mutex_);
  return cache_hits_;
}

asio::awaitable<SupportStatus> SupporterClient::Check(const std::string& viewer_did, const std::string& artist_did) {
  // DIDs hold no spaces, so this key is unambiguous.
  const std::string key = viewer_did + " " + artist_did;
  const auto now = std::chrono::steady_clock::now();
  const auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<Flight::Waiter> waiter;
  std::shared_ptr<Flight> flight;
  {
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      if (it->second.expires > now) {
        ++cache_hits_;
        if (options_.cache_hits) options_.cache_hits->Increment();
        co_return it->second.valid ? SupportStatus::kSupporter : SupportStatus::kNotSupporter;
      }
      cache_.erase(it);
    }
    if (auto it = flights_.find(key); it != flights_.end()) {
      waiter = std::make_shared<Flight::Waiter>(executor);
      it->second->waiters.push_back(waiter);
    } else {
      flight = std::make_shared<Flight>();
      flights_.emplace(key, flight);
      ++upstream_requests_;
      if (options_.upstream_lookups) options_.upstream_lookups->Increment();
    }
  }
  if (waiter) {
    co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return waiter->status;
  }

  SupportStatus status = co_await Fetch(viewer_did, artist_did);
  std::vector<std::shared_ptr<Flight::Waiter>> waiters;
  {
    std::lock_guard lock(mutex_);
    if (status != SupportStatus::kUnavailable) {
      if (cache_.size() >= options_.cache_max_entries) {
        // Bounded memory: drop expired entries, and everything if that was not enough.
        std::erase_if(cache_, [&](const auto& kv) { return kv.second.expires <= now; });
        if (cache_.size() >= options_.cache_max_entries) cache_.clear();
      }
      cache_[key] = CacheEntry{status == SupportStatus::kSupporter, std::chrono::steady_clock::now() + options_.cache_ttl};
    }
    waiters = std::move(flight->waiters);
    flights_.erase(key);
  }
  for (auto& w : waiters) {
    asio::post(w->timer.get_executor(), [w, status] {
      w->status = status;
      w->timer.cancel();
    });
  }
  co_return status;
}

asio::awaitable<SupportStatus> SupporterClient::Fetch(const std::string& viewer_did, const std::string& artist_did) {
  boost::urls::url url = base_;
  url.set_path("/xrpc/com.atprotofans.validateSupporter");
  url.params().append({"supporter", viewer_did});
  url.params().append({"subject", artist_did});
  url.params().append({"signer", artist_did});
  auto executor = co_await asio::this_coro::executor;
  auto response = co_await http_.Get(executor, url, options_.timeout);
  if (!response) {
    spdlog::warn("supporter check failed error=\"{}\"", response.status().message());
    co_return SupportStatus::kUnavailable;
  }
  if (response->status != 200) {
    spdlog::warn("supporter check failed status={}", response->status);
    co_return SupportStatus::kUnavailable;
  }
  boost::system::error_code ec;
  auto doc = boost::json::parse(response->body, ec);
  const boost::json::object* obj = ec ? nullptr : doc.if_object();
  const boost::json::value* valid = obj ? obj->if_contains("valid") : nullptr;
  if (!valid || !valid->is_bool()) {
    spdlog::warn("supporter check answered without a boolean \"valid\"");
    co_return SupportStatus::kUnavailable;
  }
  co_return valid->as_bool() ? SupportStatus::kSupporter : SupportStatus::kNotSupporter;
}

}  // namespace plyr::streamer

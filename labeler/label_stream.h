// LabelStream: com.atproto.label.subscribeLabels, one WebSocket subscriber at a time.
//
// Each subscriber is a position in the log, not a queue: it sends every label with seq greater
// than its position, reading the shared frames of the LabelFeed when they are recent and the log
// otherwise, so the hand-over from replay to live has no gap and no duplicate by construction.
// Protocol (docs/labeler.md): binary frames, one label per #labels message; no cursor: live only;
// `cursor=N`: every label with seq > N, then live; N above the newest seq: FutureCursor error
// frame and close (1008); a cursor that is not an integer: InvalidRequest error frame. Pings are
// answered; a peer silent for 60 s gets a ping and is closed if it stays silent. Beast does the
// upgrade handshake; the frames are ours (ws_frame.h says why). A subscriber more than `max_lag` labels behind once it has caught up, or whose write
// makes no progress for `write_timeout`, gets ConsumerTooSlow and is closed; it may resume from
// the last seq it received.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/http_message.h"
#include "common/metrics.h"
#include "labeler/label_feed.h"
#include "labeler/label_store.h"

namespace plyr::labeler {

struct LabelStreamOptions {
  std::size_t max_lag = 100'000;                  // labels behind the head, once caught up
  std::chrono::milliseconds write_timeout{30'000};  // a frame write that makes no progress
  std::size_t replay_page = 500;                  // labels per log read while replaying
};

class LabelStream {
 public:
  // `read_pool` runs the blocking log reads. All references must outlive the stream.
  LabelStream(LabelStore& store, LabelFeed& feed, asio::thread_pool& read_pool, LabelStreamOptions options,
              MetricsRegistry& metrics);

  // Runs one subscriber on an upgraded connection until it ends. `cursor` is the raw query value.
  asio::awaitable<void> Serve(asio::ip::tcp::socket& socket, const RequestHeader& header,
                              std::optional<std::string> cursor);

  std::size_t subscribers() const { return subscribers_.load(); }

 private:
  struct Session;
  asio::awaitable<void> ReadLoop(Session& s);
  asio::awaitable<void> WriteLoop(Session& s);
  asio::awaitable<void> Watchdog(Session& s);
  asio::awaitable<void> SendErrorAndClose(Session& s, std::string_view error, std::string_view message);

  LabelStore& store_;
  LabelFeed& feed_;
  asio::thread_pool& read_pool_;
  LabelStreamOptions options_;
  std::atomic<std::size_t> subscribers_{0};
  prometheus::Gauge* subscribers_gauge_ = nullptr;
  prometheus::Counter* frames_sent_ = nullptr;
  prometheus::Counter* too_slow_ = nullptr;
};

}  // namespace plyr::labeler

#include "labeler/label_stream.h"

#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include "labeler/label_cbor.h"
#include "labeler/run_blocking.h"

namespace plyr::labeler {

namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct LabelStream::Session {
  Session(tcp::socket& socket, const asio::any_io_executor& executor)
      : ws(socket), waiter(std::make_shared<LabelFeed::Waiter>(executor)), watchdog_timer(executor) {}

  websocket::stream<tcp::socket&> ws;
  std::shared_ptr<LabelFeed::Waiter> waiter;
  asio::steady_timer watchdog_timer;
  std::int64_t position = 0;  // the last seq sent (or the cursor)
  bool writing = false;
  Clock::time_point write_started;
  bool stalled = false;
};

LabelStream::LabelStream(LabelStore& store, LabelFeed& feed, asio::thread_pool& read_pool,
                         LabelStreamOptions options, MetricsRegistry& metrics)
    : store_(store), feed_(feed), read_pool_(read_pool), options_(options) {
  auto& registry = metrics.registry();
  subscribers_gauge_ = &prometheus::BuildGauge()
                            .Name("plyr_labeler_subscribers")
                            .Help("Open subscribeLabels connections")
                            .Register(registry)
                            .Add({});
  auto& frames = prometheus::BuildCounter()
                     .Name("plyr_labeler_stream_frames_total")
                     .Help("subscribeLabels #labels frames sent")
                     .Register(registry);
  frames_sent_ = &frames.Add({});
  too_slow_ = &prometheus::BuildCounter()
                   .Name("plyr_labeler_consumer_too_slow_total")
                   .Help("Subscribers closed with ConsumerTooSlow")
                   .Register(registry)
                   .Add({});
}

namespace {

// A cursor as the lexicon has it: a decimal integer (no sign, no spaces).
std::optional<std::int64_t> ParseCursor(std::string_view text) {
  std::int64_t value = 0;
  if (text.empty() || text.size() > 18) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace

asio::awaitable<void> LabelStream::Serve(tcp::socket& socket, const RequestHeader& header,
                                         std::optional<std::string> cursor) {
  auto executor = co_await asio::this_coro::executor;
  Session s(socket, executor);
  websocket::stream_base::timeout timeout{};
  timeout.handshake_timeout = std::chrono::seconds(10);
  timeout.idle_timeout = std::chrono::seconds(60);  // a silent peer gets a ping, then is closed
  timeout.keep_alive_pings = true;
  s.ws.set_option(timeout);
  s.ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& response) { response.set(http::field::server, "plyr-core"); }));
  s.ws.read_message_max(64 * 1024);  // clients have nothing to say beyond control frames
  s.ws.auto_fragment(false);
  s.ws.binary(true);

  http::request<http::empty_body> request(header);
  auto [accept_ec] = co_await s.ws.async_accept(request, kUseTuple);
  if (accept_ec) co_return;

  subscribers_.fetch_add(1);
  subscribers_gauge_->Increment();
  struct Leave {
    LabelStream* self;
    ~Leave() {
      self->subscribers_.fetch_sub(1);
      self->subscribers_gauge_->Decrement();
    }
  } leave{this};

  if (cursor) {
    auto parsed = ParseCursor(*cursor);
    if (!parsed) {
      co_await SendErrorAndClose(s, "InvalidRequest", "cursor must be a non-negative integer");
      co_return;
    }
    // The store's head moves before the feed's (commit, then publish): it decides what exists.
    if (*parsed > std::max(store_.head_seq(), feed_.head())) {
      co_await SendErrorAndClose(s, "FutureCursor", "cursor is ahead of the newest label");
      co_return;
    }
    s.position = *parsed;
  } else {
    s.position = std::max(store_.head_seq(), feed_.head());
  }

  using namespace asio::experimental::awaitable_operators;
  co_await (ReadLoop(s) || WriteLoop(s) || Watchdog(s));
  if (s.stalled) {
    too_slow_->Increment();
    spdlog::info("subscriber closed: write stalled position={}", s.position);
  }
}

asio::awaitable<void> LabelStream::SendErrorAndClose(Session& s, std::string_view error, std::string_view message) {
  std::string frame = EncodeErrorFrame(error, message);
  s.writing = true;
  s.write_started = Clock::now();
  auto [ec, n] = co_await s.ws.async_write(asio::buffer(frame), kUseTuple);
  s.writing = false;
  if (ec) co_return;
  co_await s.ws.async_close(websocket::close_reason(websocket::close_code::policy_error, error), kUseTuple);
}

asio::awaitable<void> LabelStream::ReadLoop(Session& s) {
  // Reading keeps control frames flowing: Beast answers pings and completes the close handshake
  // inside the read. Whatever data a client sends is dropped.
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await s.ws.async_read(buffer, kUseTuple);
    if (ec) co_return;
    buffer.consume(buffer.size());
  }
}

asio::awaitable<void> LabelStream::Watchdog(Session& s) {
  // Wakes a few times per write timeout rather than re-arming a timer per frame.
  const auto period = std::max<std::chrono::milliseconds>(options_.write_timeout / 4, std::chrono::milliseconds(10));
  for (;;) {
    s.watchdog_timer.expires_after(period);
    auto [ec] = co_await s.watchdog_timer.async_wait(kUseTuple);
    if (ec) co_return;
    if (s.writing && Clock::now() - s.write_started > options_.write_timeout) {
      s.stalled = true;
      co_return;  // cancels the write; the connection is then closed
    }
  }
}

asio::awaitable<void> LabelStream::WriteLoop(Session& s) {
  std::vector<Frame> batch;
  bool live = false;  // caught up with the head at least once
  for (;;) {
    batch.clear();
    if (!feed_.FramesAfter(s.position, 256, batch)) {
      // Behind the feed's window: read a page of the log on the read pool.
      const std::int64_t after = s.position;
      const std::size_t page = options_.replay_page;
      std::function<boost::system::result<std::vector<StoredLabel>>()> read = [this, after, page] {
        return store_.ReadAfter(after, page);
      };
      auto rows = co_await RunBlocking(read_pool_, std::move(read));
      if (!rows) {
        spdlog::error("subscriber: reading the label log failed: {}", rows.error().message());
        co_await SendErrorAndClose(s, "InternalError", "reading the label log failed");
        co_return;
      }
      for (const auto& row : *rows) {
        batch.push_back({row.seq, std::make_shared<const std::string>(EncodeLabelsFrame(row.seq, row.cbor))});
      }
    }
    if (batch.empty()) {
      live = true;
      s.waiter->timer.expires_at(asio::steady_timer::time_point::max());
      if (feed_.WaitAfter(s.position, s.waiter)) {
        auto [ec] = co_await s.waiter->timer.async_wait(kUseTuple);
        // Woken (operation_aborted is how a publish wakes us) or cancelled: the loop decides.
        (void)ec;
        if (auto state = co_await asio::this_coro::cancellation_state; state.cancelled() != asio::cancellation_type::none) {
          co_return;
        }
      }
      continue;
    }
    std::size_t sent = 0;
    struct Count {
      prometheus::Counter* counter;
      std::size_t& sent;
      ~Count() { if (sent) counter->Increment(static_cast<double>(sent)); }
    } count{frames_sent_, sent};
    for (const auto& frame : batch) {
      if (live && feed_.head() - frame.seq > static_cast<std::int64_t>(options_.max_lag)) {
        too_slow_->Increment();
        co_await SendErrorAndClose(s, "ConsumerTooSlow", "subscriber fell too far behind; reconnect with its cursor");
        co_return;
      }
      s.writing = true;
      s.write_started = Clock::now();
      auto [ec, n] = co_await s.ws.async_write(asio::buffer(*frame.bytes), kUseTuple);
      s.writing = false;
      if (ec) co_return;
      s.position = frame.seq;
      ++sent;
    }
  }
}

}  // namespace plyr::labeler

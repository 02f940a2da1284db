#include "labeler/label_stream.h"

#include <charconv>
#include <optional>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include "labeler/label_cbor.h"
#include "common/run_blocking.h"
#include "labeler/ws_frame.h"

namespace plyr::labeler {

namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// How long a silent peer may stay silent before it gets a ping, and then before it is closed.
constexpr auto kIdlePing = std::chrono::seconds(60);
// Frames per write (about 256 KiB of labels): enough to amortise the syscall, small enough that
// one subscriber does not hold its thread for long. 1024 beat 256 by 11 % in deliveries/s.
constexpr std::size_t kFramesPerWrite = 1024;

struct LabelStream::Session {
  Session(tcp::socket& s, const asio::any_io_executor& executor)
      : socket(s), waiter(std::make_shared<LabelFeed::Waiter>(executor)), watchdog_timer(executor) {}

  tcp::socket& socket;
  std::shared_ptr<LabelFeed::Waiter> waiter;  // woken by a publish, and by the reader
  asio::steady_timer watchdog_timer;
  std::int64_t position = 0;  // the last seq sent (or the cursor)
  bool writing = false;
  Clock::time_point write_started;
  Clock::time_point last_received = Clock::now();
  bool ping_sent = false;
  bool stalled = false;
  bool done = false;           // the reader saw a close or an error: stop after replying
  // Control frames for the writer to send next. While a write is blocked a client may send any
  // number of pings: only the latest unanswered one is answered (RFC 6455, section 5.5.3), so
  // what waits here stays under a few hundred bytes.
  std::optional<std::string> pong;  // payload of the latest unanswered ping
  bool ping_due = false;            // our idle ping
  std::string close;                // our close frame; the last thing sent

  bool has_control() const { return pong || ping_due || !close.empty(); }
  std::string TakeControl() {
    std::string frames;
    if (pong) frames += EncodeWsFrame(WsOpcode::kPong, *pong);
    if (ping_due) frames += EncodeWsFrame(WsOpcode::kPing, "");
    frames += close;
    pong.reset();
    ping_due = false;
    close.clear();
    return frames;
  }
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
  frames_sent_ = &prometheus::BuildCounter()
                      .Name("plyr_labeler_stream_frames_total")
                      .Help("subscribeLabels #labels frames sent")
                      .Register(registry)
                      .Add({});
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
  // Beast validates the upgrade and answers 101 (or 400/426); it reads nothing from the socket,
  // since the request is already parsed. From then on the session owns the framing (ws_frame.h).
  {
    websocket::stream<tcp::socket&> handshake(socket);
    websocket::stream_base::timeout timeout = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeout.handshake_timeout = std::chrono::seconds(10);
    handshake.set_option(timeout);
    handshake.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& response) { response.set(http::field::server, "plyr-core"); }));
    http::request<http::empty_body> request(header);
    auto [ec] = co_await handshake.async_accept(request, kUseTuple);
    if (ec) co_return;
  }

  auto executor = co_await asio::this_coro::executor;
  Session s(socket, executor);
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
    spdlog::info("subscriber closed: its socket accepted nothing for {} ms position={}",
                 options_.write_timeout.count(), s.position);
  }
}

asio::awaitable<void> LabelStream::SendErrorAndClose(Session& s, std::string_view error, std::string_view message) {
  // The error message, then close 1008, in one write; then the connection ends (the spec closes
  // the stream right after an error frame).
  std::string bytes = EncodeWsFrame(WsOpcode::kBinary, EncodeErrorFrame(error, message)) + EncodeWsClose(1008, error);
  s.writing = true;
  s.write_started = Clock::now();
  co_await asio::async_write(s.socket, asio::buffer(bytes), kUseTuple);
  s.writing = false;
}

asio::awaitable<void> LabelStream::ReadLoop(Session& s) {
  // Clients only send control frames worth reading: answer pings, honour a close, drop data.
  WsFrameReader reader;
  char buffer[2048];
  for (;;) {
    auto [ec, n] = co_await s.socket.async_read_some(asio::buffer(buffer), kUseTuple);
    if (ec) co_return;
    s.last_received = Clock::now();
    s.ping_sent = false;
    std::string_view data(buffer, n);
    while (!data.empty()) {
      auto event = reader.Next(data);
      if (event.kind == WsFrameReader::Event::kNone) continue;
      if (event.kind == WsFrameReader::Event::kPing) {
        s.pong = std::string(event.payload);
      } else {
        // A close is echoed; a protocol error gets our close. Either way the stream ends.
        s.close = event.kind == WsFrameReader::Event::kClose ? EncodeWsClose(1000, "")
                                                             : EncodeWsClose(event.code, event.reason);
        s.done = true;
      }
      s.waiter->timer.cancel();  // the writer sends control frames first
      if (s.done) break;
    }
    if (s.done) {
      // Keep the coroutine alive (its return would cancel the writer) until the writer ends.
      asio::steady_timer forever(s.socket.get_executor(), asio::steady_timer::time_point::max());
      co_await forever.async_wait(kUseTuple);
      co_return;
    }
  }
}

asio::awaitable<void> LabelStream::Watchdog(Session& s) {
  // Wakes a few times per write timeout rather than re-arming a timer per write.
  const auto period = std::max<std::chrono::milliseconds>(
      std::min<std::chrono::milliseconds>(options_.write_timeout / 4, std::chrono::seconds(15)),
      std::chrono::milliseconds(10));
  for (;;) {
    s.watchdog_timer.expires_after(period);
    auto [ec] = co_await s.watchdog_timer.async_wait(kUseTuple);
    if (ec) co_return;
    const auto now = Clock::now();
    if (s.writing && now - s.write_started > options_.write_timeout) {
      s.stalled = true;
      co_return;  // cancels the write; the connection is then closed
    }
    // A silent peer gets a ping; one still silent a period later is gone.
    if (now - s.last_received > kIdlePing) {
      if (s.ping_sent && now - s.last_received > 2 * kIdlePing) co_return;
      if (!s.ping_sent) {
        s.ping_sent = true;
        s.ping_due = true;
        s.waiter->timer.cancel();
      }
    }
  }
}

asio::awaitable<void> LabelStream::WriteLoop(Session& s) {
  std::vector<FrameSpan> batch;
  std::vector<asio::const_buffer> buffers;
  bool live = false;  // caught up with the head at least once
  for (;;) {
    if (s.has_control()) {
      std::string control = s.TakeControl();
      s.writing = true;
      s.write_started = Clock::now();
      auto [ec, n] = co_await asio::async_write(s.socket, asio::buffer(control), kUseTuple);
      s.writing = false;
      if (ec || s.done) co_return;
    }
    batch.clear();
    if (!feed_.FramesAfter(s.position, kFramesPerWrite, batch)) {
      // Behind the feed's window: read a page of the log on the read pool.
      const std::int64_t after = s.position;
      const std::size_t page = options_.replay_page;
      std::function<StatusOr<std::vector<StoredLabel>>()> read = [this, after, page] {
        return store_.ReadAfter(after, page);
      };
      auto rows = co_await RunBlocking(read_pool_, std::move(read));
      if (!rows) {
        spdlog::error("subscriber: reading the label log failed: {}", rows.status().message());
        co_await SendErrorAndClose(s, "InternalError", "reading the label log failed");
        co_return;
      }
      if (!rows->empty()) {
        auto run = std::make_shared<const FrameRun>(*rows);
        for (std::size_t begin = 0; begin < run->size(); begin += kFramesPerWrite) {
          batch.push_back(FrameSpan{run, begin, std::min(run->size(), begin + kFramesPerWrite)});
        }
      }
    }
    if (batch.empty()) {
      live = true;
      s.waiter->timer.expires_at(asio::steady_timer::time_point::max());
      if (!s.has_control() && feed_.WaitAfter(s.position, s.waiter)) {
        co_await s.waiter->timer.async_wait(kUseTuple);  // a publish or the reader wakes it
        if (auto state = co_await asio::this_coro::cancellation_state;
            state.cancelled() != asio::cancellation_type::none) {
          co_return;
        }
      }
      continue;
    }
    if (live && feed_.head() - batch.front().first_seq() > static_cast<std::int64_t>(options_.max_lag)) {
      too_slow_->Increment();
      co_await SendErrorAndClose(s, "ConsumerTooSlow", "subscriber fell too far behind; reconnect with its cursor");
      co_return;
    }
    // Up to kFramesPerWrite frames per write, in one buffer per run (a commit's frames are
    // contiguous); the bytes are shared with every other subscriber.
    std::size_t start = 0;
    while (start < batch.size()) {
      buffers.clear();
      std::size_t frames = 0;
      std::size_t end = start;
      for (; end < batch.size() && (frames == 0 || frames + batch[end].count() <= kFramesPerWrite); ++end) {
        const std::string_view bytes = batch[end].bytes();
        buffers.push_back(asio::buffer(bytes.data(), bytes.size()));
        frames += batch[end].count();
      }
      s.writing = true;
      s.write_started = Clock::now();
      auto [ec, n] = co_await asio::async_write(s.socket, buffers, kUseTuple);
      s.writing = false;
      if (ec) co_return;
      s.position = batch[end - 1].last_seq();
      frames_sent_->Increment(static_cast<double>(frames));
      start = end;
    }
  }
}

}  // namespace plyr::labeler

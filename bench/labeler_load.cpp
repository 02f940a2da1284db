// labeler_load: a load generator for `plyr-core serve labeler`; bench/labeler/run.sh drives it.
//
//   labeler_load emit   --port P --token T [--labels N] [--connections C] [--batch B] [--server-pid PID]
//       N labels through POST /v1/labels over C keep-alive connections, B labels per request (B = 1
//       sends the single-label form). One live subscriber, connected before the first request,
//       must see every acknowledged seq. Reports labels/s from the first send to the last durable
//       answer, and to the moment the subscriber had them all.
//   labeler_load replay --port P --expect N [--cursor 0] [--server-pid PID]
//       One subscriber with ?cursor=N counts frames until it has `expect` of them; labels/s.
//   labeler_load fanout --port P --token T --server-pid PID [--subscribers S] [--labels L] [--bursts K] ...
//       S live subscribers (no cursor); once all are upgraded, K bursts of L labels each (default
//       2, a second apart) through the emit API, each measured and reported on its own. Delivery
//       latency per (subscriber, label) = receive time - send time of the emit request that
//       carried the label (seq -> send time comes from the answer); p50/p99/max, the time until
//       the last subscriber had the last label, and the server's VmRSS before the subscribers,
//       with them idle, and after each burst. The first burst after the server's start also
//       pays for kernel memory touched for the first time (bench/RESULTS.md, "Labeler").
//
// Every mode prints a human summary on stderr and one "RESULT mode=... key=value ..." line on
// stdout for run.sh; it exits non-zero when a label is missing, an answer is not 200, or the run
// times out.
//
// The client must not be what is measured: it runs on one thread (the server gets the other core),
// and a subscriber is not a full WebSocket client: it upgrades with Beast's HTTP code, then reads
// the socket in 64 KiB chunks and walks the frame headers itself, taking the seq from its fixed
// offset in the #labels body, with one clock read per chunk rather than per frame. It still checks
// the frame's CBOR header bytes and answers pings. Its own CPU time is printed next to the figures.
// `--ws beast` swaps in a full beast::websocket client instead, to cross-check that reader: a
// broken stream must look broken to both.
//
// Diagnostic switches (bench/RESULTS.md, "Labeler", tells what they found):
//   --keep-emit-connections  leave the emit connections idle for the server's keep-alive timeout
//                            to cancel and close, instead of closing them when done
//   --client-keepalive-ms N  raw reader: send the server a message every N ms while frames arrive,
//                            so it never needs its own keep-alive pings
//   --request-timeline FILE  fanout: one line per emit request (send, answer, first/median/last
//                            delivery), to see where a burst's latency goes
//   --pause-ms N             fanout: idle time before each burst (default 1000)
// When a subscriber falls short, fanout prints which ones, how far they got and when, and the raw
// reader prints the bytes around a broken frame.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::string token;
  std::size_t labels = 100'000;
  std::size_t connections = 8;
  std::size_t batch = 100;
  std::size_t subscribers = 1000;
  std::int64_t cursor = 0;
  std::size_t expect = 100'000;
  // Emit: labels the live subscriber's stream carries in all (0: --labels), when other emitters
  // (other labeler instances sharing the log) add theirs to it.
  std::size_t stream_labels = 0;
  int server_pid = 0;
  double timeout_s = 120;
  std::string run_tag = "a";  // makes the subject URIs of one run distinct from another's
  bool beast_client = false;  // subscribers use beast::websocket instead of the raw frame reader
  // Raw reader: while frames arrive, send the server an empty binary message this often (0: never).
  // The server resets its idle timer on it and sends no keep-alive pings (a diagnostic switch).
  std::int64_t client_keepalive_ms = 0;
  // Leave the emit connections open and idle after the last request, so that the server's
  // keep-alive timeout cancels their reads (a diagnostic switch, see the Emitter).
  bool keep_emit_connections = false;
  // Fan-out: write one line per emit request (send, answer, first/median/last delivery, µs after
  // the burst's start) to this file (a diagnostic switch; empty: off).
  std::string request_timeline;
  // Fan-out: bursts measured one after the other over the same subscribers, each reported on its
  // own, and the idle time before each.
  std::size_t bursts = 2;
  std::int64_t pause_ms = 1000;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// --- Process measurements ---------------------------------------------------------------------

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// utime + stime of another process (all its threads), from /proc/PID/stat.
std::optional<double> ProcessCpuSeconds(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name may contain spaces: fields are counted after its closing parenthesis.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string_view> fields;
  std::string_view rest(line);
  rest.remove_prefix(close + 2);
  while (!rest.empty()) {
    auto space = rest.find(' ');
    fields.push_back(rest.substr(0, space));
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  }
  if (fields.size() < 13) return std::nullopt;
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  double ticks = std::stod(std::string(fields[11])) + std::stod(std::string(fields[12]));
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// VmRSS of a process in bytes, from /proc/PID/status.
std::optional<std::int64_t> ProcessRssBytes(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmRSS:   1234 kB"
  }
  return std::nullopt;
}

// --- Percentiles ------------------------------------------------------------------------------

struct Summary {
  std::size_t n = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0;  // in the unit of the samples
};

// Reorders `samples`.
template <typename T>
Summary Summarize(std::vector<T>& samples) {
  Summary s;
  s.n = samples.size();
  if (samples.empty()) return s;
  auto at = [&](double q) {
    auto k = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
    std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(k), samples.end());
    return static_cast<double>(samples[k]);
  };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  s.p999 = at(0.999);
  s.max = static_cast<double>(*std::max_element(samples.begin(), samples.end()));
  return s;
}

// --- Waiting ----------------------------------------------------------------------------------

// Polls `done` every millisecond until it holds or `deadline` passes; returns whether it held.
// Polling keeps the waiting side trivial; every figure is timestamped where it happens, so the
// poll period never enters a measurement. `done` is a lambda taken by value (not a std::function):
// GCC 12 may destroy a non-trivial temporary of a co_await expression twice, and a lambda that
// captures by reference is trivially destructible.
template <typename Predicate>
asio::awaitable<bool> WaitUntil(Predicate done, Clock::time_point deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!done()) {
    if (Clock::now() >= deadline) co_return false;
    timer.expires_after(std::chrono::milliseconds(1));
    co_await timer.async_wait(kUseTuple);
  }
  co_return true;
}

asio::awaitable<void> Sleep(std::chrono::milliseconds how_long) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(how_long);
  co_await timer.async_wait(kUseTuple);
}

// --- Emitting ---------------------------------------------------------------------------------

// One prepared request body and how many labels it carries.
struct Batch {
  std::string body;
  std::size_t count = 0;
};

// A label subject that passes the labeler's checks and looks like a real post: a 24-character
// did:plc identifier and a 13-character record key, distinct per label and per run tag.
std::string SubjectUri(const std::string& run_tag, std::size_t index) {
  return fmt::format("at://did:plc:{}{:0>{}}/app.bsky.feed.post/3l{:011d}", run_tag, index / 16,
                     24 - run_tag.size(), index);
}

// All request bodies of a run, built before the clock starts.
std::vector<Batch> BuildBatches(const Options& o) {
  std::vector<Batch> batches;
  for (std::size_t first = 0; first < o.labels; first += o.batch) {
    Batch b;
    b.count = std::min(o.batch, o.labels - first);
    if (o.batch == 1) {
      b.body = fmt::format(R"({{"uri":"{}","val":"spam"}})", SubjectUri(o.run_tag, first));
    } else {
      b.body = R"({"labels":[)";
      for (std::size_t i = 0; i < b.count; ++i) {
        if (i) b.body += ',';
        b.body += fmt::format(R"({{"uri":"{}","val":"spam"}})", SubjectUri(o.run_tag, first + i));
      }
      b.body += "]}";
    }
    batches.push_back(std::move(b));
  }
  return batches;
}

// The seqs of an emit answer ({"labels":[{"seq":N,"label":{...}},...]}), read by scanning for
// `"seq":` rather than parsing the whole JSON: the subjects and values this tool sends never
// contain that text.
std::vector<std::int64_t> SeqsOfAnswer(std::string_view body) {
  std::vector<std::int64_t> seqs;
  constexpr std::string_view kKey = "\"seq\":";
  for (auto at = body.find(kKey); at != std::string_view::npos; at = body.find(kKey, at)) {
    at += kKey.size();
    std::int64_t seq = 0;
    auto [end, ec] = std::from_chars(body.data() + at, body.data() + body.size(), seq);
    if (ec == std::errc()) seqs.push_back(seq);
    at = static_cast<std::size_t>(end - body.data());
  }
  return seqs;
}

struct Ack {
  Clock::time_point sent;
  Clock::time_point acked;
  std::vector<std::int64_t> seqs;
  bool done = false;
};

// Sends every batch over `connections` keep-alive connections, each taking the next unsent batch
// as soon as its previous answer arrived.
class Emitter {
 public:
  Emitter(const Options& o, std::vector<Batch> batches) : o_(o), batches_(std::move(batches)), acks_(batches_.size()) {}

  // Opens the connections (before any timing starts).
  asio::awaitable<bool> Connect() {
    auto executor = co_await asio::this_coro::executor;
    tcp::endpoint endpoint(asio::ip::make_address(o_.host), o_.port);
    for (std::size_t i = 0; i < o_.connections; ++i) {
      auto socket = std::make_unique<tcp::socket>(executor);
      auto [ec] = co_await socket->async_connect(endpoint, kUseTuple);
      if (ec) {
        error_ = "connect: " + ec.message();
        co_return false;
      }
      socket->set_option(tcp::no_delay(true));
      sockets_.push_back(std::move(socket));
    }
    co_return true;
  }

  // Starts the workers; finished() tells when they are all done.
  void Start(const asio::any_io_executor& executor) {
    running_ = sockets_.size();
    for (auto& socket : sockets_) {
      asio::co_spawn(executor, Worker(*socket), [this, socket = socket.get()](std::exception_ptr e) {
        if (e && error_.empty()) error_ = "emit worker threw";
        // Close as soon as this connection has nothing left to send, as a client that is done
        // would, rather than leave it to the server's keep-alive timeout: with Asio 1.81's
        // io_uring backend, a server-side cancel of a pending read can break other connections'
        // streams (bench/RESULTS.md, "Labeler"). --keep-emit-connections keeps them open.
        if (!o_.keep_emit_connections) {
          boost::system::error_code ignored;
          socket->shutdown(tcp::socket::shutdown_both, ignored);
          socket->close(ignored);
        }
        --running_;
      });
    }
  }

  bool finished() const { return running_ == 0; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  const std::vector<Ack>& acks() const { return acks_; }
  std::size_t acked_labels() const { return acked_labels_; }

  // Over the acknowledged requests.
  Clock::time_point first_send() const {
    Clock::time_point t = Clock::time_point::max();
    for (const auto& a : acks_) {
      if (a.done) t = std::min(t, a.sent);
    }
    return t;
  }
  Clock::time_point last_ack() const {
    Clock::time_point t = Clock::time_point::min();
    for (const auto& a : acks_) {
      if (a.done) t = std::max(t, a.acked);
    }
    return t;
  }

 private:
  asio::awaitable<void> Worker(tcp::socket& socket) {
    beast::flat_buffer buffer;
    const std::string host = fmt::format("{}:{}", o_.host, o_.port);
    const std::string authorization = "Bearer " + o_.token;
    while (error_.empty() && next_ < batches_.size()) {
      const std::size_t index = next_++;
      http::request<http::string_body> request{http::verb::post, "/v1/labels", 11};
      request.set(http::field::host, host);
      request.set(http::field::authorization, authorization);
      request.set(http::field::content_type, "application/json");
      request.body() = batches_[index].body;
      request.prepare_payload();
      Ack& ack = acks_[index];
      ack.sent = Clock::now();
      auto [write_ec, written] = co_await http::async_write(socket, request, kUseTuple);
      if (write_ec) {
        error_ = "write: " + write_ec.message();
        co_return;
      }
      http::response_parser<http::string_body> parser;
      parser.body_limit(64 << 20);
      auto [read_ec, read] = co_await http::async_read(socket, buffer, parser, kUseTuple);
      ack.acked = Clock::now();
      if (read_ec) {
        error_ = "read: " + read_ec.message();
        co_return;
      }
      auto& response = parser.get();
      if (response.result() != http::status::ok) {
        error_ = fmt::format("POST /v1/labels answered {}: {}", response.result_int(), response.body().substr(0, 300));
        co_return;
      }
      ack.seqs = SeqsOfAnswer(response.body());
      if (ack.seqs.size() != batches_[index].count) {
        error_ = fmt::format("an answer carried {} seqs for {} labels", ack.seqs.size(), batches_[index].count);
        co_return;
      }
      ack.done = true;
      acked_labels_ += ack.seqs.size();
    }
  }

  const Options& o_;
  std::vector<Batch> batches_;
  std::vector<Ack> acks_;
  std::vector<std::unique_ptr<tcp::socket>> sockets_;
  std::size_t next_ = 0;
  std::size_t running_ = 0;
  std::size_t acked_labels_ = 0;
  std::string error_;
};

// --- Subscribing ------------------------------------------------------------------------------

// What a subscriber does with each #labels frame.
class LabelSink {
 public:
  virtual ~LabelSink() = default;
  virtual void OnLabel(std::int64_t seq, Clock::time_point received) = 0;
};

// The fixed prefix of every #labels message: header {t: "#labels", op: 1}, then the body map of
// two entries and its first key "seq" (a2 63 73 65 71); the seq's CBOR uint head follows.
constexpr std::string_view kLabelsPrefix = "\xa2\x61t\x67#labels\x62op\x01\xa2\x63seq";
// An error message's header {op: -1}.
constexpr std::string_view kErrorHeader = "\xa1\x62op\x20";

// Reads the seq of a binary subscribeLabels message from its fixed offset. False, with `error`
// set, for an error frame or anything that is not a #labels message.
bool SeqOfMessage(std::string_view payload, std::int64_t& seq, std::string& error) {
  if (payload.starts_with(kErrorHeader)) {
    error = "error frame: " + std::string(payload.substr(kErrorHeader.size()));
    return false;
  }
  if (!payload.starts_with(kLabelsPrefix) || payload.size() < kLabelsPrefix.size() + 1) {
    error = "a message that is not #labels";
    return false;
  }
  // A CBOR unsigned integer head (major type 0): immediate, or 1/2/4/8 bytes.
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data()) + kLabelsPrefix.size();
  const std::size_t room = payload.size() - kLabelsPrefix.size();
  if (p[0] < 0x18) {
    seq = p[0];
    return true;
  }
  if (p[0] > 0x1b) {
    error = "a seq that is not an unsigned integer";
    return false;
  }
  const std::size_t bytes = std::size_t{1} << (p[0] - 0x18);
  if (room < 1 + bytes) {
    error = "truncated seq";
    return false;
  }
  seq = 0;
  for (std::size_t i = 1; i <= bytes; ++i) seq = (seq << 8) | p[i];
  return true;
}

// One subscribeLabels connection. Two readers share this interface: RawSubscriber (the default,
// cheap) and BeastSubscriber (a full beast::websocket client, `--ws beast`), which cross-checks
// the raw reader: both must see the same stream.
class Subscriber {
 public:
  Subscriber(const asio::any_io_executor& executor, LabelSink& sink) : socket_(executor), sink_(sink) {}
  virtual ~Subscriber() = default;

  // Connects, upgrades, then reads until the stream ends or Close().
  virtual asio::awaitable<void> Run(const Options& o, std::string target) = 0;

  void Close() {
    boost::system::error_code ec;
    closing_ = true;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  bool upgraded() const { return upgraded_; }
  const std::string& error() const { return error_; }
  std::uint64_t frames() const { return frames_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t pings() const { return pings_; }  // pings the server sent (raw reader only)
  virtual std::size_t buffered() const { return 0; }  // bytes of an incomplete frame
  unsigned short local_port() const {
    boost::system::error_code ec;
    auto endpoint = socket_.local_endpoint(ec);
    return ec ? 0 : endpoint.port();
  }

 protected:
  void Fail(std::string why) {
    if (error_.empty() && !closing_) error_ = std::move(why);
  }
  asio::awaitable<bool> Connect(const Options& o) {
    tcp::endpoint endpoint(asio::ip::make_address(o.host), o.port);
    auto [ec] = co_await socket_.async_connect(endpoint, kUseTuple);
    if (ec) Fail("connect: " + ec.message());
    co_return !ec;
  }
  // One #labels message received at `received`; false when the stream must end.
  bool OnMessage(std::string_view payload, Clock::time_point received) {
    std::int64_t seq = 0;
    std::string why;
    if (!SeqOfMessage(payload, seq, why)) {
      Fail(std::move(why));
      return false;
    }
    ++frames_;
    sink_.OnLabel(seq, received);
    return true;
  }

  tcp::socket socket_;
  LabelSink& sink_;
  bool upgraded_ = false;
  bool closing_ = false;
  std::uint64_t frames_ = 0, bytes_ = 0, pings_ = 0;
  std::string error_;
};

// An HTTP upgrade through Beast, then a minimal reader of unmasked server frames (see the file
// comment for why).
class RawSubscriber final : public Subscriber {
 public:
  using Subscriber::Subscriber;

  asio::awaitable<void> Run(const Options& o, std::string target) override {
    keepalive_ = std::chrono::milliseconds(o.client_keepalive_ms);
    // (Results are named rather than tested inside `if (co_await ...)`: GCC 12 miscompiles some
    // co_await expressions in conditions.)
    const bool connected = co_await Connect(o);
    if (!connected) co_return;
    const bool switched = co_await Upgrade(o, target);
    if (!switched) co_return;
    upgraded_ = true;
    co_await ReadFrames();
  }

  std::size_t buffered() const override { return end_ - begin_; }

 private:
  asio::awaitable<bool> Upgrade(const Options& o, const std::string& target) {
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, fmt::format("{}:{}", o.host, o.port));
    request.set(http::field::upgrade, "websocket");
    request.set(http::field::connection, "Upgrade");
    // Any 16-byte nonce will do: the answer's Sec-WebSocket-Accept is not what is measured.
    request.set(http::field::sec_websocket_key, "bGFiZWxlci1sb2FkLWdlbg==");
    request.set(http::field::sec_websocket_version, "13");
    auto [write_ec, written] = co_await http::async_write(socket_, request, kUseTuple);
    if (write_ec) {
      Fail("upgrade write: " + write_ec.message());
      co_return false;
    }
    beast::flat_buffer buffer;
    http::response<http::empty_body> response;  // a 101 has no body: the parser stops after the header
    auto [read_ec, read] = co_await http::async_read(socket_, buffer, response, kUseTuple);
    if (read_ec) {
      Fail("upgrade read: " + read_ec.message());
      co_return false;
    }
    if (response.result() != http::status::switching_protocols) {
      Fail(fmt::format("upgrade answered {}", response.result_int()));
      co_return false;
    }
    // Frames the server sent right behind the 101 (a replay starts at once) are already in Beast's
    // buffer: they are the start of the frame stream.
    buffer_.resize(kReadChunk);
    const auto leftover = buffer.data();
    if (leftover.size() > buffer_.size()) buffer_.resize(leftover.size() * 2);
    asio::buffer_copy(asio::buffer(buffer_), leftover);
    end_ = leftover.size();
    bytes_ += leftover.size();
    co_return true;
  }

  asio::awaitable<void> ReadFrames() {
    Clock::time_point received = Clock::now();
    for (;;) {
      if (!ParseFrames(received)) co_return;
      if (keepalive_.count() > 0 && received >= next_keepalive_) {
        // An empty binary message, masked as client frames must be (zero mask).
        pong_.append("\x82\x80\0\0\0\0", 6);
        next_keepalive_ = received + keepalive_;
      }
      if (!pong_.empty()) {
        std::string pong = std::move(pong_);
        pong_.clear();
        auto [write_ec, written] = co_await asio::async_write(socket_, asio::buffer(pong), kUseTuple);
        if (write_ec) {
          Fail("pong: " + write_ec.message());
          co_return;
        }
      }
      // Keep a partial frame at the front, then read behind it.
      if (begin_ > 0) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
        previous_frame_ = 0;
      }
      if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // one frame larger than the buffer
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_),
                                                      kUseTuple);
      if (ec) {
        Fail("read: " + ec.message());
        co_return;
      }
      received = Clock::now();
      end_ += n;
      bytes_ += n;
    }
  }

  // Handles every complete frame in the buffer; false when the stream must end.
  bool ParseFrames(Clock::time_point received) {
    while (end_ - begin_ >= 2) {
      const unsigned char* p = buffer_.data() + begin_;
      const std::size_t available = end_ - begin_;
      const bool fin = (p[0] & 0x80) != 0;
      const int opcode = p[0] & 0x0f;
      if (p[1] & 0x80) {
        Fail(fmt::format("the server sent a masked frame (after {} frames, {} bytes); bytes from the previous "
                         "frame on: {}",
                         frames_, bytes_ - available, HexAround(previous_frame_, begin_ + 16)));
        return false;
      }
      std::uint64_t length = p[1] & 0x7f;
      std::size_t header = 2;
      if (length == 126) {
        if (available < 4) break;
        length = (std::uint64_t{p[2]} << 8) | p[3];
        header = 4;
      } else if (length == 127) {
        if (available < 10) break;
        length = 0;
        for (int i = 2; i < 10; ++i) length = (length << 8) | p[i];
        header = 10;
      }
      if (length > kMaxFrame) {
        // A label frame is a few hundred bytes: this header is garbage, and waiting for its
        // "payload" would stall this subscriber for good.
        Fail(fmt::format("implausible frame length {} (after {} frames); bytes from the previous frame on: {}", length,
                         frames_, HexAround(previous_frame_, begin_ + 16)));
        return false;
      }
      if (available - header < length) break;
      const std::string_view payload(reinterpret_cast<const char*>(p + header), static_cast<std::size_t>(length));
      if (!fin || opcode == 0) {
        Fail(fmt::format("fragmented message (the labeler sends each message in one frame); bytes from the "
                         "previous frame on: {}",
                         HexAround(previous_frame_, begin_ + 16)));
        return false;
      }
      previous_frame_ = begin_;
      begin_ += header + static_cast<std::size_t>(length);
      if (opcode == 2) {
        if (!OnMessage(payload, received)) {
          error_ += "; bytes from the previous frame on: " + HexAround(previous_frame_, begin_);
          return false;
        }
      } else if (opcode == 9) {
        ++pings_;
        QueuePong(payload);
      } else if (opcode == 8) {
        Fail("the server closed the stream");
        return false;
      }
    }
    return true;
  }

  // The buffered bytes [from, to) in hex, for diagnosing a broken stream.
  std::string HexAround(std::size_t from, std::size_t to) const {
    std::string out;
    for (std::size_t i = from; i < std::min(to, end_); ++i) out += fmt::format("{:02x}", buffer_[i]);
    return out;
  }

  // A pong echoes the ping's payload; client frames are masked (a zero mask is a valid mask).
  void QueuePong(std::string_view payload) {
    pong_ += static_cast<char>(0x8a);
    pong_ += static_cast<char>(0x80 | std::min<std::size_t>(payload.size(), 125));
    pong_.append(4, '\0');
    pong_.append(payload.substr(0, 125));
  }

  static constexpr std::size_t kReadChunk = 64 * 1024;
  static constexpr std::uint64_t kMaxFrame = 1 << 20;
  std::vector<unsigned char> buffer_;
  std::size_t begin_ = 0, end_ = 0;
  std::size_t previous_frame_ = 0;  // where the last complete frame started, while it is buffered
  std::string pong_;                // control frames to send (pongs, keep-alive messages)
  std::chrono::milliseconds keepalive_{0};
  Clock::time_point next_keepalive_{};
};

// A complete WebSocket client (Beast): handshake with Sec-WebSocket-Accept checked, frame and
// protocol validation, pings answered. Costs more per message than RawSubscriber.
class BeastSubscriber final : public Subscriber {
 public:
  using Subscriber::Subscriber;

  asio::awaitable<void> Run(const Options& o, std::string target) override {
    const bool connected = co_await Connect(o);
    if (!connected) co_return;
    websocket::stream<tcp::socket&> ws(socket_);
    ws.read_message_max(1 << 20);
    const std::string host = fmt::format("{}:{}", o.host, o.port);
    auto [handshake_ec] = co_await ws.async_handshake(host, target, kUseTuple);
    if (handshake_ec) {
      Fail("handshake: " + handshake_ec.message());
      co_return;
    }
    upgraded_ = true;
    beast::flat_buffer buffer;
    for (;;) {
      auto [ec, n] = co_await ws.async_read(buffer, kUseTuple);
      if (ec) {
        Fail("read: " + ec.message());
        co_return;
      }
      const auto received = Clock::now();
      bytes_ += n;
      if (!ws.got_binary()) {
        Fail("a text message");
        co_return;
      }
      const auto data = buffer.cdata();
      if (!OnMessage(std::string_view(static_cast<const char*>(data.data()), data.size()), received)) co_return;
      buffer.consume(buffer.size());
    }
  }
};

// Spawns subscribers and keeps count of the running ones, so they can be closed and awaited.
class SubscriberSet {
 public:
  void Add(const asio::any_io_executor& executor, const Options& o, const std::string& target, LabelSink& sink) {
    if (o.beast_client) {
      subscribers_.push_back(std::make_unique<BeastSubscriber>(executor, sink));
    } else {
      subscribers_.push_back(std::make_unique<RawSubscriber>(executor, sink));
    }
    ++running_;
    asio::co_spawn(executor, subscribers_.back()->Run(o, target), [this](std::exception_ptr) { --running_; });
  }
  std::size_t upgraded() const {
    return static_cast<std::size_t>(std::count_if(subscribers_.begin(), subscribers_.end(),
                                                  [](const auto& s) { return s->upgraded(); }));
  }
  std::string first_error() const {
    for (const auto& s : subscribers_) {
      if (!s->error().empty()) return s->error();
    }
    return {};
  }
  std::size_t errors() const {
    return static_cast<std::size_t>(std::count_if(subscribers_.begin(), subscribers_.end(),
                                                  [](const auto& s) { return !s->error().empty(); }));
  }
  std::uint64_t bytes() const {
    std::uint64_t total = 0;
    for (const auto& s : subscribers_) total += s->bytes();
    return total;
  }
  // Closes every connection and waits (bounded) until their coroutines have ended.
  asio::awaitable<void> CloseAll() {
    for (auto& s : subscribers_) s->Close();
    co_await WaitUntil([this] { return running_ == 0; }, Clock::now() + std::chrono::seconds(10));
  }
  std::size_t size() const { return subscribers_.size(); }
  const Subscriber& at(std::size_t i) const { return *subscribers_[i]; }

 private:
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
  std::size_t running_ = 0;
};

constexpr std::string_view kSubscribePath = "/xrpc/com.atproto.label.subscribeLabels";

// The subscriber's upgrade (101) reaches us before the server has taken its position at the head;
// a short pause keeps the first labels of a run from racing that.
constexpr std::chrono::milliseconds kSettle{300};

// --- emit -------------------------------------------------------------------------------------

// Marks which seqs a live subscriber received, relative to the first one it saw.
class SeenSink final : public LabelSink {
 public:
  explicit SeenSink(std::size_t expected) : seen_(expected, 0) {}
  void OnLabel(std::int64_t seq, Clock::time_point received) override {
    if (count_ == 0 && unexpected_ == 0) base_ = seq;
    const std::int64_t index = seq - base_;
    if (index < 0 || index >= static_cast<std::int64_t>(seen_.size()) || seen_[index]) {
      ++unexpected_;
      return;
    }
    seen_[index] = 1;
    ++count_;
    last_ = received;
  }
  bool Seen(std::int64_t seq) const {
    const std::int64_t index = seq - base_;
    return index >= 0 && index < static_cast<std::int64_t>(seen_.size()) && seen_[index];
  }
  std::size_t count() const { return count_; }
  std::size_t unexpected() const { return unexpected_; }
  Clock::time_point last() const { return last_; }

 private:
  std::vector<unsigned char> seen_;
  std::int64_t base_ = 0;
  std::size_t count_ = 0, unexpected_ = 0;
  Clock::time_point last_{};
};

// Request latency (send -> durable answer) of every acknowledged request, in microseconds.
std::vector<std::uint32_t> RequestLatenciesUs(const std::vector<Ack>& acks) {
  std::vector<std::uint32_t> out;
  for (const auto& a : acks) {
    if (a.done) out.push_back(static_cast<std::uint32_t>((a.acked - a.sent) / std::chrono::microseconds(1)));
  }
  return out;
}

asio::awaitable<int> RunEmit(Options o) {
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout_s));
  SeenSink sink(o.stream_labels != 0 ? o.stream_labels : o.labels);
  SubscriberSet watchers;
  watchers.Add(executor, o, std::string(kSubscribePath), sink);
  const bool up = co_await WaitUntil([&] { return watchers.upgraded() == 1 || watchers.errors() > 0; }, deadline);
  if (!up || watchers.errors() > 0) {
    std::cerr << "emit: the live subscriber did not connect: " << watchers.first_error() << "\n";
    co_return 1;
  }
  Emitter emitter(o, BuildBatches(o));
  const bool connected = co_await emitter.Connect();
  if (!connected) {
    std::cerr << "emit: " << emitter.error() << "\n";
    co_return 1;
  }
  co_await Sleep(kSettle);

  const double cpu_before = SelfCpuSeconds();
  const auto server_cpu_before = ProcessCpuSeconds(o.server_pid);
  emitter.Start(executor);
  const bool acked = co_await WaitUntil([&] { return emitter.finished(); }, deadline);
  bool visible = false;
  if (acked && !emitter.failed()) {
    // Every acknowledged seq seen (on a log other emitters share, the count alone would include
    // theirs).
    visible = co_await WaitUntil(
        [&] {
          if (watchers.errors() > 0) return true;
          if (sink.count() < emitter.acked_labels()) return false;
          for (const auto& ack : emitter.acks()) {
            for (auto seq : ack.seqs) {
              if (!sink.Seen(seq)) return false;
            }
          }
          return true;
        },
        deadline);
  }
  const double client_cpu = SelfCpuSeconds() - cpu_before;
  const auto server_cpu_after = ProcessCpuSeconds(o.server_pid);

  if (!acked || emitter.failed()) {
    std::cerr << "emit: " << (acked ? emitter.error() : "timed out waiting for answers") << "\n";
    co_await watchers.CloseAll();
    co_return 1;
  }
  // Every acknowledged seq must have reached the subscriber.
  std::size_t missing = 0;
  for (const auto& ack : emitter.acks()) {
    for (auto seq : ack.seqs) missing += sink.Seen(seq) ? 0 : 1;
  }
  const auto start = emitter.first_send();
  const double durable_s = Seconds(emitter.last_ack() - start);
  const double visible_s = Seconds(std::max(sink.last(), emitter.last_ack()) - start);
  auto latencies = RequestLatenciesUs(emitter.acks());
  const Summary latency = Summarize(latencies);
  const double n = static_cast<double>(emitter.acked_labels());
  const double server_cpu = server_cpu_before && server_cpu_after ? *server_cpu_after - *server_cpu_before : -1;

  std::cerr << fmt::format(
      "emit: {} labels, {} per request, {} connections: durable {:.0f} labels/s ({:.3f} s), visible to the "
      "subscriber {:.0f} labels/s ({:.3f} s); request latency p50 {:.1f} ms p99 {:.1f} ms max {:.1f} ms; "
      "missing in stream {}, unexpected {}; client CPU {:.2f} s ({:.0f}%), server CPU {:.2f} s ({:.1f} µs/label)\n",
      emitter.acked_labels(), o.batch, o.connections, n / durable_s, durable_s, n / visible_s, visible_s,
      latency.p50 / 1e3, latency.p99 / 1e3, latency.max / 1e3, missing, sink.unexpected(), client_cpu,
      100 * client_cpu / visible_s, server_cpu, server_cpu >= 0 ? server_cpu * 1e6 / n : -1.0);
  std::cout << fmt::format(
      "RESULT mode=emit labels={} batch={} connections={} durable_s={:.4f} durable_labels_per_s={:.0f} "
      "visible_s={:.4f} visible_labels_per_s={:.0f} req_p50_ms={:.2f} req_p99_ms={:.2f} req_max_ms={:.2f} "
      "missing={} unexpected={} client_cpu_s={:.3f} server_cpu_s={:.3f} server_cpu_us_per_label={:.1f}\n",
      emitter.acked_labels(), o.batch, o.connections, durable_s, n / durable_s, visible_s, n / visible_s,
      latency.p50 / 1e3, latency.p99 / 1e3, latency.max / 1e3, missing, sink.unexpected(), client_cpu, server_cpu,
      server_cpu >= 0 ? server_cpu * 1e6 / n : -1.0);
  std::cout.flush();
  const bool ok = visible && missing == 0 && sink.unexpected() == 0 && watchers.errors() == 0;
  if (!ok) std::cerr << "emit: FAILED: the stream did not show every label (" << watchers.first_error() << ")\n";
  co_await watchers.CloseAll();
  co_return ok ? 0 : 1;
}

// --- replay -----------------------------------------------------------------------------------

// Counts frames and checks that seqs only go up.
class CountSink final : public LabelSink {
 public:
  void OnLabel(std::int64_t seq, Clock::time_point received) override {
    if (count_ == 0) first_ = received;
    if (seq <= last_seq_) ++out_of_order_;
    last_seq_ = seq;
    ++count_;
    last_ = received;
  }
  std::size_t count() const { return count_; }
  std::size_t out_of_order() const { return out_of_order_; }
  std::int64_t last_seq() const { return last_seq_; }
  Clock::time_point first() const { return first_; }
  Clock::time_point last() const { return last_; }

 private:
  std::size_t count_ = 0, out_of_order_ = 0;
  std::int64_t last_seq_ = std::numeric_limits<std::int64_t>::min();
  Clock::time_point first_{}, last_{};
};

asio::awaitable<int> RunReplay(Options o) {
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout_s));
  CountSink sink;
  SubscriberSet set;
  const double cpu_before = SelfCpuSeconds();
  const auto server_cpu_before = ProcessCpuSeconds(o.server_pid);
  const auto start = Clock::now();  // before connecting: the replay's cost includes its handshake
  set.Add(executor, o, fmt::format("{}?cursor={}", kSubscribePath, o.cursor), sink);
  const bool complete = co_await WaitUntil([&] { return sink.count() >= o.expect || set.errors() > 0; }, deadline);
  const double client_cpu = SelfCpuSeconds() - cpu_before;
  const auto server_cpu_after = ProcessCpuSeconds(o.server_pid);
  const double elapsed = Seconds(sink.last() - start);
  const double n = static_cast<double>(sink.count());
  const double server_cpu = server_cpu_before && server_cpu_after ? *server_cpu_after - *server_cpu_before : -1;
  std::cerr << fmt::format(
      "replay cursor={}: {} of {} labels in {:.3f} s = {:.0f} labels/s, {:.1f} MB/s; first frame after {:.1f} ms; "
      "last seq {}, out of order {}; client CPU {:.2f} s, server CPU {:.2f} s ({:.1f} µs/label)\n",
      o.cursor, sink.count(), o.expect, elapsed, n / elapsed, static_cast<double>(set.bytes()) / elapsed / 1e6,
      sink.count() ? Seconds(sink.first() - start) * 1e3 : -1.0, sink.last_seq(), sink.out_of_order(), client_cpu,
      server_cpu, server_cpu >= 0 && n > 0 ? server_cpu * 1e6 / n : -1.0);
  std::cout << fmt::format(
      "RESULT mode=replay cursor={} labels={} expected={} seconds={:.4f} labels_per_s={:.0f} mb_per_s={:.2f} "
      "first_frame_ms={:.2f} out_of_order={} client_cpu_s={:.3f} server_cpu_s={:.3f} server_cpu_us_per_label={:.2f}\n",
      o.cursor, sink.count(), o.expect, elapsed, n / elapsed, static_cast<double>(set.bytes()) / elapsed / 1e6,
      sink.count() ? Seconds(sink.first() - start) * 1e3 : -1.0, sink.out_of_order(), client_cpu, server_cpu,
      server_cpu >= 0 && n > 0 ? server_cpu * 1e6 / n : -1.0);
  std::cout.flush();
  const bool ok = complete && sink.count() == o.expect && sink.out_of_order() == 0;
  if (!ok) std::cerr << "replay: FAILED " << set.first_error() << "\n";
  co_await set.CloseAll();
  co_return ok ? 0 : 1;
}

// --- fanout -----------------------------------------------------------------------------------

// One subscriber's receive time of every label of a burst, as microseconds after the burst's
// reference point, indexed by seq - (the first seq it saw). 4 bytes a label keeps 1 000 x 10 000
// samples at 40 MB; Reset() reuses them for the next burst.
// `origin` is a reference: RunFanout moves it to the start of each burst.
class TimelineSink final : public LabelSink {
 public:
  static constexpr std::uint32_t kNotReceived = std::numeric_limits<std::uint32_t>::max();
  TimelineSink(std::size_t labels, const Clock::time_point& origin) : received_(labels, kNotReceived), origin_(origin) {}
  void OnLabel(std::int64_t seq, Clock::time_point received) override {
    if (count_ == 0 && unexpected_ == 0) base_ = seq;
    const std::int64_t index = seq - base_;
    if (index < 0 || index >= static_cast<std::int64_t>(received_.size()) || received_[index] != kNotReceived) {
      ++unexpected_;
      return;
    }
    received_[index] = static_cast<std::uint32_t>((received - origin_) / std::chrono::microseconds(1));
    last_us_ = received_[index];
    ++count_;
  }
  void Reset() {
    std::fill(received_.begin(), received_.end(), kNotReceived);
    base_ = 0;
    count_ = unexpected_ = 0;
    last_us_ = 0;
  }
  std::uint32_t last_us() const { return last_us_; }  // receive time of the newest label
  // The receive time of `seq` (µs after the origin), or kNotReceived.
  std::uint32_t At(std::int64_t seq) const {
    const std::int64_t index = seq - base_;
    if (count_ == 0 || index < 0 || index >= static_cast<std::int64_t>(received_.size())) return kNotReceived;
    return received_[index];
  }
  std::size_t count() const { return count_; }
  std::size_t unexpected() const { return unexpected_; }

 private:
  std::vector<std::uint32_t> received_;
  const Clock::time_point& origin_;
  std::int64_t base_ = 0;
  std::size_t count_ = 0, unexpected_ = 0;
  std::uint32_t last_us_ = 0;
};

// One line per acknowledged request, in send order: where a request's labels spent their time
// (send, answer, first/median/last delivery, µs after the burst's start).
void WriteRequestTimeline(std::ostream& out, std::size_t burst, const std::vector<Ack>& acks,
                          const std::vector<std::unique_ptr<TimelineSink>>& sinks, Clock::time_point origin) {
  out << "# burst " << burst << "\n";
  out << "request sent_us acked_us first_seq labels first_delivery_us median_delivery_us last_delivery_us\n";
  auto us = [&](Clock::time_point t) { return static_cast<std::int64_t>((t - origin) / std::chrono::microseconds(1)); };
  std::vector<std::uint32_t> at;
  for (std::size_t i = 0; i < acks.size(); ++i) {
    const Ack& ack = acks[i];
    if (!ack.done || ack.seqs.empty()) continue;
    at.clear();
    for (auto seq : ack.seqs) {
      for (const auto& s : sinks) {
        if (const auto t = s->At(seq); t != TimelineSink::kNotReceived) at.push_back(t);
      }
    }
    if (at.empty()) continue;
    std::sort(at.begin(), at.end());
    out << fmt::format("{} {} {} {} {} {} {} {}\n", i, us(ack.sent), us(ack.acked), ack.seqs.front(), ack.seqs.size(),
                       at.front(), at[at.size() / 2], at.back());
  }
}

asio::awaitable<int> RunFanout(Options o) {
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout_s));
  Clock::time_point origin = Clock::now();  // reset just before each burst

  const auto rss_before = ProcessRssBytes(o.server_pid);
  std::vector<std::unique_ptr<TimelineSink>> sinks;
  SubscriberSet set;
  const auto connect_start = Clock::now();
  for (std::size_t i = 0; i < o.subscribers; ++i) {
    sinks.push_back(std::make_unique<TimelineSink>(o.labels, origin));
    set.Add(executor, o, std::string(kSubscribePath), *sinks.back());
  }
  const bool up = co_await WaitUntil([&] { return set.upgraded() == o.subscribers || set.errors() > 0; }, deadline);
  if (!up || set.errors() > 0) {
    std::cerr << fmt::format("fanout: {} of {} subscribers upgraded; {} failed, first error: {}\n", set.upgraded(),
                             o.subscribers, set.errors(), set.first_error());
    co_await set.CloseAll();
    co_return 1;
  }
  const double connect_s = Seconds(Clock::now() - connect_start);
  std::ofstream timeline;
  if (!o.request_timeline.empty()) timeline.open(o.request_timeline);

  bool ok = true;
  std::optional<std::int64_t> rss_idle;
  for (std::size_t burst = 1; burst <= o.bursts && ok; ++burst) {
    for (auto& sink : sinks) sink->Reset();
    Options bo = o;
    bo.run_tag = o.run_tag.substr(0, 7) + static_cast<char>('a' + burst - 1);  // distinct subjects per burst (--bursts <= 26)
    Emitter emitter(bo, BuildBatches(bo));
    co_await Sleep(std::chrono::milliseconds(o.pause_ms));  // let the server settle before reading its memory
    if (burst == 1) rss_idle = ProcessRssBytes(o.server_pid);
    // Connected after the pause: a connection that sends no request would meet the server's
    // header timeout.
    const bool connected = co_await emitter.Connect();
    if (!connected) {
      std::cerr << "fanout: " << emitter.error() << "\n";
      ok = false;
      break;
    }

    const double cpu_before = SelfCpuSeconds();
    const auto server_cpu_before = ProcessCpuSeconds(o.server_pid);
    origin = Clock::now();
    emitter.Start(executor);
    const bool acked = co_await WaitUntil([&] { return emitter.finished(); }, deadline);
    const std::size_t expected = emitter.acked_labels();
    bool delivered = false;
    if (acked && !emitter.failed()) {
      delivered = co_await WaitUntil(
          [&] {
            return set.errors() > 0 ||
                   std::all_of(sinks.begin(), sinks.end(), [&](const auto& s) { return s->count() >= expected; });
          },
          deadline);
    }
    const double client_cpu = SelfCpuSeconds() - cpu_before;
    const auto server_cpu_after = ProcessCpuSeconds(o.server_pid);
    const auto rss_after = ProcessRssBytes(o.server_pid);
    if (!delivered) {
      // Which subscribers are short, and whether their bytes are stuck in our buffer (a client
      // problem) or never arrived (look at the server, e.g. `ss -tnp` for its send queues).
      std::size_t shown = 0, short_subscribers = 0;
      for (std::size_t i = 0; i < sinks.size(); ++i) {
        if (sinks[i]->count() >= expected) continue;
        ++short_subscribers;
        if (shown++ < 10) {
          std::cerr << fmt::format(
              "  subscriber {} (local port {}): {} of {} labels, the last {:.3f} s into the burst; {} bytes read, {} "
              "buffered, {} pings, error \"{}\"\n",
              i, set.at(i).local_port(), sinks[i]->count(), expected, sinks[i]->last_us() / 1e6, set.at(i).bytes(),
              set.at(i).buffered(), set.at(i).pings(), set.at(i).error());
        }
      }
      std::cerr << fmt::format("fanout: burst {}: {} of {} subscribers did not get every label in time\n", burst,
                               short_subscribers, sinks.size());
    }
    if (!acked || emitter.failed()) {
      std::cerr << "fanout: burst " << burst << ": " << (acked ? emitter.error() : "timed out waiting for answers")
                << "\n";
      ok = false;
      break;
    }

    // Latency of every (subscriber, label): its receive time minus the send time of the request
    // that carried the label. Spread: its receive time minus the first subscriber's receive time
    // of that label, i.e. the fan-out alone, without the emit path.
    std::vector<std::uint32_t> latency, spread;
    latency.reserve(expected * sinks.size());
    spread.reserve(expected * sinks.size());
    std::size_t missing = 0, unexpected = 0;
    std::uint32_t last_delivery = 0;
    for (const auto& s : sinks) unexpected += s->unexpected();
    for (const auto& ack : emitter.acks()) {
      const auto sent = static_cast<std::int64_t>((ack.sent - origin) / std::chrono::microseconds(1));
      for (auto seq : ack.seqs) {
        std::uint32_t first = TimelineSink::kNotReceived;
        for (const auto& s : sinks) first = std::min(first, s->At(seq));
        for (const auto& s : sinks) {
          const std::uint32_t at = s->At(seq);
          if (at == TimelineSink::kNotReceived) {
            ++missing;
            continue;
          }
          latency.push_back(static_cast<std::uint32_t>(std::max<std::int64_t>(0, at - sent)));
          spread.push_back(at - first);
          last_delivery = std::max(last_delivery, at);
        }
      }
    }
    if (timeline.is_open()) WriteRequestTimeline(timeline, burst, emitter.acks(), sinks, origin);
    const Summary lat = Summarize(latency);
    const Summary spr = Summarize(spread);
    const double emit_s = Seconds(emitter.last_ack() - origin);
    const double all_delivered_s = static_cast<double>(last_delivery) / 1e6;
    const double server_cpu = server_cpu_before && server_cpu_after ? *server_cpu_after - *server_cpu_before : -1;
    const double subscribers = static_cast<double>(o.subscribers);
    auto mib = [](std::optional<std::int64_t> v) { return v ? static_cast<double>(*v) / (1 << 20) : -1.0; };
    auto per_subscriber = [&](std::optional<std::int64_t> v) {
      return v && rss_before ? static_cast<double>(*v - *rss_before) / subscribers : -1.0;
    };
    const std::size_t deliveries = latency.size();

    std::cerr << fmt::format(
        "fanout burst {} of {}{}: {} subscribers (connected in {:.2f} s), {} labels ({} per request, {} connections) "
        "emitted in {:.3f} s; every subscriber had every label after {:.3f} s\n"
        "  delivery latency (receive - emit send): p50 {:.1f} ms, p99 {:.1f} ms, p99.9 {:.1f} ms, max {:.1f} ms over "
        "{} deliveries; spread after the first subscriber: p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms\n"
        "  missing {}, unexpected {}; server VmRSS {:.1f} MiB before, {:.1f} MiB with subscribers idle "
        "({:.0f} B/subscriber), {:.1f} MiB after the burst ({:.0f} B/subscriber)\n"
        "  client CPU {:.2f} s ({:.0f}% of the burst), server CPU {:.2f} s ({:.2f} µs per delivery)\n",
        burst, o.bursts, burst == 1 ? " (the first after start)" : "", o.subscribers, connect_s, expected, o.batch,
        o.connections, emit_s, all_delivered_s, lat.p50 / 1e3, lat.p99 / 1e3, lat.p999 / 1e3, lat.max / 1e3,
        deliveries, spr.p50 / 1e3, spr.p99 / 1e3, spr.max / 1e3, missing, unexpected, mib(rss_before), mib(rss_idle),
        per_subscriber(rss_idle), mib(rss_after), per_subscriber(rss_after), client_cpu,
        100 * client_cpu / std::max(all_delivered_s, 1e-9), server_cpu,
        server_cpu >= 0 && deliveries ? server_cpu * 1e6 / static_cast<double>(deliveries) : -1.0);
    std::cout << fmt::format(
        "RESULT mode=fanout burst={} subscribers={} labels={} batch={} connections={} emit_s={:.4f} "
        "all_delivered_s={:.4f} lat_p50_ms={:.2f} lat_p99_ms={:.2f} lat_p999_ms={:.2f} lat_max_ms={:.2f} "
        "spread_p50_ms={:.2f} spread_p99_ms={:.2f} spread_max_ms={:.2f} deliveries={} missing={} unexpected={} "
        "rss_before_b={} rss_idle_b={} rss_after_b={} idle_b_per_sub={:.0f} after_b_per_sub={:.0f} "
        "client_cpu_s={:.3f} server_cpu_s={:.3f} connect_s={:.3f}\n",
        burst, o.subscribers, expected, o.batch, o.connections, emit_s, all_delivered_s, lat.p50 / 1e3, lat.p99 / 1e3,
        lat.p999 / 1e3, lat.max / 1e3, spr.p50 / 1e3, spr.p99 / 1e3, spr.max / 1e3, deliveries, missing, unexpected,
        rss_before.value_or(-1), rss_idle.value_or(-1), rss_after.value_or(-1), per_subscriber(rss_idle),
        per_subscriber(rss_after), client_cpu, server_cpu, connect_s);
    std::cout.flush();
    ok = delivered && missing == 0 && unexpected == 0 && set.errors() == 0;
  }
  if (!ok) std::cerr << "fanout: FAILED: " << set.errors() << " subscriber errors, first: " << set.first_error() << "\n";
  co_await set.CloseAll();
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // A fan-out run holds a descriptor per subscriber: use every one the hard limit allows.
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  Options o;
  CLI::App app{"labeler_load: load generator for plyr-core's labeler (see bench/labeler/run.sh)"};
  app.require_subcommand(1);
  auto common = [&](CLI::App* c) {
    c->add_option("--host", o.host, "Labeler address (an IP)")->capture_default_str();
    c->add_option("--port", o.port, "Labeler port")->required();
    c->add_option("--server-pid", o.server_pid, "Server pid, for its CPU time and VmRSS (from /proc)");
    c->add_option("--timeout", o.timeout_s, "Give up after this many seconds")->capture_default_str();
    c->add_option("--ws", o.beast_client,
                  "Subscriber reader: raw (default, minimal per-frame work) or beast (full beast::websocket client)")
        ->transform(CLI::CheckedTransformer(std::map<std::string, bool>{{"raw", false}, {"beast", true}}));
    c->add_option("--client-keepalive-ms", o.client_keepalive_ms,
                  "Raw reader: send an empty message this often while frames arrive, so the server never needs "
                  "keep-alive pings (diagnostic; 0: off)")
        ->capture_default_str();
  };
  auto emitting = [&](CLI::App* c) {
    c->add_option("--token", o.token, "Admin token (Bearer)")->required();
    c->add_option("--labels", o.labels, "Labels to emit")->capture_default_str()->check(CLI::PositiveNumber);
    c->add_option("--connections", o.connections, "Concurrent keep-alive connections")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    c->add_option("--batch", o.batch, "Labels per request (1: the single-label form)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    c->add_flag("--keep-emit-connections", o.keep_emit_connections,
                "Leave the emit connections open after the last request, for the server's idle timeout to close "
                "(diagnostic)");
    c->add_option("--run-tag", o.run_tag, "Short tag (letters) making this run's subject URIs distinct")
        ->capture_default_str()
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
              return !s.empty() && s.size() <= 8 && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; })
                         ? std::string()
                         : std::string("1 to 8 lower-case letters");
            },
            "TAG"));
  };
  CLI::App* emit = app.add_subcommand("emit", "Emit labels over concurrent connections; labels/s");
  common(emit);
  emitting(emit);
  emit->add_option("--stream-labels", o.stream_labels,
                   "Labels the stream carries in all, when other emitters share the log (default: --labels)");
  CLI::App* replay = app.add_subcommand("replay", "One subscriber with a cursor; labels/s");
  common(replay);
  replay->add_option("--cursor", o.cursor, "subscribeLabels cursor")->capture_default_str();
  replay->add_option("--expect", o.expect, "Labels the replay must deliver")->required()->check(CLI::PositiveNumber);
  CLI::App* fanout = app.add_subcommand("fanout", "Many live subscribers, one burst; delivery latency and memory");
  common(fanout);
  emitting(fanout);
  fanout->add_option("--subscribers", o.subscribers, "Live subscribers")->capture_default_str()->check(CLI::PositiveNumber);
  fanout->add_option("--request-timeline", o.request_timeline,
                     "Write one line per emit request (send, answer, first/median/last delivery) to this file "
                     "(diagnostic)");
  fanout->add_option("--bursts", o.bursts,
                     "Bursts, one after the other over the same subscribers, each reported on its own (the first "
                     "after the server's start pays for cold kernel memory, see bench/RESULTS.md)")
      ->capture_default_str()
      ->check(CLI::Range(1, 26));
  fanout->add_option("--pause-ms", o.pause_ms, "Idle time before each burst")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (fanout->parsed()) {
    // Defaults for the fan-out burst when not given: 10 000 labels, 100 per request, 4 connections.
    if (fanout->count("--labels") == 0) o.labels = 10'000;
    if (fanout->count("--connections") == 0) o.connections = 4;
  }

  asio::io_context io(1);
  int rc = 2;
  auto done = [&](std::exception_ptr e, int result) {
    io.stop();  // a failed run may leave operations pending; they are abandoned with the process
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "labeler_load: " << ex.what() << "\n";
      }
      rc = 2;
      return;
    }
    rc = result;
  };
  if (emit->parsed()) asio::co_spawn(io, RunEmit(o), done);
  if (replay->parsed()) asio::co_spawn(io, RunReplay(o), done);
  if (fanout->parsed()) asio::co_spawn(io, RunFanout(o), done);
  io.run();
  // No teardown: after a failed or timed-out run, abandoned operations still point into the run's
  // state, so the process ends here without running destructors.
  std::cout.flush();
  std::cerr.flush();
  std::_Exit(rc);
}

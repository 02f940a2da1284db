#include "common/http_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include "common/file_util.h"

namespace plyr {

using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

HttpClient::HttpClient() : tls_(std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client)) {
  tls_->set_default_verify_paths();
  tls_->set_verify_mode(asio::ssl::verify_peer);
}

HttpClient::~HttpClient() = default;

std::string_view HttpClientResponse::Header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (beast::iequals(field, name)) return value;
  }
  return {};
}

namespace {

// A file body moves through one buffer of this size, one pread and one socket write at a time:
// large enough that the syscalls vanish next to the copy, small enough for many uploads at once.
constexpr std::size_t kFileChunk = 256 * 1024;
constexpr std::uint32_t kResponseHeaderLimit = 16 * 1024;
constexpr std::size_t kReadBufferBytes = 64 * 1024;
// Beast keeps field sizes in 16 bits and throws past them; our cap stays well below.
constexpr std::size_t kFieldValueLimit = 8 * 1024;

sys::error_code Errc(sys::errc::errc_t code) { return sys::errc::make_error_code(code); }

// Beast reports its own codes for an expired stream deadline and for parser limits; callers
// test for the ones in the header's contract.
sys::error_code Normalize(sys::error_code ec) {
  if (ec == beast::error::timeout) return asio::error::timed_out;
  if (ec == http::error::body_limit || ec == http::error::header_limit) return Errc(sys::errc::message_size);
  return ec;
}

// The Status of a failed call, by the contract in the header.
Status StatusFor(const sys::error_code& ec) {
  if (ec == sys::errc::invalid_argument) return Status(StatusCode::kInvalidArgument, "invalid request: " + ec.message());
  if (ec == asio::error::timed_out) return Status(StatusCode::kDeadlineExceeded, "timed out: " + ec.message());
  if (ec == sys::errc::message_size) {
    return Status(StatusCode::kResourceExhausted, "the response is larger than allowed: " + ec.message());
  }
  if (ec == sys::errc::no_such_file_or_directory) return Status(StatusCode::kNotFound, "body file: " + ec.message());
  if (ec == sys::errc::io_error) return Status(StatusCode::kInternal, "body file: " + ec.message());
  return Status(StatusCode::kUnavailable, ec.message());
}

// RFC 9110 token: the only characters a field name may hold.
bool IsToken(std::string_view s) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kSymbols.find(c) != std::string_view::npos;
  });
}

// No control characters but tab: a CR or LF here would let a value inject fields of its own.
bool IsFieldValue(std::string_view s) {
  return s.size() <= kFieldValueLimit && std::none_of(s.begin(), s.end(), [](char c) {
           const auto u = static_cast<unsigned char>(c);
           return (u < 0x20 && u != '\t') || u == 0x7f;
         });
}

struct BodyFile {
  UniqueFd fd;
  std::uint64_t start = 0;  // where in the file the body begins
  std::uint64_t size = 0;
};

// open(2) for the exchange below, which works in error codes (its caller turns them into a Status).
sys::result<UniqueFd> OpenForExchange(const std::filesystem::path& path, int flags, int mode = 0) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return LastError();
  return UniqueFd(fd);
}

sys::result<BodyFile> OpenBodyFile(const std::filesystem::path& path, std::uint64_t offset, std::uint64_t length) {
  // O_NONBLOCK: opening a FIFO by mistake must not block the I/O thread waiting for a writer
  // (it is then refused below); on a regular file the flag changes nothing.
  auto fd = OpenForExchange(path, O_RDONLY | O_NONBLOCK);
  if (!fd) return fd.error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return LastError();
  // Only a regular file has a size to announce in Content-Length.
  if (!S_ISREG(st.st_mode)) return Errc(sys::errc::invalid_argument);
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (offset > file_size) return Errc(sys::errc::invalid_argument);
  const std::uint64_t rest = file_size - offset;
  return BodyFile{std::move(*fd), offset, length == 0 ? rest : std::min(length, rest)};
}

// Resolves `host`, giving up at `deadline`. getaddrinfo cannot be interrupted, so on timeout the
// lookup is abandoned rather than cancelled: it finishes in the background, keeping its state
// alive through the handler, and its result is dropped.
asio::awaitable<sys::result<tcp::resolver::results_type>> Resolve(const asio::any_io_executor& executor,
                                                                  const std::string& host, const std::string& port,
                                                                  Clock::time_point deadline) {
  struct Lookup {
    explicit Lookup(const asio::any_io_executor& ex) : resolver(ex), timer(ex) {}
    tcp::resolver resolver;
    asio::steady_timer timer;
    bool done = false;
    sys::error_code ec;
    tcp::resolver::results_type results;
  };
  auto lookup = std::make_shared<Lookup>(executor);
  lookup->timer.expires_at(deadline);
  lookup->resolver.async_resolve(host, port, [lookup](sys::error_code ec, tcp::resolver::results_type results) {
    lookup->done = true;
    lookup->ec = ec;
    lookup->results = std::move(results);
    lookup->timer.cancel();
  });
  co_await lookup->timer.async_wait(kUseTuple);
  // The timer may have expired just as the lookup finished; `done` decides.
  if (!lookup->done) {
    lookup->resolver.cancel();
    co_return sys::error_code(asio::error::timed_out);
  }
  if (lookup->ec) co_return lookup->ec;
  co_return std::move(lookup->results);
}

// Streams `file` after the header. pread blocks the I/O thread for one chunk at a time, which
// from the page cache or a local disk is short next to the socket write; each write carries the
// stream's deadline, so a slow peer cannot hold the call past it.
template <typename Stream>
asio::awaitable<sys::error_code> WriteFileBody(Stream& stream, const BodyFile& file) {
  std::vector<char> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(file.size, kFileChunk)));
  std::uint64_t offset = 0;
  while (offset < file.size) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(file.size - offset, chunk.size()));
    const ssize_t n = ::pread(file.fd.get(), chunk.data(), want, static_cast<off_t>(file.start + offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      co_return LastError();
    }
    // The header promised file.size bytes; the file shrank, and a shorter body would leave the
    // peer waiting for the rest.
    if (n == 0) co_return Errc(sys::errc::io_error);
    auto [ec, written] =
        co_await asio::async_write(stream, asio::buffer(chunk.data(), static_cast<std::size_t>(n)), kUseTuple);
    if (ec) co_return ec;
    offset += static_cast<std::uint64_t>(n);
  }
  co_return sys::error_code{};
}

// The header through Beast, then the body's bytes as they are: `body`, or `file` when set.
template <typename Stream>
asio::awaitable<sys::error_code> WriteRequest(Stream& stream, http::request<http::empty_body>& header,
                                              std::string_view body, const BodyFile* file) {
  http::request_serializer<http::empty_body> serializer(header);
  auto [ec, n] = co_await http::async_write_header(stream, serializer, kUseTuple);
  if (ec) co_return ec;
  if (file) co_return co_await WriteFileBody(stream, *file);
  if (body.empty()) co_return sys::error_code{};
  auto [bec, bn] = co_await asio::async_write(stream, asio::buffer(body), kUseTuple);
  co_return bec;
}

template <typename Stream>
asio::awaitable<sys::result<HttpClientResponse>> ReadResponse(Stream& stream, http::verb method,
                                                              std::size_t body_limit,
                                                              const std::filesystem::path& response_file,
                                                              std::uint64_t response_file_limit) {
  beast::flat_buffer buffer;
  // Beast sizes each socket read by the buffer's free capacity (512 bytes at the least): an
  // unreserved buffer reads a large body a few KiB at a time, a system call and a copy each.
  buffer.reserve(kReadBufferBytes);
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(kResponseHeaderLimit);
  // Beast checks an announced length against its limit as soon as the header is in, before the
  // status is known; when a file has a limit of its own, the parser gets the larger one and the
  // loop below holds each destination to its own.
  const bool own_file_limit = !response_file.empty() && response_file_limit != 0;
  const std::uint64_t file_limit = own_file_limit ? response_file_limit : body_limit;
  parser.body_limit(std::max<std::uint64_t>(body_limit, file_limit));
  // A HEAD answer announces the length a GET would get, and carries no body.
  if (method == http::verb::head) parser.skip(true);
  auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kUseTuple);
  if (hec) co_return hec;
  HttpClientResponse response;
  response.status = parser.get().result_int();
  for (const auto& field : parser.get()) response.headers.emplace_back(field.name_string(), field.value());

  // A successful body goes to response_file when one is named; anything else (an error's JSON)
  // to `body`. The file is written in the page cache as the bytes arrive.
  UniqueFd file;
  if (!response_file.empty() && response.status / 100 == 2) {
    auto opened = OpenForExchange(response_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!opened) co_return opened.error();
    file = std::move(*opened);
  }
  const std::uint64_t limit = file.valid() ? file_limit : body_limit;
  std::uint64_t received = 0;
  std::vector<char> chunk(64 * 1024);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return ec;
    const std::size_t got = chunk.size() - parser.get().body().size;
    received += got;
    if (received > limit) co_return sys::error_code(http::error::body_limit);
    if (!file.valid()) {
      response.body.append(chunk.data(), got);
      continue;
    }
    for (std::size_t done = 0; done < got;) {
      const ssize_t w = ::write(file.get(), chunk.data() + done, got - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) co_return LastError();
      done += static_cast<std::size_t>(w);
    }
  }
  co_return response;
}

template <typename Stream>
asio::awaitable<sys::result<HttpClientResponse>> Exchange(Stream& stream, http::request<http::empty_body>& header,
                                                          std::string_view body, const BodyFile* file,
                                                          std::size_t body_limit,
                                                          const std::filesystem::path& response_file,
                                                          std::uint64_t response_file_limit) {
  const sys::error_code write_error = co_await WriteRequest(stream, header, body, file);
  if (!write_error) {
    co_return co_await ReadResponse(stream, header.method(), body_limit, response_file, response_file_limit);
  }
  // A server may refuse an upload early (413, 401) and close before taking it all. Its answer,
  // when it can still be read, says more than the broken pipe. Only for a connection the peer
  // broke: after a file error the peer is still waiting for the body and would never answer.
  if (write_error == asio::error::broken_pipe || write_error == asio::error::connection_reset) {
    auto early = co_await ReadResponse(stream, header.method(), body_limit, {}, 0);
    if (early) co_return early;
  }
  co_return write_error;
}

// now + timeout, saturating: a caller's "forever" (milliseconds::max()) must not wrap around
// into the past. Beast treats time_point::max() as no deadline at all.
Clock::time_point DeadlineAfter(std::chrono::milliseconds timeout) {
  const auto now = Clock::now();
  if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now)) {
    return Clock::time_point::max();
  }
  return now + timeout;
}

bool AllowsEmptyContentLength(http::verb method) {
  return method == http::verb::post || method == http::verb::put || method == http::verb::patch;
}

// What every call does before its first byte goes out: the request checked and its header built,
// the body file opened (a bad path costs no connection), the peer resolved and connected.
struct Prepared {
  http::request<http::empty_body> header;
  std::optional<BodyFile> file;
  std::string host;
  bool tls = false;
  Clock::time_point deadline;
};

sys::result<Prepared> Prepare(const HttpClientRequest& request) {
  const auto invalid = Errc(sys::errc::invalid_argument);
  auto url = boost::urls::parse_uri(request.url);
  if (!url) return invalid;
  Prepared prepared;
  prepared.deadline = DeadlineAfter(request.timeout);
  prepared.tls = url->scheme_id() == boost::urls::scheme::https;
  if ((!prepared.tls && url->scheme_id() != boost::urls::scheme::http) || url->host().empty() ||
      request.method == http::verb::unknown || !IsFieldValue(url->encoded_host_and_port())) {
    return invalid;
  }
  prepared.host = url->host_address();
  std::string_view target = url->encoded_target();
  if (target.empty()) target = "/";  // "http://host" asks for the root

  auto& header = prepared.header;
  header = http::request<http::empty_body>(request.method, target, 11);
  header.set(http::field::host, url->encoded_host_and_port());
  header.set(http::field::user_agent, "plyr-core");
  // One request per connection; saying so lets the server let go of it as soon as it answers.
  header.keep_alive(false);
  // A caller's field replaces a default of the same name; several of the same name all go out.
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || !IsFieldValue(value) || beast::iequals(name, "Content-Length") ||
        beast::iequals(name, "Transfer-Encoding")) {
      return invalid;
    }
    header.erase(name);
  }
  for (const auto& [name, value] : request.headers) header.insert(name, value);

  if (!request.body_file.empty()) {
    auto opened = OpenBodyFile(request.body_file, request.body_file_offset, request.body_file_length);
    if (!opened) return opened.error();
    prepared.file = std::move(*opened);
    header.content_length(prepared.file->size);
  } else if (!request.body.empty() || AllowsEmptyContentLength(request.method)) {
    header.content_length(request.body.size());
  }
  return prepared;
}

std::string PortOf(const HttpClientRequest& request, bool tls) {
  auto url = boost::urls::parse_uri(request.url);
  return url && url->has_port() ? std::string(url->port()) : (tls ? "443" : "80");
}

// Resolves and connects; the stream's expiry is the call's deadline from here on.
asio::awaitable<sys::result<std::unique_ptr<beast::tcp_stream>>> Connect(const asio::any_io_executor& executor,
                                                        const HttpClientRequest& request, const Prepared& prepared) {
  auto endpoints = co_await Resolve(executor, prepared.host, PortOf(request, prepared.tls), prepared.deadline);
  if (!endpoints) co_return endpoints.error();
  auto stream = std::make_unique<beast::tcp_stream>(executor);
  // One absolute expiry: Beast applies it to every later operation on the stream, so connect,
  // handshake, each write and each read together end at the deadline.
  stream->expires_at(prepared.deadline);
  auto [cec, ep] = co_await stream->async_connect(*endpoints, kUseTuple);
  if (cec) co_return Normalize(cec);
  // The header and a small body go out as separate writes; Nagle would hold the body back for
  // the server's delayed ACK.
  sys::error_code ignored;
  stream->socket().set_option(tcp::no_delay(true), ignored);
  co_return std::move(stream);
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Wraps a connected stream in TLS (SNI, and the peer verified for `host`) and shakes hands.
asio::awaitable<sys::result<std::unique_ptr<TlsStream>>> StartTls(std::unique_ptr<beast::tcp_stream> stream, asio::ssl::context& tls,
                                                                  const std::string& host) {
  auto tls_stream = std::make_unique<TlsStream>(std::move(*stream), tls);
  if (!SSL_set_tlsext_host_name(tls_stream->native_handle(), host.c_str())) {
    co_return sys::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
  }
  tls_stream->set_verify_callback(asio::ssl::host_name_verification(host));
  auto [hec] = co_await tls_stream->async_handshake(asio::ssl::stream_base::client, kUseTuple);
  if (hec) co_return Normalize(hec);
  co_return std::move(tls_stream);
}

// The connection behind an HttpResponseStream, over plain TCP or TLS.
template <typename Stream>
class OpenResponse final : public HttpResponseStream::Body {
 public:
  explicit OpenResponse(std::unique_ptr<Stream> stream) : stream_(std::move(stream)) {
    parser_.header_limit(kResponseHeaderLimit);
    buffer_.reserve(kReadBufferBytes);  // see ReadResponse
    parser_.body_limit(boost::none);  // the caller reads as much as it wants
  }

  // Sends the request and reads the response's header.
  asio::awaitable<sys::result<HttpClientResponse>> Start(http::request<http::empty_body>& header,
                                                         std::string_view body, const BodyFile* file) {
    if (auto ec = co_await WriteRequest(*stream_, header, body, file)) co_return ec;
    if (header.method() == http::verb::head) parser_.skip(true);
    auto [ec, n] = co_await http::async_read_header(*stream_, buffer_, parser_, kUseTuple);
    if (ec) co_return Normalize(ec);
    HttpClientResponse response;
    response.status = parser_.get().result_int();
    for (const auto& field : parser_.get()) response.headers.emplace_back(field.name_string(), field.value());
    co_return response;
  }

  asio::awaitable<sys::result<std::size_t>> Read(std::span<char> into, std::chrono::milliseconds idle) override {
    if (parser_.is_done() || into.empty()) co_return std::size_t{0};
    beast::get_lowest_layer(*stream_).expires_at(DeadlineAfter(idle));
    parser_.get().body().data = into.data();
    parser_.get().body().size = into.size();
    auto [ec, n] = co_await http::async_read_some(*stream_, buffer_, parser_, kUseTuple);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return Normalize(ec);
    const std::size_t got = into.size() - parser_.get().body().size;
    // A read that made no progress without ending the body would loop forever in the caller.
    if (got == 0 && !parser_.is_done()) co_return co_await Read(into, idle);
    co_return got;
  }

  bool done() const override { return parser_.is_done(); }

 private:
  std::unique_ptr<Stream> stream_;
  beast::flat_buffer buffer_;
  http::response_parser<http::buffer_body> parser_;
};

}  // namespace

asio::awaitable<StatusOr<HttpClientResponse>> HttpClient::Send(asio::any_io_executor executor,
                                                                const HttpClientRequest& request) {
  auto result = co_await SendForCode(std::move(executor), request);
  if (result) co_return std::move(*result);
  co_return StatusFor(result.error());
}

HttpResponseStream::HttpResponseStream(HttpClientResponse head, std::unique_ptr<Body> body,
                                       std::chrono::milliseconds idle_timeout)
    : head_(std::move(head)), body_(std::move(body)), idle_timeout_(idle_timeout) {}

HttpResponseStream::~HttpResponseStream() = default;

asio::awaitable<StatusOr<std::size_t>> HttpResponseStream::Read(std::span<char> into) {
  auto got = co_await body_->Read(into, idle_timeout_);
  if (got) co_return *got;
  co_return StatusFor(got.error());
}

bool HttpResponseStream::done() const { return body_->done(); }

asio::awaitable<sys::result<HttpClientResponse>> HttpClient::SendForCode(asio::any_io_executor executor,
                                                                         const HttpClientRequest& request) {
  auto prepared = Prepare(request);
  if (!prepared) co_return prepared.error();
  auto stream = co_await Connect(executor, request, *prepared);
  if (!stream) co_return stream.error();
  const BodyFile* file = prepared->file ? &*prepared->file : nullptr;

  sys::result<HttpClientResponse> result;
  if (prepared->tls) {
    auto tls_stream = co_await StartTls(std::move(*stream), *tls_, prepared->host);
    if (!tls_stream) co_return tls_stream.error();
    result = co_await Exchange(**tls_stream, prepared->header, request.body, file, request.body_limit,
                               request.response_file, request.response_file_limit);
  } else {
    result = co_await Exchange(**stream, prepared->header, request.body, file, request.body_limit,
                               request.response_file, request.response_file_limit);
  }
  if (!result) co_return Normalize(result.error());
  co_return result;
}

asio::awaitable<StatusOr<std::unique_ptr<HttpResponseStream>>> HttpClient::Open(asio::any_io_executor executor,
                                                                                const HttpClientRequest& request) {
  auto opened = co_await OpenForCode(std::move(executor), request);
  if (opened) co_return std::move(*opened);
  co_return StatusFor(opened.error());
}

asio::awaitable<sys::result<std::unique_ptr<HttpResponseStream>>> HttpClient::OpenForCode(
    asio::any_io_executor executor, const HttpClientRequest& request) {
  if (!request.response_file.empty()) co_return Errc(sys::errc::invalid_argument);
  auto prepared = Prepare(request);
  if (!prepared) co_return prepared.error();
  auto stream = co_await Connect(executor, request, *prepared);
  if (!stream) co_return stream.error();
  const BodyFile* file = prepared->file ? &*prepared->file : nullptr;

  std::unique_ptr<HttpResponseStream::Body> body;
  sys::result<HttpClientResponse> head;
  if (prepared->tls) {
    auto tls_stream = co_await StartTls(std::move(*stream), *tls_, prepared->host);
    if (!tls_stream) co_return tls_stream.error();
    auto open = std::make_unique<OpenResponse<TlsStream>>(std::move(*tls_stream));
    head = co_await open->Start(prepared->header, request.body, file);
    body = std::move(open);
  } else {
    auto open = std::make_unique<OpenResponse<beast::tcp_stream>>(std::move(*stream));
    head = co_await open->Start(prepared->header, request.body, file);
    body = std::move(open);
  }
  if (!head) co_return head.error();
  co_return std::make_unique<HttpResponseStream>(std::move(*head), std::move(body), request.timeout);
}

asio::awaitable<StatusOr<HttpClientResponse>> HttpClient::Get(asio::any_io_executor executor,
                                                               boost::urls::url_view url,
                                                               std::chrono::milliseconds timeout,
                                                               std::size_t body_limit) {
  HttpClientRequest request;
  request.url = std::string(url.buffer());
  request.headers = {{"Accept", "application/json"}};
  request.timeout = timeout;
  request.body_limit = body_limit;
  co_return co_await Send(std::move(executor), request);
}

}  // namespace plyr

// HttpClient against our own HttpServer on 127.0.0.1: bodies arrive byte for byte (a 24 MiB
// file streamed from disk, a JSON string), response headers are read case-insensitively, and
// each failure the contract names comes back as its error code within a bounded time.
#include "common/http_client.h"

#include <openssl/evp.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include "common/http_server.h"
#include "tests/support/drain.h"
#include "tests/support/process.h"
#include "tests/support/run_coroutine.h"

namespace plyr {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::TempDir;

constexpr std::uint64_t kLargeFileBytes = 24ull << 20;
constexpr auto kSlowHandlerDelay = 2s;

// SHA-256 over pieces, so neither side of an upload holds the whole body to check it.
class Sha256 {
 public:
  Sha256() { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(const char* data, std::size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string HexDigest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &size);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out += kHex[digest[i] >> 4];
      out += kHex[digest[i] & 0xf];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_{EVP_MD_CTX_new(), EVP_MD_CTX_free};
};

asio::awaitable<void> Sleep(std::chrono::milliseconds delay) {
  asio::steady_timer timer(co_await asio::this_coro::executor, delay);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// The routes the tests call, on a real HttpServer run by a background thread.
class TestServer {
 public:
  TestServer() {
    Router router;
    // Hashes the body as it arrives and answers its length and digest (in the body and a header).
    router.Add(http::verb::put, "/upload", [](Request& request) -> asio::awaitable<Response> {
      std::vector<char> buffer(256 * 1024);
      Sha256 sha;
      std::uint64_t bytes = 0;
      for (;;) {
        auto r = co_await request.ReadSome(buffer);
        if (auto* error = std::get_if<BodyError>(&r)) co_return ErrorResponseFor(*error, 0);
        const std::size_t n = std::get<std::size_t>(r);
        if (n == 0) break;
        sha.Update(buffer.data(), n);
        bytes += n;
      }
      const std::string digest = sha.HexDigest();
      Response response = JsonResponse(http::status::ok, json::object{{"bytes", bytes}, {"sha256", digest}});
      response.header.set("X-Body-SHA256", digest);
      co_return response;
    });
    // Returns the body as received, with the request's Content-Type and Authorization echoed.
    router.Add(http::verb::post, "/echo", [](Request& request) -> asio::awaitable<Response> {
      auto body = co_await request.ReadAll(1 << 20);
      if (auto* error = std::get_if<BodyError>(&body)) co_return ErrorResponseFor(*error, 1 << 20);
      Response response;
      response.header.result(http::status::created);
      response.header.set(http::field::content_type, request.Field(http::field::content_type));
      response.header.set("X-Echo-Authorization", request.Field(http::field::authorization));
      response.body = std::move(std::get<std::string>(body));
      co_return response;
    });
    router.Add(http::verb::get, "/hello", [](Request& request) -> asio::awaitable<Response> {
      Response response = JsonResponse(http::status::ok, json::object{{"hello", "world"}});
      response.header.set("X-Plyr-Test", "yes");
      response.header.set("X-Echo-Accept", request.Field(http::field::accept));
      co_return response;
    });
    router.Add(http::verb::get, "/slow", [](Request&) -> asio::awaitable<Response> {
      co_await Sleep(kSlowHandlerDelay);
      co_return JsonResponse(http::status::ok, json::object{{"late", true}});
    });
    // Takes none of the body for a while: the upload stalls once the socket buffers are full.
    router.Add(http::verb::put, "/stall", [](Request&) -> asio::awaitable<Response> {
      co_await Sleep(kSlowHandlerDelay);
      co_return JsonResponse(http::status::ok, json::object{});
    });
    // Refuses an upload without reading it, as a size or auth check would.
    router.Add(http::verb::put, "/refuse", [](Request&) -> asio::awaitable<Response> {
      co_return ErrorResponse(http::status::payload_too_large, "PayloadTooLarge", "no");
    });
    router.Add(http::verb::get, "/big", [](Request&) -> asio::awaitable<Response> {
      Response response;
      response.header.result(http::status::ok);
      response.body.assign(64 * 1024, 'x');
      co_return response;
    });

    HttpServerOptions options;
    options.service = "http-client-test";
    options.access_log = false;
    auto server =
        HttpServer::Create(runtime_, {asio::ip::make_address("127.0.0.1"), 0}, std::move(router), options, metrics_);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server.value());
    server_->Start();
    thread_ = std::thread([this] { runtime_.Run(); });
  }

  ~TestServer() {
    testing::DrainAndStop(*server_, runtime_);  // a handler still sleeping finishes first (2 s at most)
    thread_.join();
  }

  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(path);
  }
  unsigned short port() const { return server_->port(); }

 private:
  Runtime runtime_{RuntimeOptions{1, ThreadModel::kPerCore}};
  MetricsRegistry metrics_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// Writes `bytes` pseudo-random bytes (so a lost, doubled or reordered chunk changes the digest)
// and returns their SHA-256.
std::string WriteRandomFile(const std::filesystem::path& path, std::uint64_t bytes) {
  std::mt19937_64 random(42);
  std::vector<std::uint64_t> block((1 << 20) / sizeof(std::uint64_t));
  std::ofstream out(path, std::ios::binary);
  Sha256 sha;
  for (std::uint64_t written = 0; written < bytes;) {
    for (auto& word : block) word = random();
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes - written, block.size() * 8));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    sha.Update(reinterpret_cast<const char*>(block.data()), n);
    written += n;
  }
  EXPECT_TRUE(out.good());
  return sha.HexDigest();
}

class HttpClientTest : public ::testing::Test {
 protected:
  template <typename Call>
  StatusOr<HttpClientResponse> Run(Call call) {
    return testing::RunCoroutine<StatusOr<HttpClientResponse>>(std::move(call));
  }
  StatusOr<HttpClientResponse> Send(const HttpClientRequest& request) {
    return Run([&](asio::any_io_executor executor) { return client_.Send(executor, request); });
  }

  TestServer server_;
  HttpClient client_;
  TempDir dir_;
};

TEST_F(HttpClientTest, PutsALargeFileByteForByte) {
  const auto path = dir_.path() / "upload.bin";
  const std::string digest = WriteRandomFile(path, kLargeFileBytes);

  HttpClientRequest request;
  request.method = http::verb::put;
  request.url = server_.url("/upload");
  request.headers = {{"Content-Type", "application/octet-stream"}};
  request.body_file = path;
  auto response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 200u) << response->body;
  auto doc = json::parse(response->body).as_object();
  EXPECT_EQ(doc.at("bytes").to_number<std::uint64_t>(), kLargeFileBytes);
  EXPECT_EQ(doc.at("sha256").as_string(), digest);
  EXPECT_EQ(response->Header("X-Body-SHA256"), digest);
}

TEST_F(HttpClientTest, PostsAJsonStringWithItsContentType) {
  HttpClientRequest request;
  request.method = http::verb::post;
  request.url = server_.url("/echo");
  request.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer s3cret"}};
  request.body = R"({"track":"abc","bitrate":128})";
  auto response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 201u);
  EXPECT_EQ(response->body, request.body);
  EXPECT_EQ(response->Header("Content-Type"), "application/json");
  EXPECT_EQ(response->Header("X-Echo-Authorization"), "Bearer s3cret");
}

TEST_F(HttpClientTest, AnEmptyPostAnnouncesZeroLength) {
  HttpClientRequest request;
  request.method = http::verb::post;
  request.url = server_.url("/echo");
  auto response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 201u);
  EXPECT_EQ(response->body, "");
}

TEST_F(HttpClientTest, ResponseHeadersAreReadCaseInsensitively) {
  HttpClientRequest request;
  request.url = server_.url("/hello");
  auto response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->Header("X-Plyr-Test"), "yes");
  EXPECT_EQ(response->Header("x-plyr-test"), "yes");
  EXPECT_EQ(response->Header("X-PLYR-TEST"), "yes");
  EXPECT_EQ(response->Header("X-Plyr-Absent"), "");
  EXPECT_EQ(response->Header("X-Echo-Accept"), "");  // Send adds no Accept of its own
  // Names are kept as the server spelt them.
  bool found = false;
  for (const auto& [name, value] : response->headers) found = found || (name == "X-Plyr-Test" && value == "yes");
  EXPECT_TRUE(found);
}

TEST_F(HttpClientTest, GetStillAsksForJson) {
  const std::string url = server_.url("/hello");
  auto response = Run([&](asio::any_io_executor executor) {
    return client_.Get(executor, boost::urls::parse_uri(url).value(), 5s);
  });
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(json::parse(response->body).at("hello").as_string(), "world");
  EXPECT_EQ(response->Header("X-Echo-Accept"), "application/json");
}

TEST_F(HttpClientTest, AMissingBodyFileIsItsErrnoError) {
  HttpClientRequest request;
  request.method = http::verb::put;
  request.url = server_.url("/upload");
  request.body_file = dir_.path() / "absent.bin";
  auto response = Send(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kNotFound) << response.status().message();

  request.body_file = dir_.path();  // a folder has no length to announce
  response = Send(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument) << response.status().message();
}

TEST_F(HttpClientTest, TheDeadlineCutsOffASlowAnswer) {
  HttpClientRequest request;
  request.url = server_.url("/slow");
  request.timeout = 300ms;
  const auto start = Clock::now();
  auto response = Send(request);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded) << response.status().message();
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(HttpClientTest, AnUnboundedTimeoutDoesNotWrapIntoThePast) {
  HttpClientRequest request;
  request.url = server_.url("/hello");
  request.timeout = std::chrono::milliseconds::max();
  auto response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 200u);
}

TEST_F(HttpClientTest, TheDeadlineCutsOffAStalledUpload) {
  const auto path = dir_.path() / "upload.bin";
  WriteRandomFile(path, kLargeFileBytes);  // far more than the loopback socket buffers hold
  HttpClientRequest request;
  request.method = http::verb::put;
  request.url = server_.url("/stall");
  request.body_file = path;
  request.timeout = 300ms;
  const auto start = Clock::now();
  auto response = Send(request);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded) << response.status().message();
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(HttpClientTest, AnUploadRefusedEarlyEndsPromptly) {
  const auto path = dir_.path() / "upload.bin";
  WriteRandomFile(path, kLargeFileBytes);
  HttpClientRequest request;
  request.method = http::verb::put;
  request.url = server_.url("/refuse");
  request.body_file = path;
  request.timeout = 5s;
  const auto start = Clock::now();
  auto response = Send(request);
  const auto elapsed = Clock::now() - start;
  // Whether the 413 can still be read depends on how the server's close races the upload; either
  // way the call ends on the server's move, not on the deadline.
  if (response) {
    EXPECT_EQ(response->status, 413u);
  } else {
    EXPECT_NE(response.status().code(), StatusCode::kDeadlineExceeded) << response.status().message();
  }
  EXPECT_LT(elapsed, 4s);
}

// The server side of the same case, with a client that writes its whole body before it reads (as
// simple clients do): the server answers early, then keeps reading and dropping the rest of the
// upload before it closes, so the answer is not lost to a reset.
TEST_F(HttpClientTest, AnEarlyAnswerToAnUnreadUploadReachesAClientThatReadsLast) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    sys::error_code ec;
    socket.connect({asio::ip::make_address("127.0.0.1"), server_.port()}, ec);
    ASSERT_FALSE(ec) << ec.message();
    const std::string body(4 << 20, 'u');
    const std::string head = "PUT /refuse HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    asio::write(socket, asio::buffer(head), ec);
    ASSERT_FALSE(ec) << ec.message();
    asio::write(socket, asio::buffer(body), ec);
    EXPECT_FALSE(ec) << "the upload was cut off: " << ec.message();
    std::string answer;
    char buffer[4096];
    for (;;) {
      const std::size_t n = socket.read_some(asio::buffer(buffer), ec);
      answer.append(buffer, n);
      if (ec) break;
    }
    EXPECT_EQ(ec, asio::error::eof) << ec.message();
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 413") << answer.substr(0, 200);
  }
}

TEST_F(HttpClientTest, AResponseBodyOverTheLimitIsMessageSize) {
  HttpClientRequest request;
  request.url = server_.url("/big");
  request.body_limit = 1024;
  auto response = Send(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kResourceExhausted) << response.status().message();

  request.body_limit = 64 * 1024;  // exactly the body's size is allowed
  response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->body.size(), 64u * 1024);
}

TEST_F(HttpClientTest, MalformedRequestsAreRefusedBeforeConnecting) {
  auto refused = [&](HttpClientRequest request) {
    auto response = Send(request);
    return !response.ok() && response.status().code() == StatusCode::kInvalidArgument;
  };
  HttpClientRequest ok;
  ok.url = server_.url("/hello");

  HttpClientRequest r = ok;
  r.url = "ftp://127.0.0.1/file";
  EXPECT_TRUE(refused(r));
  r.url = "not a url";
  EXPECT_TRUE(refused(r));
  r = ok;
  r.headers = {{"X-Evil", "a\r\nX-Injected: 1"}};
  EXPECT_TRUE(refused(r));
  r.headers = {{"Bad Name", "v"}};
  EXPECT_TRUE(refused(r));
  r.headers = {{"content-length", "5"}};
  EXPECT_TRUE(refused(r));
  r.headers = {{"Transfer-Encoding", "chunked"}};
  EXPECT_TRUE(refused(r));
  r.headers = {{"X-Long", std::string(100'000, 'a')}};  // Beast would throw on this one
  EXPECT_TRUE(refused(r));
  EXPECT_TRUE(Send(ok));
}

}  // namespace
}  // namespace plyr

namespace plyr {
namespace {

TEST_F(HttpClientTest, ASuccessfulBodyCanGoToAFile) {
  TempDir dir;
  const auto path = dir.path() / "download";
  HttpClientRequest request;
  request.url = server_.url("/big");
  request.response_file = path;
  auto response = Send(request);
  ASSERT_TRUE(response) << response.status().message();
  EXPECT_EQ(response->status, 200u);
  EXPECT_TRUE(response->body.empty());
  std::ifstream in(path, std::ios::binary);
  const std::string stored((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(stored, std::string(64 * 1024, 'x'));

  // An error answer is not written to the file: it is the body, for the caller to read.
  request.url = server_.url("/no-such-route");
  request.response_file = dir.path() / "not-written";
  response = Send(request);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404u);
  EXPECT_NE(response->body.find("error"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "not-written"));

  // The limit holds for a file too.
  request.url = server_.url("/big");
  request.response_file = path;
  request.body_limit = 1024;
  response = Send(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kResourceExhausted);

  // Unless the file has a limit of its own, while error answers keep body_limit.
  request.response_file_limit = 64 * 1024;
  response = Send(request);
  ASSERT_TRUE(response) << response.status().ToString();
  EXPECT_EQ(response->status, 200u);
  request.response_file_limit = 64 * 1024 - 1;
  response = Send(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace plyr

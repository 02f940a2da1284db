// S3Client against a real S3-compatible server on loopback (s3rver; tests/support/s3_test_server.h).
#include "common/s3_client.h"

#include <array>
#include <chrono>
#include <fstream>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/support/run_coroutine.h"
#include "tests/support/s3_test_server.h"
#include "tests/support/test_http_client.h"

namespace plyr {
namespace {

using namespace std::chrono_literals;
using testing::S3TestServer;

std::string RandomBytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.error();
    client_ = MakeClient(S3TestServer::kAccessKeyId);
    ASSERT_NE(client_, nullptr);
  }

  std::unique_ptr<S3Client> MakeClient(const std::string& access_key_id) {
    S3Settings settings;
    settings.endpoint = server_.endpoint();
    settings.bucket = server_.bucket();
    settings.region = "us-east-1";
    settings.credentials = {access_key_id, S3TestServer::kSecretAccessKey, ""};
    settings.timeout = 10s;
    auto client = S3Client::Create(http_, settings);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  template <typename T, typename Call>
  T Run(Call call) {
    return testing::RunCoroutine<T>(std::move(call));
  }

  Status Put(const std::string& key, const std::string& bytes) {
    return Run<Status>([&](asio::any_io_executor e) { return client_->PutBytes(e, key, bytes, "audio/mpeg"); });
  }
  StatusOr<std::string> GetRange(S3Client& client, const std::string& key, std::uint64_t offset, std::uint64_t length) {
    return Run<StatusOr<std::string>>(
        [&](asio::any_io_executor e) { return client.GetRange(e, key, offset, length); });
  }

  S3TestServer server_;
  HttpClient http_;
  std::unique_ptr<S3Client> client_;
  testing::TempDir dir_;
};

TEST_F(S3ClientTest, ObjectsGoUpComeDownInRangesAndGo) {
  const std::string bytes = RandomBytes(300'000, 1);
  ASSERT_TRUE(Put("audio/0123456789abcdef", bytes).ok());

  auto head = Run<StatusOr<S3Object>>([&](asio::any_io_executor e) { return client_->Head(e, "audio/0123456789abcdef"); });
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->size, bytes.size());
  EXPECT_EQ(head->content_type, "audio/mpeg");

  auto range = GetRange(*client_, "audio/0123456789abcdef", 1000, 5000);
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_EQ(*range, bytes.substr(1000, 5000));
  auto tail = GetRange(*client_, "audio/0123456789abcdef", bytes.size() - 10, 100);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(*tail, bytes.substr(bytes.size() - 10)) << "a range past the end stops at the end";

  const auto file = dir_.path() / "down";
  Status got = Run<Status>([&](asio::any_io_executor e) { return client_->GetToFile(e, "audio/0123456789abcdef", file); });
  ASSERT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ(testing::ReadAll(file), bytes);

  Status deleted = Run<Status>([&](asio::any_io_executor e) { return client_->Delete(e, "audio/0123456789abcdef"); });
  ASSERT_TRUE(deleted.ok()) << deleted.ToString();
  auto gone = Run<StatusOr<S3Object>>([&](asio::any_io_executor e) { return client_->Head(e, "audio/0123456789abcdef"); });
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  deleted = Run<Status>([&](asio::any_io_executor e) { return client_->Delete(e, "audio/0123456789abcdef"); });
  EXPECT_TRUE(deleted.ok()) << "deleting what is gone is done: " << deleted.ToString();
}

TEST_F(S3ClientTest, AFileIsStreamedUpWithItsHash) {
  const std::string bytes = RandomBytes(3 << 20, 2);
  const auto path = dir_.path() / "up";
  std::ofstream(path, std::ios::binary) << bytes;
  const std::string hash = aws::Sha256Hex(bytes);
  Status put = Run<Status>([&](asio::any_io_executor e) { return client_->PutFile(e, "blobs/up", path, "audio/flac", hash); });
  ASSERT_TRUE(put.ok()) << put.ToString();
  auto range = GetRange(*client_, "blobs/up", (2 << 20) + 7, 4096);
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_EQ(*range, bytes.substr((2 << 20) + 7, 4096));
}

TEST_F(S3ClientTest, ALargeFileGoesUpInPartsStreamedFromDisk) {
  const std::string bytes = RandomBytes((12 << 20) + 12345, 4);
  const auto path = dir_.path() / "large";
  std::ofstream(path, std::ios::binary) << bytes;
  Status put = Run<Status>([&](asio::any_io_executor e) {
    return client_->PutFileMultipart(e, "blobs/large", path, "audio/wav", S3Client::kMinPartBytes);
  });
  ASSERT_TRUE(put.ok()) << put.ToString();
  auto head = Run<StatusOr<S3Object>>([&](asio::any_io_executor e) { return client_->Head(e, "blobs/large"); });
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->size, bytes.size());
  // Across the first part boundary, and the whole object.
  auto across = GetRange(*client_, "blobs/large", S3Client::kMinPartBytes - 100, 200);
  ASSERT_TRUE(across.ok()) << across.status().ToString();
  EXPECT_EQ(*across, bytes.substr(S3Client::kMinPartBytes - 100, 200));
  const auto down = dir_.path() / "large-down";
  ASSERT_TRUE(Run<Status>([&](asio::any_io_executor e) { return client_->GetToFile(e, "blobs/large", down); }).ok());
  EXPECT_TRUE(testing::ReadAll(down) == bytes);

  // An empty file is one empty part.
  const auto empty = dir_.path() / "empty";
  std::ofstream(empty, std::ios::binary).flush();
  ASSERT_TRUE(Run<Status>([&](asio::any_io_executor e) {
                return client_->PutFileMultipart(e, "blobs/empty", empty, "", S3Client::kMinPartBytes);
              }).ok());
  auto empty_head = Run<StatusOr<S3Object>>([&](asio::any_io_executor e) { return client_->Head(e, "blobs/empty"); });
  ASSERT_TRUE(empty_head.ok()) << empty_head.status().ToString();
  EXPECT_EQ(empty_head->size, 0u);

  Status missing = Run<Status>([&](asio::any_io_executor e) {
    return client_->PutFileMultipart(e, "blobs/none", dir_.path() / "no-such-file", "", S3Client::kMinPartBytes);
  });
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();
}

// Reads a stream to its end in pieces of `piece` bytes.
asio::awaitable<StatusOr<std::string>> ReadToEnd(std::unique_ptr<HttpResponseStream> stream, std::size_t piece) {
  std::string out;
  std::vector<char> buffer(piece);
  for (;;) {
    auto got = co_await stream->Read(buffer);
    if (!got.ok()) co_return got.status();
    if (*got == 0) break;
    out.append(buffer.data(), *got);
  }
  co_return out;
}

TEST_F(S3ClientTest, ARangeOpenedAsAStreamComesInPiecesAsTheReaderTakesThem) {
  const std::string bytes = RandomBytes(3'000'000, 4);
  ASSERT_TRUE(Put("audio/streamed", bytes).ok());
  auto range = Run<StatusOr<std::string>>([&](asio::any_io_executor e) -> asio::awaitable<StatusOr<std::string>> {
    auto opened = co_await client_->OpenRange(e, "audio/streamed", 12'345, 2'500'000);
    if (!opened.ok()) co_return opened.status();
    EXPECT_EQ((*opened)->head().status, 206u);
    co_return co_await ReadToEnd(std::move(*opened), 10'000);
  });
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_TRUE(*range == bytes.substr(12'345, 2'500'000));

  // A reader may stop part-way: the connection is dropped with the stream.
  auto first = Run<StatusOr<std::size_t>>([&](asio::any_io_executor e) -> asio::awaitable<StatusOr<std::size_t>> {
    auto opened = co_await client_->OpenRange(e, "audio/streamed", 0, bytes.size());
    if (!opened.ok()) co_return opened.status();
    std::array<char, 1000> piece;
    co_return co_await (*opened)->Read(piece);
  });
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_GT(*first, 0u);

  auto missing = Run<StatusOr<std::string>>([&](asio::any_io_executor e) -> asio::awaitable<StatusOr<std::string>> {
    auto opened = co_await client_->OpenRange(e, "audio/none", 0, 10);
    if (!opened.ok()) co_return opened.status();
    co_return co_await ReadToEnd(std::move(*opened), 10);
  });
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  auto beyond = Run<StatusOr<std::string>>([&](asio::any_io_executor e) -> asio::awaitable<StatusOr<std::string>> {
    auto opened = co_await client_->OpenRange(e, "audio/streamed", bytes.size() + 10, 10);
    if (!opened.ok()) co_return opened.status();
    co_return co_await ReadToEnd(std::move(*opened), 10);
  });
  EXPECT_EQ(beyond.status().code(), StatusCode::kInvalidArgument) << beyond.status().ToString();
}

TEST_F(S3ClientTest, AListingPagesThroughAPrefixInKeyOrder) {
  for (const std::string key : {"audio/c", "audio/a&b", "audio/e", "audio/b", "audio/d", "other/x"}) {
    ASSERT_TRUE(Put(key, std::string(key.size(), 'x')).ok()) << key;
  }
  const auto before = std::time(nullptr);
  std::vector<std::pair<std::string, std::uint64_t>> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = Run<StatusOr<S3Listing>>([&](asio::any_io_executor e) { return client_->List(e, "audio/", token, 2); });
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_LE(page->objects.size(), 2u);
    for (const auto& object : page->objects) {
      seen.emplace_back(object.key, object.size);
      EXPECT_NEAR(static_cast<double>(object.last_modified), static_cast<double>(before), 60) << object.key;
    }
    token = page->next_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  const std::vector<std::pair<std::string, std::uint64_t>> want = {
      {"audio/a&b", 9}, {"audio/b", 7}, {"audio/c", 7}, {"audio/d", 7}, {"audio/e", 7}};
  EXPECT_EQ(seen, want);
}

TEST_F(S3ClientTest, APresignedUrlServesTheObjectToAPlainClient) {
  const std::string bytes = RandomBytes(20'000, 3);
  ASSERT_TRUE(Put("audio/presigned key", bytes).ok());
  const std::string url = client_->PresignedGetUrl("audio/presigned key", 600, std::time(nullptr));
  const std::string target = url.substr(url.find('/', std::string("http://").size()));
  auto r = testing::Fetch(server_.port(), "GET", target, {{"Range", "bytes=100-199"}});
  ASSERT_EQ(r.status, 206) << r.body;
  EXPECT_EQ(r.body, bytes.substr(100, 100));
}

TEST_F(S3ClientTest, FailuresAreCodedByWhatTheCallerCanDo) {
  auto missing = GetRange(*client_, "no/such/key", 0, 10);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("NoSuchKey"), std::string::npos) << missing.status().message();

  ASSERT_TRUE(Put("small", "0123456789").ok());
  auto beyond = GetRange(*client_, "small", 100, 10);
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.status().code(), StatusCode::kInvalidArgument) << beyond.status().ToString();

  auto stranger = MakeClient("NOT-A-KEY");
  ASSERT_NE(stranger, nullptr);
  auto refused = GetRange(*stranger, "small", 0, 10);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().ToString();

  server_.Stop();
  auto down = GetRange(*client_, "small", 0, 10);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
}

TEST(S3ClientSettingsTest, BadSettingsAreRefusedUpFront) {
  HttpClient http;
  const auto make = [&](std::string endpoint, std::string bucket, std::string key) {
    S3Settings s;
    s.endpoint = std::move(endpoint);
    s.bucket = std::move(bucket);
    s.credentials = {std::move(key), "secret", ""};
    return S3Client::Create(http, s);
  };
  EXPECT_TRUE(make("https://acct.r2.cloudflarestorage.com/", "plyr-audio", "k").ok());
  const std::vector<std::array<std::string, 3>> bad = {{"ftp://host", "plyr", "k"},
                                                       {"https://host/bucket", "plyr", "k"},
                                                       {"https://host", "Plyr_Audio", "k"},
                                                       {"https://host", "plyr", ""},
                                                       {"not a url", "plyr", "k"}};
  for (const auto& [endpoint, bucket, key] : bad) {
    auto refused = make(endpoint, bucket, key);
    ASSERT_FALSE(refused.ok()) << endpoint << " " << bucket << " " << key;
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace plyr

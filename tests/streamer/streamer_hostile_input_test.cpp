// Bad input and failure: every case gets a clear status, and the process keeps serving.
#include <signal.h>

#include <thread>

#include "tests/streamer/streamer_fixture.h"

namespace plyr::testing {
namespace {

class HostileInputTest : public StreamerTest {
 protected:
  void SetUp() override {
    supporters_.AddSupporter(kFan, kArtist);
    Start({"--http-header-timeout-ms", "1000", "--http-io-timeout-ms", "1500", "--http-header-limit", "16384"});
  }
  // The server still answers normally.
  void ExpectAlive() {
    auto r = Get("/health");
    EXPECT_EQ(r.status, 200) << r.transport_error;
  }
};

TEST_F(HostileInputTest, HostileRangeHeaders) {
  const std::string bytes = RandomBytes(100000, 21);
  const std::string id = AddTrack(bytes, "none");
  std::string thousand = "bytes=";
  for (int i = 0; i < 1000; ++i) thousand += std::to_string(i * 10) + "-" + std::to_string(i * 10 + 1) + ",";
  thousand.pop_back();
  struct Case {
    std::string range;
    int status;
  };
  const std::vector<Case> cases = {
      {"bytes=5-1", 200},                                   // first > last: invalid, ignored
      {"bytes=-0", 200},                                    // invalid suffix
      {"bytes=99999999999999999999-", 200},                 // overflows 64 bits
      {"bytes=0-99999999999999999999", 200},                // overflows 64 bits
      {"bytes=18446744073709551615-", 416},                 // valid, beyond the end
      {"bytes=100000-100001", 416},                         // starts at the length
      {thousand, 200},                                      // far more ranges than allowed
      {"bytes=--1", 200}, {"bytes=0--1", 200}, {"bytes=a-b", 200}, {"bytes 0-1", 200},
      {"items=0-1", 200},                                   // unknown unit
      {"bytes=0-1,garbage", 200},
      {std::string("bytes=0-1\x01\x02", 11), 400},              // control bytes: the parser refuses
  };
  for (const auto& c : cases) {
    auto r = Get("/audio/" + id, {{"Range", c.range}});
    ASSERT_TRUE(r.transport_ok) << c.range.substr(0, 40) << ": " << r.transport_error;
    EXPECT_EQ(r.status, c.status) << c.range.substr(0, 40);
    if (c.status == 200) {
      EXPECT_EQ(r.body.size(), bytes.size());
    } else if (c.status == 400) {
      EXPECT_EQ(r.Header("content-type"), "application/json");
    } else if (c.status == 416) {
      EXPECT_EQ(r.Header("content-range"), "bytes */100000");
    }
  }
  ExpectAlive();
}

TEST_F(HostileInputTest, IdsThatTryToLeaveTheStore) {
  for (const std::string target : {"/audio/..%2F..%2Fetc%2Fpasswd", "/audio/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                                   "/audio/0123456789ABCDEF", "/audio/0123456789abcdef%00",
                                   "/audio/%252e%252e%252fsecret"}) {
    auto r = Get(target);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_EQ(ErrorOf(r), "InvalidFileId") << target;
  }
  for (const std::string target : {"/audio/../../etc/passwd", "/audio/a/../../../etc/passwd", "/audio//etc/passwd"}) {
    auto r = Get(target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.Header("content-type"), "application/json");
  }
  EXPECT_EQ(Get("/audio/0123456789abcdef").status, 404);
  ExpectAlive();
}

TEST_F(HostileInputTest, OversizedHeadersGet431) {
  auto r = Get("/health", {{"X-Padding", std::string(20000, 'a')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(ErrorOf(r), "HeaderTooLarge");
  ExpectAlive();
}

TEST_F(HostileInputTest, GarbageRequestsGet400) {
  for (const std::string garbage : {"NOT HTTP AT ALL\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
                                    "GET /health HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                                    "GET http://evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    RawConnection c(port_);
    ASSERT_TRUE(c.Send(garbage));
    std::string answer = c.ReadUntilClose(std::chrono::seconds(3));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << garbage << " -> " << answer.substr(0, 80);
  }
  ExpectAlive();
}

TEST_F(HostileInputTest, SlowlorisIsCutOffByTheHeaderDeadline) {
  RawConnection c(port_);
  const std::string request = "GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n";
  const auto start = std::chrono::steady_clock::now();
  bool cut = false;
  for (char ch : request) {
    if (!c.Send(std::string(1, ch))) {
      cut = true;
      break;
    }
    bool closed = false;
    c.ReadUntilClose(std::chrono::milliseconds(250), &closed);
    if (closed) {
      cut = true;
      break;
    }
  }
  EXPECT_TRUE(cut) << "a client sending one byte at a time must not hold the connection";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ExpectAlive();
}

TEST_F(HostileInputTest, SlowSendersAndReadersAreCutByTheMinimumRate) {
  // Each step below makes progress well inside the 30-s io deadline; only the average rate
  // (2 MB/s here, after a 1-s grace) can cut them.
  Restart({"--http-io-timeout-ms", "30000", "--http-min-rate-bytes-per-s", "2000000", "--http-min-rate-grace-ms", "1000"});
  {
    // An upload trickling 100 bytes every 250 ms.
    RawConnection c(port_);
    ASSERT_TRUE(c.Send("PUT /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
                       "\r\nContent-Length: 10000000\r\n\r\n"));
    const auto start = std::chrono::steady_clock::now();
    std::string answer;
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
      if (!c.Send(std::string(100, 'x'))) break;
      answer += c.ReadSome(std::chrono::milliseconds(250));
      if (!answer.empty()) break;
    }
    answer += c.ReadUntilClose(std::chrono::seconds(2));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 408")) << answer.substr(0, 80);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  }
  {
    // A download read at about 300 KB/s: steady progress, too slow on average once the socket
    // buffers' head start is spent.
    const std::string id = AddTrack(RandomBytes(24 << 20, 23), "none");
    RawConnection c(port_);
    ASSERT_TRUE(c.Send("GET /audio/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto start = std::chrono::steady_clock::now();
    std::size_t received = 0;
    bool closed = false;
    while (!closed && std::chrono::steady_clock::now() - start < std::chrono::seconds(40)) {
      const std::string piece = c.ReadSome(std::chrono::milliseconds(1000));
      if (piece.empty()) {
        c.ReadUntilClose(std::chrono::milliseconds(10), &closed);
        if (!closed) continue;
        break;
      }
      received += piece.size();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    EXPECT_TRUE(closed) << "a reader this slow must not hold the connection; got " << received << " bytes";
    EXPECT_LT(received, std::size_t{24} << 20);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30)) << "cut before the io deadline";
  }
  ExpectAlive();
}

TEST_F(HostileInputTest, IdleKeepAliveConnectionIsEventuallyClosed) {
  // The idle deadline is the default 60 s; the header deadline applies once bytes arrive. A
  // connection that never sends anything is closed by the header deadline of its first request.
  RawConnection c(port_);
  bool closed = false;
  c.ReadUntilClose(std::chrono::seconds(4), &closed);
  EXPECT_TRUE(closed);
  ExpectAlive();
}

TEST_F(HostileInputTest, ClientVanishingMidDownloadOrUpload) {
  const std::string bytes = RandomBytes(6 << 20, 22);
  const std::string id = AddTrack(bytes, "none");
  for (int i = 0; i < 5; ++i) {
    RawConnection c(port_);
    ASSERT_TRUE(c.Send("GET /audio/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    c.ReadSome(std::chrono::seconds(1));
    c.Close();  // mid-body
  }
  {
    RawConnection c(port_);
    ASSERT_TRUE(c.Send("PUT /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
                       "\r\nContent-Length: 1000000\r\n\r\n" + std::string(1000, 'x')));
    c.Close();  // the upload stops after 1000 of 1000000 bytes
  }
  {
    // A client that stalls mid-upload gets 408 once the io deadline passes.
    RawConnection c(port_);
    ASSERT_TRUE(c.Send("PUT /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
                       "\r\nContent-Length: 1000000\r\n\r\n" + std::string(1000, 'x')));
    std::string answer = c.ReadUntilClose(std::chrono::seconds(5));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 408")) << answer.substr(0, 80);
  }
  ExpectAlive();
  auto whole = Get("/audio/" + id);
  EXPECT_EQ(whole.body, bytes);
  EXPECT_TRUE(std::filesystem::is_empty(process_->data_dir() / "streamer" / "blobs" / ".tmp"));
}

TEST_F(HostileInputTest, UploadOverTheLimitIs413) {
  process_->Stop();
  Start({"--streamer-upload-max-bytes", "1000"});
  Headers h = Admin();
  auto declared = Fetch(port_, "PUT", "/v1/files", h, std::string(2000, 'x'));
  EXPECT_EQ(declared.status, 413);
  EXPECT_EQ(ErrorOf(declared), "PayloadTooLarge");
  // Chunked: the size is only known while reading.
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("PUT /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
                     "\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" + std::string(2000, 'y') + "\r\n0\r\n\r\n"));
  EXPECT_TRUE(c.ReadUntilClose(std::chrono::seconds(3)).starts_with("HTTP/1.1 413"));
  ExpectAlive();
}

TEST_F(HostileInputTest, SupporterServiceDownSlowOrGarbage) {
  const std::string id = AddTrack(RandomBytes(1000, 23), "any");
  const std::string ticket = Ticket(kFan, id);
  const Headers auth = {{"Authorization", "Bearer " + ticket}};

  supporters_.SetMode(FakeSupporterServer::Mode::kGarbage);
  auto garbage = Get("/audio/" + id, auth);
  EXPECT_EQ(garbage.status, 503);
  EXPECT_EQ(garbage.Header("retry-after"), "5");
  EXPECT_EQ(ErrorOf(garbage), "SupporterCheckUnavailable");

  supporters_.SetMode(FakeSupporterServer::Mode::kServerError);
  EXPECT_EQ(Get("/audio/" + id, auth).status, 503);

  supporters_.SetMode(FakeSupporterServer::Mode::kSlow, std::chrono::milliseconds(3000));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Get("/audio/" + id, auth).status, 503);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2)) << "the 700 ms timeout must hold";

  // Errors are never cached: once the service answers again, so do we.
  supporters_.SetMode(FakeSupporterServer::Mode::kNormal);
  EXPECT_EQ(Get("/audio/" + id, auth).status, 200);

  // Down: nothing listens at the configured URL.
  process_->Stop();
  Start({"--supporter-url", "http://127.0.0.1:1"});
  EXPECT_EQ(Get("/audio/" + id, auth).status, 503);
  ExpectAlive();
}

TEST_F(HostileInputTest, KillDuringUploadLeavesNoHalfFile) {
  const std::string bytes = RandomBytes(4 << 20, 24);
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("PUT /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
                     "\r\nContent-Length: " + std::to_string(bytes.size()) + "\r\n\r\n" + bytes.substr(0, 2 << 20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto tmp = process_->data_dir() / "streamer" / "blobs" / ".tmp";
  EXPECT_FALSE(std::filesystem::is_empty(tmp)) << "the upload should be in a temporary file";
  process_->Kill();
  c.Close();
  Start({});
  EXPECT_TRUE(std::filesystem::is_empty(tmp)) << "restart must clear abandoned temporaries";
  std::size_t stored = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(process_->data_dir() / "streamer" / "blobs")) {
    if (e.is_regular_file()) ++stored;
  }
  EXPECT_EQ(stored, 0u) << "no file may appear under a real id";
  // The same upload, completed, lands whole.
  const std::string id = Upload(bytes);
  ASSERT_EQ(PutTrack(id, R"({"owner_did":"did:plc:artist"})").status, 200);
  EXPECT_EQ(Get("/audio/" + id).body, bytes);
}

TEST_F(HostileInputTest, ConnectionCapAnswers503) {
  process_->Stop();
  Start({"--http-max-connections", "4"});
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawConnection>(port_));
    ASSERT_TRUE(held.back()->Send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_FALSE(held.back()->ReadSome(std::chrono::seconds(2)).empty());
  }
  RawConnection extra(port_);
  ASSERT_TRUE(extra.Send("GET /audio/0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\n"));
  bool closed = false, reset = false;
  std::string answer = extra.ReadUntilClose(std::chrono::seconds(3), &closed, &reset);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 503")) << answer;
  EXPECT_NE(answer.find("\"error\":\"Overloaded\""), std::string::npos) << answer;
  EXPECT_TRUE(closed);
  EXPECT_FALSE(reset) << "the 503 must not be destroyed by a connection reset";
  held.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ExpectAlive();
}

TEST_F(HostileInputTest, UnknownRoutesAndMethodsAreJson) {
  auto missing = Get("/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorOf(missing), "NotFound");
  auto method = Fetch(port_, "POST", "/health", {}, "x");
  EXPECT_EQ(method.status, 405);
  EXPECT_FALSE(method.Header("allow").empty());
}

}  // namespace
}  // namespace plyr::testing

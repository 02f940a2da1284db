// A running plyr-core streamer (the real binary, on an OS-chosen loopback port) with a fake
// atprotofans beside it, plus helpers to upload files, register tracks and mint tickets.
#pragma once

#include <ctime>
#include <fstream>
#include <random>
#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "streamer/stream_ticket.h"
#include "tests/support/fake_supporter_server.h"
#include "tests/support/process.h"
#include "tests/support/s3_test_server.h"
#include "tests/support/test_http_client.h"

namespace plyr::testing {

inline std::string RandomBytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// The same suite runs on the embedded default (blobs in the data folder) and, built with
// PLYR_TEST_STREAMER_ON_S3, on an S3-compatible store (one s3rver per test binary, a key prefix
// per test).
#ifdef PLYR_TEST_STREAMER_ON_S3
inline constexpr bool kStreamerOnObjectStore = true;
#else
inline constexpr bool kStreamerOnObjectStore = false;
#endif

class StreamerTest : public ::testing::Test {
 protected:
  static constexpr const char* kArtist = "did:plc:artist";
  static constexpr const char* kFan = "did:plc:fan";
  static constexpr const char* kStranger = "did:plc:stranger";

  void SetUp() override {
    supporters_.AddSupporter(kFan, kArtist);
    Start({});
  }

  void Start(std::vector<std::string> extra) {
    process_ = std::make_unique<PlyrProcess>(dir_.path() / "data");
    std::vector<std::string> args = {"streamer", "--supporter-url", supporters_.url(),
                                     "--supporter-timeout-ms", "700", "--http-drain-timeout-ms", "2000"};
    args.insert(args.end(), extra.begin(), extra.end());
    if (kStreamerOnObjectStore) {
      const auto storage = ObjectStoreArgs();
      args.insert(args.end(), storage.begin(), storage.end());
    }
    ASSERT_TRUE(process_->StartServe(args)) << process_->log();
    port_ = process_->port("streamer");
    token_ = process_->admin_token();
  }

  void Restart(std::vector<std::string> extra = {}) {
    process_->Stop();
    Start(std::move(extra));
  }

  // The flags that put the streamer's blobs on the shared test store, under this test's prefix
  // (kept across restarts).
  std::vector<std::string> ObjectStoreArgs() {
    S3TestServer* store = object_store_ != nullptr ? object_store_ : SharedS3Server();
    if (store == nullptr) return {};
    if (object_prefix_.empty()) {
      static int tests = 0;
      object_prefix_ = "test-" + std::to_string(++tests) + "/";
      std::ofstream(dir_.path() / "s3-secret") << S3TestServer::kSecretAccessKey << "\n";
    }
    return {"--storage-s3-endpoint", store->endpoint(), "--storage-s3-bucket", store->bucket(),
            "--storage-s3-region", "us-east-1", "--storage-s3-access-key-id", S3TestServer::kAccessKeyId,
            "--storage-s3-secret-access-key-file", (dir_.path() / "s3-secret").string(),
            "--storage-s3-prefix", object_prefix_, "--storage-s3-timeout-ms", "5000"};
  }

  Headers Admin() const { return {{"Authorization", "Bearer " + token_}}; }

  // Uploads bytes and returns the file id.
  std::string Upload(const std::string& bytes, const std::string& type = "audio/mpeg") {
    Headers h = Admin();
    h.emplace_back("Content-Type", type);
    auto r = Fetch(port_, "PUT", "/v1/files", h, bytes);
    EXPECT_TRUE(r.status == 201 || r.status == 200) << r.status << " " << r.body;
    auto doc = boost::json::parse(r.body);
    return std::string(doc.at("file_id").as_string());
  }

  HttpResult PutTrack(const std::string& id, const std::string& json) {
    return Fetch(port_, "PUT", "/v1/tracks/" + id, Admin(), json);
  }

  // Uploads a track with the given gate and returns its id.
  std::string AddTrack(const std::string& bytes, const std::string& gate) {
    std::string id = Upload(bytes);
    auto r = PutTrack(id, R"({"owner_did":")" + std::string(kArtist) + R"(","gate":")" + gate + "\"}");
    EXPECT_EQ(r.status, 200) << r.body;
    return id;
  }

  std::string Ticket(const std::string& viewer, const std::string& file, std::int64_t ttl = 600) {
    auto keys = streamer::LoadOrCreateTicketKeys(process_->data_dir());
    EXPECT_TRUE(keys);
    return streamer::MintTicket(*keys, {viewer, file, static_cast<std::int64_t>(std::time(nullptr)) + ttl});
  }

  HttpResult Get(const std::string& target, const Headers& headers = {}) {
    return Fetch(port_, "GET", target, headers);
  }

  static std::string ErrorOf(const HttpResult& r) {
    boost::system::error_code ec;
    auto doc = boost::json::parse(r.body, ec);
    if (ec || !doc.is_object() || !doc.as_object().contains("error")) return "<no json error>";
    return std::string(doc.at("error").as_string());
  }

  TempDir dir_;
  FakeSupporterServer supporters_;
  std::unique_ptr<PlyrProcess> process_;
  unsigned short port_ = 0;
  std::string token_;
  std::string object_prefix_;  // on the object store: this test's keys begin with it
  S3TestServer* object_store_ = nullptr;  // a test's own store, instead of the shared one
};

}  // namespace plyr::testing

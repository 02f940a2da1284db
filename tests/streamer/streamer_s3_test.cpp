// What only a streamer on an S3-compatible store has: objects in the bucket instead of the data
// folder, redirects of public audio to the store, and a store that goes away. The rest of the
// suite runs on the store too (streamer_integration_test.cpp built with PLYR_TEST_STREAMER_ON_S3).
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "common/http_client.h"
#include "common/s3_client.h"
#include "tests/streamer/streamer_fixture.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/run_coroutine.h"

namespace plyr::testing {
namespace {

using namespace std::chrono_literals;

class StreamerOnS3Test : public StreamerTest {
 protected:
  // The store's own view of an object of this test.
  StatusOr<S3Object> HeadObject(const std::string& file_id, S3TestServer& store) {
    S3Settings settings{store.endpoint(), store.bucket(), "us-east-1",
                        aws::Credentials{S3TestServer::kAccessKeyId, S3TestServer::kSecretAccessKey, ""}, 10s};
    auto client = S3Client::Create(http_, settings);
    if (!client.ok()) return client.status();
    const std::string key = object_prefix_ + "streamer/" + file_id;
    return RunCoroutine<StatusOr<S3Object>>([&](asio::any_io_executor e) { return (*client)->Head(e, key); });
  }

  // "http://127.0.0.1:PORT/path?query" -> (PORT, "/path?query").
  static std::pair<unsigned short, std::string> Split(const std::string& url) {
    const auto host = url.find("://") + 3;
    const auto colon = url.find(':', host);
    const auto slash = url.find('/', host);
    return {static_cast<unsigned short>(std::stoi(url.substr(colon + 1, slash - colon - 1))), url.substr(slash)};
  }

  HttpClient http_;
};

TEST_F(StreamerOnS3Test, UploadsLandInTheBucketAndTheDataFolderKeepsNoCopy) {
  const std::string bytes = RandomBytes(300'000, 101);
  const std::string id = Upload(bytes, "audio/flac");
  auto object = HeadObject(id, *SharedS3Server());
  ASSERT_TRUE(object.ok()) << object.status().ToString();
  EXPECT_EQ(object->size, bytes.size());
  EXPECT_EQ(object->content_type, "audio/flac") << "a redirected browser gets the type from the store";

  namespace fs = std::filesystem;
  std::size_t local_files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(process_->data_dir() / "streamer" / "blobs")) {
    local_files += entry.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(local_files, 0u) << "an upload's local copy is only the way in";

  // A large one goes up in parts and comes back whole.
  const std::string large = RandomBytes(70 << 20, 102);
  const std::string large_id = AddTrack(large, "none");
  auto whole = Get("/audio/" + large_id);
  ASSERT_EQ(whole.status, 200);
  EXPECT_TRUE(whole.body == large);
}

TEST_F(StreamerOnS3Test, PublicAudioIsRedirectedToAPresignedUrlAndGatedAudioStaysBehindTheGate) {
  Restart({"--streamer-public-redirect", "presigned", "--streamer-presigned-ttl-seconds", "600"});
  const std::string bytes = RandomBytes(50'000, 103);
  const std::string public_id = AddTrack(bytes, "none");
  const std::string gated_id = AddTrack(RandomBytes(40'000, 104), "any");

  auto redirect = Get("/audio/" + public_id);
  ASSERT_EQ(redirect.status, 302) << redirect.body;
  EXPECT_EQ(redirect.Header("cache-control"), "private, max-age=300");
  const std::string location(redirect.Header("location"));
  ASSERT_TRUE(location.starts_with(SharedS3Server()->endpoint())) << location;
  EXPECT_NE(location.find("X-Amz-Signature="), std::string::npos) << location;
  auto [store_port, target] = Split(location);
  auto followed = Fetch(store_port, "GET", target, {{"Range", "bytes=100-199"}});
  ASSERT_EQ(followed.status, 206) << followed.body;
  EXPECT_EQ(followed.body, bytes.substr(100, 100));

  // A gated track is never redirected: the ticket is checked and the bytes proxied.
  EXPECT_EQ(Get("/audio/" + gated_id).status, 401);
  auto played = Get("/audio/" + gated_id, {{"Authorization", "Bearer " + Ticket(kFan, gated_id)}});
  EXPECT_EQ(played.status, 200);
  EXPECT_EQ(played.body.size(), 40'000u);
}

TEST_F(StreamerOnS3Test, ACdnBaseUrlRedirectsToTheObjectsKeyUnderIt) {
  Restart({"--streamer-public-redirect", "https://cdn.example.com/audio"});
  const std::string id = AddTrack(RandomBytes(1000, 105), "none");
  auto redirect = Get("/audio/" + id);
  ASSERT_EQ(redirect.status, 302) << redirect.body;
  EXPECT_EQ(redirect.Header("location"), "https://cdn.example.com/audio/" + object_prefix_ + "streamer/" + id);
}

TEST_F(StreamerOnS3Test, ARedirectWithoutAStoreOrABadOneIsRefusedAtStart) {
  PlyrProcess without_store(dir_.path() / "other");
  EXPECT_FALSE(without_store.StartServe({"streamer", "--streamer-public-redirect", "presigned"}, 5s));
  EXPECT_NE(without_store.log().find("needs an object store"), std::string::npos) << without_store.log();
  process_->Stop();
  PlyrProcess bad(dir_.path() / "data");
  auto args = ObjectStoreArgs();
  args.insert(args.begin(), "streamer");
  args.insert(args.end(), {"--streamer-public-redirect", "ftp://x"});
  EXPECT_FALSE(bad.StartServe(args, 5s));
}

// The store goes away under a running streamer: reads are 503 with Retry-After (never a wrong or
// short body announced as whole), uploads are 503 and record nothing, and a track removed with its
// files names the objects left behind.
TEST_F(StreamerOnS3Test, AStoreThatGoesAwayIs503AndNothingIsRecordedHalfWay) {
  S3TestServer own("plyr-own");
  ASSERT_TRUE(own.Start()) << own.error();
  object_store_ = &own;
  Restart({"--streamer-cache-bytes", "0"});  // every read from the store (the cache has its own test)
  const std::string bytes = RandomBytes(20'000, 106);
  const std::string id = AddTrack(bytes, "none");
  ASSERT_EQ(Get("/audio/" + id).body, bytes);

  own.Stop();
  auto read = Get("/audio/" + id, {{"Range", "bytes=0-99"}});
  EXPECT_EQ(read.status, 503) << read.body;
  EXPECT_EQ(ErrorOf(read), "StorageUnavailable");
  EXPECT_EQ(read.Header("retry-after"), "5");
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + id, Admin()).status, 503);

  Headers upload_headers = Admin();
  upload_headers.emplace_back("Content-Type", "audio/mpeg");
  const std::string other = RandomBytes(5000, 107);
  auto upload = Fetch(port_, "PUT", "/v1/files", upload_headers, other);
  EXPECT_EQ(upload.status, 503) << upload.body;
  auto listing = Fetch(port_, "GET", "/v1/files", Admin());
  EXPECT_EQ(listing.body.find(R"("size":5000)"), std::string::npos) << "a refused upload is not recorded";

  auto refused = Fetch(port_, "DELETE", "/v1/files/" + id + "?force=1", Admin());
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(Fetch(port_, "GET", "/v1/tracks/" + id, Admin()).status, 200) << "nothing removed by a refusal";

  auto removed = Fetch(port_, "DELETE", "/v1/tracks/" + id + "?files=1", Admin());
  ASSERT_EQ(removed.status, 200) << removed.body;
  const auto body = boost::json::parse(removed.body).as_object();
  ASSERT_EQ(body.at("files_not_removed").as_array().size(), 1u) << removed.body;
  EXPECT_EQ(body.at("files_not_removed").as_array()[0].at("message").as_string(),
            "the object store cannot be reached");
  EXPECT_EQ(Get("/audio/" + id).status, 404) << "the track is gone at once";
  EXPECT_TRUE(process_->Running());
}

// The hot-file cache: a file read through the streamer is copied next to it (within an eighth of
// the budget) and then served from the copy, even with the store gone; a takedown removes the copy.
TEST_F(StreamerOnS3Test, HotFilesAreServedFromALocalCopyAndATakedownRemovesIt) {
  S3TestServer own("plyr-cache");
  ASSERT_TRUE(own.Start()) << own.error();
  object_store_ = &own;
  Restart({"--streamer-cache-bytes", "2000000"});  // copies of at most 250 000 bytes
  const std::string small = RandomBytes(200'000, 111), other = RandomBytes(150'000, 112),
                    large = RandomBytes(300'000, 113);
  const std::string small_id = AddTrack(small, "none"), other_id = AddTrack(other, "none"),
                    large_id = AddTrack(large, "none");
  namespace fs = std::filesystem;
  auto copy_of = [&](const std::string& id) {
    return process_->data_dir() / "streamer" / "blobs" / id.substr(0, 2) / id;
  };
  auto appears = [&](const std::string& id) {
    for (int i = 0; i < 200 && !fs::exists(copy_of(id)); ++i) std::this_thread::sleep_for(25ms);
    return fs::exists(copy_of(id));
  };
  for (const auto& [id, bytes] : {std::pair{small_id, small}, std::pair{other_id, other}, std::pair{large_id, large}}) {
    auto read = Get("/audio/" + id);
    ASSERT_EQ(read.status, 200);
    EXPECT_TRUE(read.body == bytes);
  }
  ASSERT_TRUE(appears(small_id));
  ASSERT_TRUE(appears(other_id));
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(fs::exists(copy_of(large_id))) << "beyond an eighth of the budget: always from the store";

  // A takedown removes the copy with the object.
  ASSERT_EQ(Fetch(port_, "DELETE", "/v1/files/" + small_id + "?force=1", Admin()).status, 200);
  EXPECT_FALSE(fs::exists(copy_of(small_id)));
  EXPECT_EQ(Get("/audio/" + small_id).status, 404);

  // The store goes away: the copy still plays, ranges and all; the rest is 503.
  own.Stop();
  auto ranged = Get("/audio/" + other_id, {{"Range", "bytes=1000-1999"}});
  ASSERT_EQ(ranged.status, 206);
  EXPECT_EQ(ranged.body, other.substr(1000, 1000));
  EXPECT_EQ(Get("/audio/" + large_id).status, 503);
  auto metrics = Get("/metrics");
  EXPECT_NE(metrics.body.find(R"(plyr_streamer_cache_reads_total{service="streamer",source="cache"} 1)"),
            std::string::npos)
      << metrics.body.substr(0, 4000);
}

// Two streamers on one PostgreSQL catalog and one store: either serves what the other was given,
// and a takedown through one answers 404 on the other within moments, without a restart.
TEST_F(StreamerOnS3Test, TwoInstancesOnOnePostgresAndOneStoreServeEachOthersTracks) {
  const std::string url = FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  process_->Stop();
  auto start = [&](const std::string& name) {
    auto instance = std::make_unique<PlyrProcess>(dir_.path() / name);
    std::vector<std::string> args = {"streamer", "--supporter-url", supporters_.url(), "--database-url", url,
                                     "--admin-token", std::string(40, 'a')};
    const auto storage = ObjectStoreArgs();
    args.insert(args.end(), storage.begin(), storage.end());
    EXPECT_TRUE(instance->StartServe(args)) << instance->log();
    return instance;
  };
  auto a = start("a");
  auto b = start("b");
  const Headers admin = {{"Authorization", "Bearer " + std::string(40, 'a')}};
  const auto a_port = a->port("streamer"), b_port = b->port("streamer");

  const std::string bytes = RandomBytes(200'000, 108);
  auto uploaded = Fetch(a_port, "PUT", "/v1/files", admin, bytes);
  ASSERT_EQ(uploaded.status, 201) << uploaded.body;
  const std::string id(boost::json::parse(uploaded.body).at("file_id").as_string());
  ASSERT_EQ(Fetch(a_port, "PUT", "/v1/tracks/" + id, admin, R"({"owner_did":"did:plc:artist"})").status, 200);

  // Until b hears of it, its answer is 404; then the bytes. Bounded: 5 s.
  auto eventually = [](const std::function<bool()>& holds) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!holds()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  };
  const auto seen_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return Fetch(b_port, "GET", "/audio/" + id).status == 200; }));
  const auto lag = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - seen_at);
  EXPECT_LT(lag, 2s) << "an announcement, not a poll";
  auto ranged = Fetch(b_port, "GET", "/audio/" + id, {{"Range", "bytes=1000-1999"}});
  EXPECT_EQ(ranged.status, 206);
  EXPECT_EQ(ranged.body, bytes.substr(1000, 1000));

  // Another owner's track may not name it on either instance (the check is the database's).
  auto stolen = Fetch(b_port, "PUT", "/v1/tracks/00000000000000ee", admin,
                      R"({"owner_did":"did:plc:thief","renditions":{"mp3":")" + id + "\"}}");
  EXPECT_NE(stolen.status, 200) << stolen.body;

  auto removed = Fetch(b_port, "DELETE", "/v1/files/" + id + "?force=1", admin);
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_TRUE(eventually([&] { return Fetch(a_port, "GET", "/audio/" + id).status == 404; }));
  EXPECT_EQ(Fetch(a_port, "GET", "/v1/files/" + id, admin).status, 404);

  // A restarted instance loads the shared catalog as it is.
  a->Kill();
  auto a2 = start("a");
  EXPECT_EQ(Fetch(a2->port("streamer"), "GET", "/audio/" + id).status, 404);
  const std::string other = RandomBytes(5'000, 109);
  auto second = Fetch(b_port, "PUT", "/v1/files", admin, other);
  ASSERT_EQ(second.status, 201) << second.body;
  const std::string other_id(boost::json::parse(second.body).at("file_id").as_string());
  ASSERT_EQ(Fetch(b_port, "PUT", "/v1/tracks/" + other_id, admin, R"({"owner_did":"did:plc:artist"})").status, 200);
  EXPECT_TRUE(eventually([&] { return Fetch(a2->port("streamer"), "GET", "/audio/" + other_id).body == other; }));
}

}  // namespace
}  // namespace plyr::testing

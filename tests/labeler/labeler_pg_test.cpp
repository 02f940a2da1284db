// Labelers sharing one label log on PostgreSQL (a throw-away cluster): labels emitted through
// any instance reach the subscribers of every instance, each seq once, in order, without a gap,
// live and on replay.
#include <thread>

#include "tests/labeler/labeler_fixture.h"
#include "tests/support/pg_test_server.h"

namespace plyr::testing {
namespace {

using namespace std::chrono_literals;

// Every instance signs with the same key and calls itself by the same DID.
constexpr const char* kSigningKey = "0101010101010101010101010101010101010101010101010101010101010101";
constexpr const char* kToken = "labeler-test-token-0123456789abcdef";

std::unique_ptr<PlyrProcess> StartInstance(const std::filesystem::path& data, const std::string& url) {
  auto instance = std::make_unique<PlyrProcess>(data);
  EXPECT_TRUE(instance->StartServe({"labeler", "--labeler-did", kLabelerDid, "--labeler-signing-key", kSigningKey,
                                    "--admin-token", kToken, "--database-url", url, "--http-drain-timeout-ms", "2000"}))
      << instance->log();
  return instance;
}

std::int64_t EmitOn(unsigned short port, int first, int count) {
  boost::json::array labels;
  for (int i = 0; i < count; ++i) labels.push_back(boost::json::object{{"uri", PostUri(first + i)}, {"val", "spam"}});
  auto r = Fetch(port, "POST", "/v1/labels",
                 {{"Authorization", std::string("Bearer ") + kToken}, {"Content-Type", "application/json"}},
                 boost::json::serialize(boost::json::object{{"labels", labels}}));
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return 0;
  return boost::json::parse(r.body).as_object().at("labels").as_array().back().as_object().at("seq").to_number<std::int64_t>();
}

TEST(LabelerOnPostgresTest, EveryInstancesSubscribersSeeEverySeqOnceInOrder) {
  const std::string url = FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  TempDir dir;
  auto a = StartInstance(dir.path() / "a", url);
  auto b = StartInstance(dir.path() / "b", url);
  const auto a_port = a->port("labeler"), b_port = b->port("labeler");

  std::string error;
  auto on_a = WsClient::Connect(a_port, Subscribe(0), &error);
  ASSERT_TRUE(on_a) << error;
  auto on_b = WsClient::Connect(b_port, Subscribe(0), &error);
  ASSERT_TRUE(on_b) << error;

  // Both emit at once: 2 x 25 emits of 3 labels.
  constexpr int kEmits = 25, kPer = 3;
  std::thread through_a([&] {
    for (int i = 0; i < kEmits; ++i) EmitOn(a_port, 1000 + i * kPer, kPer);
  });
  std::thread through_b([&] {
    for (int i = 0; i < kEmits; ++i) EmitOn(b_port, 5000 + i * kPer, kPer);
  });
  through_a.join();
  through_b.join();
  const std::size_t total = 2 * kEmits * kPer;
  std::vector<std::int64_t> want;
  for (std::size_t i = 1; i <= total; ++i) want.push_back(static_cast<std::int64_t>(i));
  EXPECT_EQ(ReadSeqs(*on_a, total, nullptr, 20s), want) << "subscriber on A";
  EXPECT_EQ(ReadSeqs(*on_b, total, nullptr, 20s), want) << "subscriber on B";

  // A replay from any cursor on either instance continues without a gap, and queryLabels on one
  // finds what the other emitted.
  auto replay = WsClient::Connect(b_port, Subscribe(100), &error);
  ASSERT_TRUE(replay) << error;
  EXPECT_EQ(ReadSeqs(*replay, total - 100, nullptr, 20s), std::vector<std::int64_t>(want.begin() + 100, want.end()));
  auto found = Fetch(a_port, "GET", "/xrpc/com.atproto.label.queryLabels?uriPatterns=" + PostUri(5000));
  EXPECT_NE(found.body.find(PostUri(5000)), std::string::npos) << found.body;

  // One instance killed: the other goes on, and a restarted one resumes the same log.
  a->Kill();
  const std::int64_t last = EmitOn(b_port, 9000, 2);
  EXPECT_EQ(last, static_cast<std::int64_t>(total) + 2);
  EXPECT_EQ(ReadSeqs(*on_b, 2, nullptr, 20s), (std::vector<std::int64_t>{last - 1, last}));
  auto a2 = StartInstance(dir.path() / "a", url);
  auto resumed = WsClient::Connect(a2->port("labeler"), Subscribe(static_cast<std::int64_t>(total)), &error);
  ASSERT_TRUE(resumed) << error;
  EXPECT_EQ(ReadSeqs(*resumed, 2, nullptr, 20s), (std::vector<std::int64_t>{last - 1, last}));
}

}  // namespace
}  // namespace plyr::testing

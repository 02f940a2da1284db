// Transcoders sharing one queue on PostgreSQL (a throw-away cluster, tests/support/pg_test_server.h):
// jobs submitted to either run on both, a job whose runner is killed mid-run runs again on the
// other once its lease runs out, and every job ends once, with one callback.
#include <map>

#include "tests/support/pg_test_server.h"
#include "tests/transcoder/transcoder_fixture.h"

namespace plyr::testing {
namespace {

using namespace std::chrono_literals;

class TranscoderOnPostgresTest : public TranscoderTest {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase();
    ASSERT_FALSE(url_.empty());
    streamer_process_ = std::make_unique<PlyrProcess>(dir_.path() / "streamer-data");
    ASSERT_TRUE(streamer_process_->StartServe({"streamer", "--http-drain-timeout-ms", "2000"}))
        << streamer_process_->log();
    streamer_port_ = streamer_process_->port("streamer");
    streamer_token_ = streamer_process_->admin_token();
  }

  // A transcoder instance on the shared queue, with its own data folder and this test's token.
  std::unique_ptr<PlyrProcess> StartInstance(const std::string& name) {
    auto instance = std::make_unique<PlyrProcess>(dir_.path() / name);
    EXPECT_TRUE(instance->StartServe({"transcoder", "--database-url", url_, "--admin-token", kToken,
                                      "--transcoder-lease-ms", "1500", "--transcoder-max-running-jobs", "1",
                                      "--transcoder-streamer-url",
                                      "http://127.0.0.1:" + std::to_string(streamer_port_),
                                      "--transcoder-streamer-token", streamer_token_, "--http-drain-timeout-ms",
                                      "2000"}))
        << instance->log();
    return instance;
  }

  HttpResult On(PlyrProcess& instance, const std::string& method, const std::string& target,
                const std::string& body = {}) {
    Headers h = {{"Authorization", std::string("Bearer ") + kToken}};
    if (!body.empty()) h.emplace_back("Content-Type", "audio/flac");
    return Fetch(instance.port("transcoder"), method, target, h, body, 30s);
  }

  static constexpr const char* kToken = "a-test-token-of-forty-characters-0123456";
  std::string url_;
};

TEST_F(TranscoderOnPostgresTest, AJobWhoseRunnerIsKilledRunsAgainElsewhereAndEveryJobEndsOnceWithOneCallback) {
  CallbackReceiver receiver(/*failures=*/0);
  const std::string input = ReadBytes(MakeSine("pg-90s.flac", 90, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
  const std::string query = "/v1/jobs?owner_did=" + UrlEncode(kOwner) +
                            "&renditions=mp3-320,opus-64&callback_url=" + UrlEncode(receiver.url());
  auto a = StartInstance("a");
  // The first job is A's: only A runs yet. It is killed in the middle of it.
  HttpResult first = On(*a, "POST", query, input);
  ASSERT_EQ(first.status, 202) << first.body;
  const std::string killed_id = JsonStr(ParseJson(first.body), {"id"});
  const auto until = std::chrono::steady_clock::now() + kJobDeadline;
  for (;;) {
    const boost::json::value job = ParseJson(On(*a, "GET", "/v1/jobs/" + killed_id).body);
    if (JsonStr(job, {"state"}) == "running" && JsonNum(job, {"progress"}) > 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "the job never ran on A";
    std::this_thread::sleep_for(20ms);
  }

  a->Kill();  // mid-encode: its claim stays until the lease runs out
  auto b = StartInstance("b");
  std::vector<std::string> ids = {killed_id};
  for (int i = 0; i < 3; ++i) {
    HttpResult more = On(*b, "POST", query, input);
    ASSERT_EQ(more.status, 202) << more.body;
    ids.push_back(JsonStr(ParseJson(more.body), {"id"}));
  }

  // B runs everything, the killed job included, once its lease has run out.
  for (const auto& id : ids) {
    const auto deadline = std::chrono::steady_clock::now() + 2 * kJobDeadline;
    boost::json::value job;
    for (;;) {
      job = ParseJson(On(*b, "GET", "/v1/jobs/" + id).body);
      const std::string state = JsonStr(job, {"state"});
      if (state == "done" || state == "failed" || state == "cancelled") break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "job " << id << " never ended: " << boost::json::serialize(job);
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
    EXPECT_EQ(JsonNum(job, {"attempts"}), id == killed_id ? 2 : 1) << id;
    const std::string original = JsonStr(job, {"result", "original", "file_id"});
    EXPECT_TRUE(IsLowerHex(original, 16)) << boost::json::serialize(job);
  }
  // One callback a job, each saying done; the killed run sent none.
  const auto deliveries = receiver.WaitFor(ids.size(), 20s);
  std::this_thread::sleep_for(500ms);  // a duplicate would arrive by now
  std::map<std::string, int> per_job;
  for (const auto& d : receiver.deliveries()) {
    ++per_job[d.job];
    EXPECT_EQ(JsonStr(ParseJson(d.body), {"state"}), "done") << d.body;
  }
  EXPECT_EQ(per_job.size(), ids.size());
  for (const auto& id : ids) EXPECT_EQ(per_job[id], 1) << id;

  // A cancel through one instance reaches a job queued from the other.
  auto a2 = StartInstance("a");
  HttpResult queued = On(*a2, "POST", query, input);
  HttpResult behind = On(*a2, "POST", query, input);
  ASSERT_EQ(behind.status, 202) << behind.body;
  const std::string cancelled_id = JsonStr(ParseJson(behind.body), {"id"});
  HttpResult cancel = On(*b, "DELETE", "/v1/jobs/" + cancelled_id);
  EXPECT_TRUE(cancel.status == 200 || cancel.status == 202) << cancel.status << " " << cancel.body;
  const auto deadline = std::chrono::steady_clock::now() + 2 * kJobDeadline;
  for (;;) {
    const std::string state = JsonStr(ParseJson(On(*b, "GET", "/v1/jobs/" + cancelled_id).body), {"state"});
    if (state == "cancelled") break;
    ASSERT_NE(state, "done") << "the cancel was lost";
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(queued.status, 202);
}

}  // namespace
}  // namespace plyr::testing

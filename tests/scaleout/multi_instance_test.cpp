// The scale-out proof: two labelers, two streamers and two transcoders on one PostgreSQL database
// and one S3-compatible store (throw-away servers on loopback), under a load of emits, jobs and
// range requests, with one instance of each killed (SIGKILL) in the middle. Afterwards: every
// acknowledged label is stored exactly once and every subscriber saw every seq once and in order;
// every accepted job completed once, with one callback; no range was answered with wrong bytes.
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/labeler/labeler_fixture.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/s3_test_server.h"
#include "tests/transcoder/transcoder_fixture.h"

namespace plyr::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "scale-out-test-token-0123456789abcdef";
constexpr const char* kSigningKey = "0202020202020202020202020202020202020202020202020202020202020202";

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase();
    ASSERT_FALSE(url_.empty());
    store_ = SharedS3Server();
    ASSERT_NE(store_, nullptr);
    std::ofstream(dir_.path() / "s3-secret") << S3TestServer::kSecretAccessKey << "\n";
  }

  std::vector<std::string> Shared() const {
    return {"--admin-token", kToken, "--database-url", url_, "--http-drain-timeout-ms", "1000",
            "--storage-s3-endpoint", store_->endpoint(), "--storage-s3-bucket", store_->bucket(),
            "--storage-s3-region", "us-east-1", "--storage-s3-access-key-id", S3TestServer::kAccessKeyId,
            "--storage-s3-secret-access-key-file", (dir_.path() / "s3-secret").string(), "--storage-s3-prefix",
            "scaleout/"};
  }

  std::unique_ptr<PlyrProcess> Start(const std::string& name, std::vector<std::string> args) {
    auto process = std::make_unique<PlyrProcess>(dir_.path() / name);
    const auto shared = Shared();
    args.insert(args.end(), shared.begin(), shared.end());
    EXPECT_TRUE(process->StartServe(args)) << process->log();
    return process;
  }

  static Headers Admin(const std::string& type = "application/json") {
    return {{"Authorization", std::string("Bearer ") + kToken}, {"Content-Type", type}};
  }

  TempDir dir_;
  std::string url_;
  S3TestServer* store_ = nullptr;
};

// Reads a subscriber's #labels frames until the stream closes or `stop`; the seqs in order.
void Follow(WsClient& ws, std::vector<std::int64_t>* seqs, std::mutex* mutex, const std::atomic<bool>& stop) {
  while (!stop.load()) {
    auto got = ReadSeqs(ws, 1, nullptr, 300ms);
    if (got.empty()) {
      WsMessage probe;
      if (ws.Read(probe, 1ms) == WsClient::Status::kClosed) return;
      continue;
    }
    std::lock_guard lock(*mutex);
    seqs->insert(seqs->end(), got.begin(), got.end());
  }
}

TEST_F(ScaleOutTest, OneOfEachKilledUnderLoadLosesNothingAndAnswersNothingWrong) {
  auto labeler_a = Start("labeler-a", {"labeler", "--labeler-did", kLabelerDid, "--labeler-signing-key", kSigningKey});
  auto labeler_b = Start("labeler-b", {"labeler", "--labeler-did", kLabelerDid, "--labeler-signing-key", kSigningKey});
  auto streamer_a = Start("streamer-a", {"streamer"});
  auto streamer_b = Start("streamer-b", {"streamer"});
  // Both transcoders publish through streamer B (what a load balancer in front of the streamers
  // would do once A is gone).
  const std::string streamer_url = "http://127.0.0.1:" + std::to_string(streamer_b->port("streamer"));
  const std::vector<std::string> transcoder = {"transcoder", "--transcoder-lease-ms", "1500",
                                               "--transcoder-max-running-jobs", "1", "--transcoder-streamer-url",
                                               streamer_url, "--transcoder-streamer-token", kToken};
  auto transcoder_a = Start("transcoder-a", transcoder);
  auto transcoder_b = Start("transcoder-b", transcoder);
  if (HasFailure()) return;
  const unsigned short label_ports[2] = {labeler_a->port("labeler"), labeler_b->port("labeler")};
  const unsigned short stream_ports[2] = {streamer_a->port("streamer"), streamer_b->port("streamer")};
  const unsigned short job_ports[2] = {transcoder_a->port("transcoder"), transcoder_b->port("transcoder")};

  // A track to stream, stored through A.
  std::string audio(1'500'000, '\0');
  for (std::size_t i = 0; i < audio.size(); ++i) audio[i] = static_cast<char>((i * 2654435761u) >> 13);
  auto uploaded = Fetch(stream_ports[0], "PUT", "/v1/files", Admin("audio/mpeg"), audio);
  ASSERT_EQ(uploaded.status, 201) << uploaded.body;
  const std::string track = std::string(boost::json::parse(uploaded.body).at("file_id").as_string());
  ASSERT_EQ(Fetch(stream_ports[0], "PUT", "/v1/tracks/" + track, Admin(), R"({"owner_did":"did:plc:artist"})").status,
            200);

  // Subscribers on both labelers, from the start of the log.
  std::string error;
  std::unique_ptr<WsClient> subscribers[2];
  for (int i = 0; i < 2; ++i) {
    subscribers[i] = WsClient::Connect(label_ports[i], Subscribe(0), &error);
    ASSERT_TRUE(subscribers[i]) << error;
  }
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<std::int64_t> heard[2];
  std::thread followers[2] = {std::thread([&] { Follow(*subscribers[0], &heard[0], &mutex, stop); }),
                              std::thread([&] { Follow(*subscribers[1], &heard[1], &mutex, stop); })};

  // Jobs: four, two through each transcoder, each with a callback.
  CallbackReceiver callbacks(/*failures=*/0);
  const std::string input = ReadBytes(MakeSine("scaleout-30s.flac", 30, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
  std::vector<std::string> jobs;
  for (int i = 0; i < 4; ++i) {
    auto r = Fetch(job_ports[i % 2], "POST",
                   "/v1/jobs?owner_did=did:plc:artist&renditions=mp3-128,opus-64&callback_url=" +
                       UrlEncode(callbacks.url()),
                   Admin("audio/flac"), input, 30s);
    ASSERT_EQ(r.status, 202) << r.body;
    jobs.push_back(std::string(boost::json::parse(r.body).at("id").as_string()));
  }

  // The load: emits through both labelers, ranges from both streamers, until told to stop.
  std::set<std::int64_t> acked;
  std::set<std::string> acked_uris;
  std::atomic<int> wrong_bytes{0}, ranges_ok{0}, killed_side_failures{0};
  std::atomic<bool> load_stop{false};
  std::vector<std::thread> load;
  for (int side = 0; side < 2; ++side) {
    load.emplace_back([&, side] {
      for (int n = 0; !load_stop.load(); ++n) {
        const std::string uri = "at://did:plc:artist/fm.plyr.track/" + std::to_string(side) + "-" + std::to_string(n);
        auto r = Fetch(label_ports[side], "POST", "/v1/labels", Admin(),
                       R"({"labels":[{"uri":")" + uri + R"(","val":"spam"}]})", 5s);
        if (r.status != 200) {
          std::this_thread::sleep_for(20ms);  // the killed side: refused connections
          continue;
        }
        const boost::json::value answer = boost::json::parse(r.body);
        std::lock_guard lock(mutex);
        for (const auto& l : answer.at("labels").as_array()) acked.insert(l.at("seq").as_int64());
        acked_uris.insert(uri);
      }
    });
    load.emplace_back([&, side] {
      for (std::uint64_t n = 1; !load_stop.load(); ++n) {
        const std::uint64_t first = (n * 7919 * 4096) % (audio.size() - 65536);
        auto r = Fetch(stream_ports[side], "GET", "/audio/" + track,
                       {{"Range", "bytes=" + std::to_string(first) + "-" + std::to_string(first + 65535)}}, {}, 5s);
        if (r.status == 206) {
          if (r.body == audio.substr(first, 65536)) {
            ++ranges_ok;
          } else {
            ++wrong_bytes;
          }
        } else if (r.status == 0) {
          ++killed_side_failures;  // no answer at all from a killed instance: not a wrong one
          std::this_thread::sleep_for(20ms);
        } else {
          ++wrong_bytes;  // any other answer to a good request is wrong
        }
      }
    });
  }

  // In the middle of it: one of each, killed, once a job runs with progress on transcoder A.
  const auto until = std::chrono::steady_clock::now() + 60s;
  bool a_busy = false;
  while (!a_busy && std::chrono::steady_clock::now() < until) {
    for (const auto& id : jobs) {
      auto job = ParseJson(Fetch(job_ports[0], "GET", "/v1/jobs/" + id, Admin()).body);
      a_busy = a_busy || (JsonStr(job, {"state"}) == "running" && JsonNum(job, {"progress"}) > 0);
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(a_busy) << "transcoder A never ran a job";
  std::this_thread::sleep_for(300ms);
  labeler_a->Kill();
  streamer_a->Kill();
  transcoder_a->Kill();

  // Every job ends, on B.
  for (const auto& id : jobs) {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    std::string state;
    while (std::chrono::steady_clock::now() < deadline) {
      state = JsonStr(ParseJson(Fetch(job_ports[1], "GET", "/v1/jobs/" + id, Admin()).body), {"state"});
      if (state == "done" || state == "failed" || state == "cancelled") break;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(state, "done") << id;
  }
  std::this_thread::sleep_for(1s);  // more load after the kills
  load_stop = true;
  for (auto& t : load) t.join();

  // Labels: every acknowledged one stored once; B's subscriber heard every seq once, in order,
  // A's a gap-free prefix until it died.
  std::int64_t head = 0;
  std::set<std::string> stored_uris;
  std::string cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    auto page = boost::json::parse(
                    Fetch(label_ports[1], "GET",
                          "/xrpc/com.atproto.label.queryLabels?uriPatterns=*&limit=250" +
                              (cursor.empty() ? std::string() : "&cursor=" + cursor))
                        .body)
                    .as_object();
    const auto& labels = page.at("labels").as_array();
    for (const auto& l : labels) EXPECT_TRUE(stored_uris.insert(std::string(l.at("uri").as_string())).second) << l;
    if (labels.empty() || !page.contains("cursor")) break;
    cursor = std::string(page.at("cursor").as_string());
    head = std::stoll(cursor);
  }
  for (const auto& uri : acked_uris) EXPECT_TRUE(stored_uris.contains(uri)) << "acknowledged, then lost: " << uri;
  EXPECT_GE(static_cast<std::int64_t>(stored_uris.size()), static_cast<std::int64_t>(acked.size()));
  ASSERT_GT(head, 0);
  const auto until_heard = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until_heard) {
    {
      std::lock_guard lock(mutex);
      if (!heard[1].empty() && heard[1].back() >= head) break;
    }
    std::this_thread::sleep_for(50ms);
  }
  stop = true;
  for (auto& t : followers) t.join();
  for (int i = 0; i < 2; ++i) {
    for (std::size_t k = 0; k < heard[i].size(); ++k) {
      ASSERT_EQ(heard[i][k], static_cast<std::int64_t>(k) + 1) << "subscriber " << i << " at " << k;
    }
  }
  EXPECT_EQ(static_cast<std::int64_t>(heard[1].size()), head) << "the survivor's subscriber heard everything";
  for (auto seq : acked) EXPECT_LE(seq, head);

  // Jobs: one callback each, saying done.
  callbacks.WaitFor(jobs.size(), 20s);
  std::this_thread::sleep_for(500ms);
  std::map<std::string, int> per_job;
  for (const auto& d : callbacks.deliveries()) {
    ++per_job[d.job];
    EXPECT_EQ(JsonStr(ParseJson(d.body), {"state"}), "done") << d.body;
  }
  for (const auto& id : jobs) EXPECT_EQ(per_job[id], 1) << id;
  EXPECT_EQ(per_job.size(), jobs.size());

  std::cout << "scale-out load: " << acked.size() << " labels acknowledged, head seq " << head << ", subscribers heard "
            << heard[0].size() << " (killed) and " << heard[1].size() << "; " << jobs.size() << " jobs, "
            << callbacks.deliveries().size() << " callbacks; " << ranges_ok.load() << " ranges right, "
            << killed_side_failures.load() << " unanswered by the killed streamer, " << wrong_bytes.load()
            << " wrong\n";
  // Streams: never a wrong byte; the survivor kept answering.
  EXPECT_EQ(wrong_bytes.load(), 0);
  EXPECT_GT(ranges_ok.load(), 10);
}

}  // namespace
}  // namespace plyr::testing

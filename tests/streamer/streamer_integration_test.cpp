// The streamer end to end: the real plyr-core binary on loopback, spoken to over HTTP.
#include <sstream>
#include <thread>

#include "tests/streamer/streamer_fixture.h"

namespace plyr::testing {
namespace {

TEST_F(StreamerTest, HealthAndMetricsShowTheIoUringBackend) {
  auto health = Get("/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_NE(health.body.find("\"ok\""), std::string::npos);
  auto metrics = Get("/metrics");
  EXPECT_EQ(metrics.status, 200);
#ifdef BOOST_ASIO_HAS_IO_URING
  EXPECT_NE(metrics.body.find("plyr_runtime_info{backend=\"io_uring\""), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("task_run=\""), std::string::npos) << metrics.body;
  EXPECT_NE(process_->log().find("backend=io_uring"), std::string::npos);
#else
  EXPECT_NE(metrics.body.find("plyr_runtime_info{backend=\"epoll\""), std::string::npos) << metrics.body;
#endif
}

TEST_F(StreamerTest, UploadIsContentAddressedAndIdempotent) {
  const std::string bytes = RandomBytes(3 << 20, 1);
  Headers h = Admin();
  h.emplace_back("Content-Type", "audio/flac");
  auto first = Fetch(port_, "PUT", "/v1/files", h, bytes);
  ASSERT_EQ(first.status, 201) << first.body;
  auto second = Fetch(port_, "PUT", "/v1/files", h, bytes);
  ASSERT_EQ(second.status, 200) << second.body << second.transport_error;
  EXPECT_EQ(first.body, second.body);
  auto doc = boost::json::parse(first.body);
  EXPECT_EQ(doc.at("size").as_int64(), 3 << 20);
  EXPECT_EQ(doc.at("content_type").as_string(), "audio/flac");
  EXPECT_EQ(doc.at("file_id").as_string().size(), 16u);
}

TEST_F(StreamerTest, AdminEndpointsNeedTheToken) {
  const std::string id = Upload("some audio");
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"PUT", "/v1/files"}, {"PUT", "/v1/tracks/" + id}, {"GET", "/v1/tracks/" + id},
           {"DELETE", "/v1/tracks/" + id}}) {
    auto none = Fetch(port_, method, target, {}, "{}");
    EXPECT_EQ(none.status, 401) << method << " " << target;
    EXPECT_EQ(ErrorOf(none), "AuthenticationRequired");
    auto wrong = Fetch(port_, method, target, {{"Authorization", "Bearer " + token_ + "x"}}, "{}");
    EXPECT_EQ(wrong.status, 401) << method << " " << target;
  }
  EXPECT_EQ(process_->log().find(token_), std::string::npos) << "the admin token must never be logged";
}

TEST_F(StreamerTest, TrackCrud) {
  const std::string id = Upload("track bytes");
  EXPECT_EQ(PutTrack(id, R"({"owner_did":"not a did"})").status, 400);
  EXPECT_EQ(PutTrack(id, R"({"owner_did":"did:plc:a","gate":"everyone"})").status, 400);
  EXPECT_EQ(PutTrack(id, "not json").status, 400);
  EXPECT_EQ(PutTrack("0123456789abcdef", R"({"owner_did":"did:plc:a"})").status, 409);
  auto put = PutTrack(id, R"({"owner_did":"did:plc:a","gate":"copyright","content_type":"audio/ogg"})");
  ASSERT_EQ(put.status, 200) << put.body;
  auto got = Fetch(port_, "GET", "/v1/tracks/" + id, Admin());
  ASSERT_EQ(got.status, 200);
  auto doc = boost::json::parse(got.body);
  EXPECT_EQ(doc.at("gate").as_string(), "copyright");
  EXPECT_EQ(doc.at("content_type").as_string(), "audio/ogg");
  EXPECT_EQ(Fetch(port_, "DELETE", "/v1/tracks/" + id, Admin()).status, 204);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/tracks/" + id, Admin()).status, 404);
  EXPECT_EQ(Get("/audio/" + id).status, 404);
}

TEST_F(StreamerTest, ServesWholeFilesAndRanges) {
  const std::string bytes = RandomBytes(1 << 20, 2);
  const std::string id = AddTrack(bytes, "none");

  auto whole = Get("/audio/" + id);
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, bytes);
  EXPECT_EQ(whole.Header("accept-ranges"), "bytes");
  EXPECT_EQ(whole.Header("etag"), "\"" + id + "\"");
  EXPECT_EQ(whole.Header("content-type"), "audio/mpeg");
  EXPECT_EQ(whole.Header("cache-control"), "public, max-age=31536000, immutable");
  // A local file has a date; an object is named by its ETag alone.
  EXPECT_EQ(whole.Header("last-modified").empty(), kStreamerOnObjectStore);

  auto first_two = Get("/audio/" + id, {{"Range", "bytes=0-1"}});  // Safari's probe
  ASSERT_EQ(first_two.status, 206);
  EXPECT_EQ(first_two.body, bytes.substr(0, 2));
  EXPECT_EQ(first_two.Header("content-range"), "bytes 0-1/1048576");

  auto open_ended = Get("/audio/" + id, {{"Range", "bytes=1000000-"}});
  ASSERT_EQ(open_ended.status, 206);
  EXPECT_EQ(open_ended.body, bytes.substr(1000000));

  auto suffix = Get("/audio/" + id, {{"Range", "bytes=-500"}});
  ASSERT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.body, bytes.substr(bytes.size() - 500));
  EXPECT_EQ(suffix.Header("content-range"), "bytes 1048076-1048575/1048576");

  auto clamped = Get("/audio/" + id, {{"Range", "bytes=1048000-99999999"}});
  ASSERT_EQ(clamped.status, 206);
  EXPECT_EQ(clamped.body, bytes.substr(1048000));

  auto unsatisfiable = Get("/audio/" + id, {{"Range", "bytes=1048576-"}});
  ASSERT_EQ(unsatisfiable.status, 416);
  EXPECT_EQ(unsatisfiable.Header("content-range"), "bytes */1048576");
  EXPECT_EQ(ErrorOf(unsatisfiable), "RangeNotSatisfiable");
}

TEST_F(StreamerTest, MultipleRangesAreMultipart) {
  const std::string bytes = RandomBytes(10000, 3);
  const std::string id = AddTrack(bytes, "none");
  auto r = Get("/audio/" + id, {{"Range", "bytes=0-9,-10"}});
  ASSERT_EQ(r.status, 206);
  const std::string type = r.Header("content-type");
  ASSERT_TRUE(type.starts_with("multipart/byteranges; boundary=")) << type;
  const std::string boundary = type.substr(type.find('=') + 1);
  EXPECT_NE(r.body.find("Content-Range: bytes 0-9/10000\r\n\r\n" + bytes.substr(0, 10)), std::string::npos);
  EXPECT_NE(r.body.find("Content-Range: bytes 9990-9999/10000\r\n\r\n" + bytes.substr(9990)), std::string::npos);
  EXPECT_TRUE(r.body.ends_with("--" + boundary + "--\r\n"));
  EXPECT_EQ(r.Header("content-length"), std::to_string(r.body.size()));
}

TEST_F(StreamerTest, ConditionalRequests) {
  const std::string bytes = RandomBytes(5000, 4);
  const std::string id = AddTrack(bytes, "none");
  const std::string etag = "\"" + id + "\"";
  auto not_modified = Get("/audio/" + id, {{"If-None-Match", etag}});
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_TRUE(not_modified.body.empty());
  EXPECT_EQ(Get("/audio/" + id, {{"If-None-Match", "\"other\""}}).status, 200);

  auto if_range_hit = Get("/audio/" + id, {{"Range", "bytes=0-9"}, {"If-Range", etag}});
  EXPECT_EQ(if_range_hit.status, 206);
  auto if_range_miss = Get("/audio/" + id, {{"Range", "bytes=0-9"}, {"If-Range", "\"stale\""}});
  EXPECT_EQ(if_range_miss.status, 200);
  EXPECT_EQ(if_range_miss.body, bytes);
  // Objects in a store are named by their ETag alone (each instance would date them its own way).
  if (kStreamerOnObjectStore) return;
  auto last_modified = Get("/audio/" + id).Header("last-modified");
  EXPECT_EQ(Get("/audio/" + id, {{"Range", "bytes=0-9"}, {"If-Range", last_modified}}).status, 206);
}

TEST_F(StreamerTest, HeadGivesHeadersWithoutBody) {
  const std::string id = AddTrack(RandomBytes(4096, 5), "none");
  auto head = Fetch(port_, "HEAD", "/audio/" + id);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), "4096");
  EXPECT_EQ(head.Header("accept-ranges"), "bytes");
  EXPECT_TRUE(head.body.empty());
}

TEST_F(StreamerTest, SupporterGate) {
  const std::string bytes = RandomBytes(20000, 6);
  const std::string id = AddTrack(bytes, "any");

  auto anonymous = Get("/audio/" + id);
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(ErrorOf(anonymous), "AuthenticationRequired");
  EXPECT_EQ(Fetch(port_, "HEAD", "/audio/" + id).status, 401);

  // The owner passes without asking atprotofans.
  auto owner = Get("/audio/" + id, {{"Authorization", "Bearer " + Ticket(kArtist, id)}});
  EXPECT_EQ(owner.status, 200);
  EXPECT_EQ(owner.body, bytes);
  EXPECT_EQ(owner.Header("cache-control").find("private"), 0u);
  EXPECT_EQ(supporters_.requests(), 0);

  // A supporter passes; the query is the real XRPC shape.
  auto fan = Get("/audio/" + id, {{"Authorization", "Bearer " + Ticket(kFan, id)}, {"Range", "bytes=0-99"}});
  EXPECT_EQ(fan.status, 206);
  EXPECT_EQ(fan.body, bytes.substr(0, 100));
  EXPECT_EQ(supporters_.last_query(),
            "supporter=did:plc:fan&subject=did:plc:artist&signer=did:plc:artist");

  // A non-supporter gets 402 with the header the frontend looks for; HEAD says the same.
  auto stranger = Get("/audio/" + id, {{"Authorization", "Bearer " + Ticket(kStranger, id)}});
  EXPECT_EQ(stranger.status, 402);
  EXPECT_EQ(stranger.Header("x-support-required"), "true");
  EXPECT_EQ(ErrorOf(stranger), "SupportRequired");
  auto head = Fetch(port_, "HEAD", "/audio/" + id, {{"Authorization", "Bearer " + Ticket(kStranger, id)}});
  EXPECT_EQ(head.status, 402);
  auto head_fan = Fetch(port_, "HEAD", "/audio/" + id, {{"Authorization", "Bearer " + Ticket(kFan, id)}});
  EXPECT_EQ(head_fan.status, 200);
  EXPECT_TRUE(head_fan.body.empty());
}

TEST_F(StreamerTest, TicketTravelsAsCookieOrQueryAndIsNeverLogged) {
  const std::string id = AddTrack(RandomBytes(1000, 7), "copyright");
  const std::string ticket = Ticket(kStranger, id);
  EXPECT_EQ(Get("/audio/" + id, {{"Cookie", "theme=dark; plyr_ticket=" + ticket}}).status, 200);
  EXPECT_EQ(Get("/audio/" + id + "?ticket=" + ticket).status, 200);
  EXPECT_EQ(Get("/audio/" + id + "?ticket=" + ticket + "x").status, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the log flushes once a second
  const std::string log = process_->log();
  EXPECT_EQ(log.find(ticket.substr(3, 40)), std::string::npos) << "a ticket leaked into the log";
  EXPECT_NE(log.find("ticket=REDACTED"), std::string::npos);
}

TEST_F(StreamerTest, CopyrightGateAdmitsAnyValidTicket) {
  const std::string id = AddTrack(RandomBytes(1000, 8), "copyright");
  EXPECT_EQ(Get("/audio/" + id).status, 401);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + Ticket(kStranger, id)}}).status, 200);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + Ticket(kStranger, "*")}}).status, 200);
  EXPECT_EQ(supporters_.requests(), 0);
}

TEST_F(StreamerTest, BadTicketsAre401) {
  const std::string id = AddTrack(RandomBytes(1000, 9), "copyright");
  const std::string other = AddTrack(RandomBytes(1000, 10), "copyright");
  const std::string good = Ticket(kFan, id);
  std::string forged = good;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  const std::vector<std::string> bad = {
      Ticket(kFan, id, -10),                         // expired
      Ticket(kFan, other),                           // for another file
      forged,                                        // signature does not verify
      good.substr(0, good.size() / 2),               // truncated
      "v1.garbage.garbage",
      std::string(3000, 'a'),
  };
  for (const auto& t : bad) {
    auto r = Get("/audio/" + id, {{"Authorization", "Bearer " + t}});
    EXPECT_EQ(r.status, 401) << t.substr(0, 60);
    EXPECT_EQ(ErrorOf(r), "InvalidTicket");
  }
  // A ticket signed by a key the streamer does not trust.
  auto foreign = streamer::GenerateTicketKeyPair();
  auto r = Get("/audio/" + id, {{"Authorization", "Bearer " + streamer::MintTicket(foreign, {kFan, id, std::time(nullptr) + 60})}});
  EXPECT_EQ(r.status, 401);
}

TEST_F(StreamerTest, TicketMintCommandMintsWhatTheStreamerAccepts) {
  const std::string id = AddTrack(RandomBytes(1000, 11), "copyright");
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"ticket", "mint", "--data", process_->data_dir().string(), "--viewer",
                                          kFan, "--file", id, "--ttl", "60"},
                                         &out),
            0)
      << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + out}}).status, 200);
  ASSERT_NE(PlyrProcess::RunToCompletion({"ticket", "mint", "--data", process_->data_dir().string(), "--viewer",
                                          "not-a-did"},
                                         &out),
            0);
}

TEST_F(StreamerTest, SupporterAnswersAreCachedAndCoalesced) {
  const std::string id = AddTrack(RandomBytes(1000, 12), "any");
  supporters_.SetMode(FakeSupporterServer::Mode::kSlow, std::chrono::milliseconds(300));
  const std::string ticket = Ticket(kFan, id);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (Get("/audio/" + id, {{"Authorization", "Bearer " + ticket}}).status == 200) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(supporters_.requests(), 1) << "identical lookups in flight must share one request";
  supporters_.SetMode(FakeSupporterServer::Mode::kNormal);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + ticket}}).status, 200);
  EXPECT_EQ(supporters_.requests(), 1) << "a cached answer must not ask again";
  // "Not a supporter" is cached too.
  const std::string stranger = Ticket(kStranger, id);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + stranger}}).status, 402);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + stranger}}).status, 402);
  EXPECT_EQ(supporters_.requests(), 2);
}

TEST_F(StreamerTest, RenditionsShareTheirTracksGate) {
  const std::string original = Upload(RandomBytes(3000, 13), "audio/flac");
  const std::string mp3 = Upload(RandomBytes(1000, 14), "audio/mpeg");
  auto put = PutTrack(original, R"({"owner_did":"did:plc:artist","gate":"copyright","renditions":{"mp3-128":")" +
                                    mp3 + "\"}}");
  ASSERT_EQ(put.status, 200) << put.body;
  const std::string ticket = Ticket(kFan, original);
  auto r = Get("/audio/" + original + "?rendition=mp3-128", {{"Authorization", "Bearer " + ticket}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 1000u);
  EXPECT_EQ(r.Header("content-type"), "audio/mpeg");
  EXPECT_EQ(Get("/audio/" + original + "?rendition=opus-96", {{"Authorization", "Bearer " + ticket}}).status, 404);
  // The rendition's own id does not bypass the gate.
  EXPECT_EQ(Get("/audio/" + mp3).status, 401);
  EXPECT_EQ(Get("/audio/" + mp3, {{"Authorization", "Bearer " + ticket}}).status, 200);
}

TEST_F(StreamerTest, ARenditionCannotNameAnotherOwnersFile) {
  // Another owner's gated track, and a public track that tries to serve its bytes.
  const std::string gated = Upload(RandomBytes(3000, 17), "audio/flac");
  ASSERT_EQ(PutTrack(gated, R"({"owner_did":"did:plc:artist","gate":"copyright"})").status, 200);
  const std::string mine = Upload(RandomBytes(2000, 18), "audio/flac");
  auto refused = PutTrack(mine, R"({"owner_did":"did:plc:thief","gate":"none","renditions":{"mp3-128":")" + gated +
                                    "\"}}");
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("FileOfAnotherTrack"), std::string::npos) << refused.body;
  EXPECT_EQ(Get("/audio/" + mine + "?rendition=mp3-128").status, 404) << "nothing was recorded";
  EXPECT_EQ(Get("/audio/" + gated).status, 401) << "the gated file keeps its own gate";
}

TEST_F(StreamerTest, ThePublicCacheControlIsTheOperatorsChoice) {
  Restart({"--streamer-public-cache-control", "public, max-age=3600"});
  const std::string id = AddTrack(RandomBytes(1000, 19), "none");
  EXPECT_EQ(Get("/audio/" + id).Header("cache-control"), "public, max-age=3600");
  const std::string gated = AddTrack(RandomBytes(1000, 20), "copyright");
  EXPECT_EQ(Get("/audio/" + gated, {{"Authorization", "Bearer " + Ticket(kFan, gated)}}).Header("cache-control"),
            "private, max-age=3600");
}

TEST_F(StreamerTest, TicketsOfEveryConfiguredKeyVerify) {
  const auto old_keys = streamer::LoadOrCreateTicketKeys(process_->data_dir());
  ASSERT_TRUE(old_keys);
  const auto next = streamer::GenerateTicketKeyPair();
  Restart({"--ticket-public-key", streamer::ToHex(next.public_key) + "," + streamer::ToHex(old_keys->public_key)});
  const std::string id = AddTrack(RandomBytes(1000, 21), "copyright");
  const auto mint = [&](const streamer::TicketKeyPair& keys) {
    return streamer::MintTicket(keys, {kFan, id, static_cast<std::int64_t>(std::time(nullptr)) + 600});
  };
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + mint(next)}}).status, 200);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + mint(*old_keys)}}).status, 200);
  EXPECT_EQ(Get("/audio/" + id, {{"Authorization", "Bearer " + mint(streamer::GenerateTicketKeyPair())}}).status,
            401);
}

// The value of the series of `name` whose labels include every one of `labels` (k="v"), or -1.
double MetricValue(const std::string& text, const std::string& name, const std::vector<std::string>& labels) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    bool all = true;
    for (const auto& label : labels) all = all && line.find(label) != std::string::npos;
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

TEST_F(StreamerTest, MetricsCountTicketsGateDecisionsAndSupporterLookups) {
  const std::string gated = AddTrack(RandomBytes(1000, 22), "any");
  EXPECT_EQ(Get("/audio/" + gated).status, 401);                                           // no ticket
  EXPECT_EQ(Get("/audio/" + gated, {{"Authorization", "Bearer v1.bad.ticket"}}).status, 401);  // malformed
  const std::string ticket = Ticket(kFan, gated);
  EXPECT_EQ(Get("/audio/" + gated, {{"Authorization", "Bearer " + ticket}}).status, 200);  // upstream
  EXPECT_EQ(Get("/audio/" + gated, {{"Authorization", "Bearer " + ticket}}).status, 200);  // cache
  const std::string m = Get("/metrics").body;
  EXPECT_EQ(MetricValue(m, "plyr_streamer_gate_decisions_total", {"decision=\"no_ticket\"", "gate=\"any\""}), 1) << m;
  EXPECT_EQ(MetricValue(m, "plyr_streamer_gate_decisions_total", {"decision=\"bad_ticket\"", "gate=\"any\""}), 1);
  EXPECT_EQ(MetricValue(m, "plyr_streamer_gate_decisions_total", {"decision=\"allowed\"", "gate=\"any\""}), 2);
  EXPECT_EQ(MetricValue(m, "plyr_streamer_ticket_verifications_total", {"outcome=\"malformed\""}), 1);
  EXPECT_EQ(MetricValue(m, "plyr_streamer_ticket_verifications_total", {"outcome=\"ok\""}), 2);
  EXPECT_EQ(MetricValue(m, "plyr_streamer_supporter_lookups_total", {"source=\"upstream\""}), 1);
  EXPECT_EQ(MetricValue(m, "plyr_streamer_supporter_lookups_total", {"source=\"cache\""}), 1);
}

TEST_F(StreamerTest, ATakedownRemovesTheAudioAtOnceAndForGood) {
  const std::string bytes = RandomBytes(5000, 23);
  const std::string id = AddTrack(bytes, "none");
  const std::string mp3 = Upload(RandomBytes(2000, 24), "audio/mpeg");
  const std::string other = Upload(RandomBytes(3000, 25), "audio/flac");
  ASSERT_EQ(PutTrack(other, R"({"owner_did":"did:plc:artist","renditions":{"mp3-128":")" + mp3 + "\"}}").status, 200);
  ASSERT_EQ(Get("/audio/" + id).status, 200);

  EXPECT_EQ(Fetch(port_, "DELETE", "/v1/files/" + id).status, 401);
  // A file a track names is refused unless forced, and the answer says which tracks.
  auto refused = Fetch(port_, "DELETE", "/v1/files/" + id, Admin());
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.body.find("FileInUse"), std::string::npos);
  EXPECT_NE(refused.body.find(id), std::string::npos);
  EXPECT_EQ(Get("/audio/" + id).status, 200) << "nothing removed by a refusal";

  auto forced = Fetch(port_, "DELETE", "/v1/files/" + id + "?force=1", Admin());
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_NE(forced.body.find(R"("tracks_removed":[")" + id + "\"]"), std::string::npos) << forced.body;
  EXPECT_EQ(Get("/audio/" + id).status, 404);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + id, Admin()).status, 404);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/tracks/" + id, Admin()).status, 404);
  EXPECT_EQ(Fetch(port_, "DELETE", "/v1/files/" + id, Admin()).status, 404);

  // A rendition's file: dropped from its track, which still plays its own file.
  auto rendition = Fetch(port_, "DELETE", "/v1/files/" + mp3 + "?force=1", Admin());
  ASSERT_EQ(rendition.status, 200) << rendition.body;
  EXPECT_NE(rendition.body.find(other + "/mp3-128"), std::string::npos) << rendition.body;
  EXPECT_EQ(Get("/audio/" + other + "?rendition=mp3-128").status, 404);
  EXPECT_EQ(Get("/audio/" + mp3).status, 404);
  EXPECT_EQ(Get("/audio/" + other).status, 200);

  // Removing a track with ?files=1 takes its files along.
  auto with_files = Fetch(port_, "DELETE", "/v1/tracks/" + other + "?files=1", Admin());
  ASSERT_EQ(with_files.status, 200) << with_files.body;
  EXPECT_NE(with_files.body.find(other), std::string::npos);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + other, Admin()).status, 404);

  // And it stays removed after a restart.
  Restart();
  EXPECT_EQ(Get("/audio/" + id).status, 404);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + id, Admin()).status, 404);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + other, Admin()).status, 404);
}

TEST_F(StreamerTest, FilesAreListedAndUnnamedOnesCollected) {
  const std::string kept = AddTrack(RandomBytes(1000, 26), "none");
  const std::string orphan = Upload(RandomBytes(1000, 27), "audio/mpeg");
  auto listing = Fetch(port_, "GET", "/v1/files?limit=1000", Admin());
  ASSERT_EQ(listing.status, 200) << listing.body;
  EXPECT_NE(listing.body.find(R"("file_id":")" + kept + R"(",)"), std::string::npos) << listing.body;
  EXPECT_NE(listing.body.find(orphan), std::string::npos);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files?limit=0", Admin()).status, 400);
  auto page = Fetch(port_, "GET", "/v1/files?limit=1", Admin());
  EXPECT_NE(page.body.find(R"("next")"), std::string::npos) << page.body;

  // A fresh upload is not collected (its track may be a moment away); with no grace it is.
  auto young = Fetch(port_, "POST", "/v1/gc", Admin());
  ASSERT_EQ(young.status, 200) << young.body;
  EXPECT_EQ(young.body.find(orphan), std::string::npos) << young.body;
  auto gc = Fetch(port_, "POST", "/v1/gc?min_age_s=0", Admin());
  ASSERT_EQ(gc.status, 200) << gc.body;
  EXPECT_NE(gc.body.find(orphan), std::string::npos) << gc.body;
  EXPECT_EQ(gc.body.find(kept), std::string::npos) << "a file a track names is kept";
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + orphan, Admin()).status, 404);
  EXPECT_EQ(Get("/audio/" + kept).status, 200);
}

// The disk fills under the running streamer (no file of it may grow: a write past the limit fails
// with EFBIG, as with ENOSPC): every write is 507 and stores nothing; when space returns, the same
// requests succeed without a restart.
TEST_F(StreamerTest, AFullDiskIs507ForEveryWriteAndPassesWhenSpaceReturns) {
  const std::string kept = AddTrack(RandomBytes(1000, 40), "none");
  const std::string pending = Upload(RandomBytes(1000, 41), "audio/flac");
  const std::string more = RandomBytes(200000, 42);
  ASSERT_TRUE(process_->LimitFileSizeNow(1));
  auto upload = Fetch(port_, "PUT", "/v1/files", Admin(), more);
  EXPECT_EQ(upload.status, 507) << upload.body;
  EXPECT_NE(upload.body.find(R"("error":"StorageError")"), std::string::npos) << upload.body;
  auto track = PutTrack(pending, R"({"owner_did":"did:plc:artist","gate":"none"})");
  EXPECT_EQ(track.status, 507) << track.body;
  auto removed = Fetch(port_, "DELETE", "/v1/tracks/" + kept, Admin());
  EXPECT_EQ(removed.status, 507) << removed.body;
  EXPECT_EQ(Get("/audio/" + kept).status, 200) << "streaming needs no space";

  ASSERT_TRUE(process_->LimitFileSizeNow(0));
  EXPECT_EQ(Get("/audio/" + pending).status, 404) << "the refused track was not recorded";
  EXPECT_EQ(Fetch(port_, "PUT", "/v1/files", Admin(), more).status, 201);
  EXPECT_EQ(PutTrack(pending, R"({"owner_did":"did:plc:artist","gate":"none"})").status, 200);
  EXPECT_EQ(Fetch(port_, "DELETE", "/v1/tracks/" + kept, Admin()).status, 204);
  EXPECT_EQ(Get("/audio/" + pending).status, 200);
  EXPECT_TRUE(process_->Running());
}

TEST_F(StreamerTest, ATrackRemovedWhoseFileCannotBeIsStill200AndNamesTheFileLeft) {
  // On a store, the file that cannot be removed is the object (streamer_s3_test.cpp).
  if (kStreamerOnObjectStore) GTEST_SKIP() << "a local file only";
  const std::string id = AddTrack(RandomBytes(3000, 43), "none");
  // Put a directory where the blob was: unlink fails (EISDIR), as a file the disk cannot let go of.
  namespace fs = std::filesystem;
  const fs::path blob = process_->data_dir() / "streamer" / "blobs" / id.substr(0, 2) / id;
  ASSERT_TRUE(fs::remove(blob));
  ASSERT_TRUE(fs::create_directory(blob));
  ASSERT_TRUE(fs::create_directory(blob / "x"));
  auto removed = Fetch(port_, "DELETE", "/v1/tracks/" + id + "?files=1", Admin());
  ASSERT_EQ(removed.status, 200) << removed.body;
  const auto body = boost::json::parse(removed.body).as_object();
  EXPECT_TRUE(body.at("files_removed").as_array().empty()) << removed.body;
  ASSERT_EQ(body.at("files_not_removed").as_array().size(), 1u) << removed.body;
  EXPECT_EQ(body.at("files_not_removed").as_array()[0].at("file_id").as_string(), id) << removed.body;
  EXPECT_EQ(body.at("files_not_removed").as_array()[0].at("error").as_string(), "StorageError") << removed.body;
  EXPECT_EQ(Fetch(port_, "GET", "/v1/tracks/" + id, Admin()).status, 404) << "the track is gone";
  // Once the obstacle is gone, the file (named by no track now) is removed as any other.
  fs::remove_all(blob);
  EXPECT_EQ(Fetch(port_, "DELETE", "/v1/files/" + id, Admin()).status, 200);
  EXPECT_EQ(Fetch(port_, "GET", "/v1/files/" + id, Admin()).status, 404);
}

TEST_F(StreamerTest, EverythingSurvivesARestart) {
  const std::string bytes = RandomBytes(50000, 15);
  const std::string id = AddTrack(bytes, "copyright");
  const std::string ticket = Ticket(kFan, id);
  EXPECT_EQ(process_->Stop(), 0) << process_->log();
  Start({});
  auto r = Get("/audio/" + id, {{"Authorization", "Bearer " + ticket}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, bytes);
}

TEST_F(StreamerTest, SigtermFinishesInFlightRequestsThenExits) {
  const std::string bytes = RandomBytes(8 << 20, 16);
  const std::string id = AddTrack(bytes, "none");
  // Start a large download, read only its first bytes, then ask the process to stop.
  RawConnection slow(port_);
  ASSERT_TRUE(slow.Send("GET /audio/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got = slow.ReadSome(std::chrono::seconds(2));
  ASSERT_FALSE(got.empty());
  std::thread stopper([&] { EXPECT_EQ(process_->Stop(), 0); });
  bool closed = false;
  got += slow.ReadUntilClose(std::chrono::seconds(10), &closed);
  stopper.join();
  EXPECT_TRUE(closed);
  auto body_start = got.find("\r\n\r\n");
  ASSERT_NE(body_start, std::string::npos);
  EXPECT_EQ(got.size() - body_start - 4, bytes.size()) << "the in-flight response must complete";
}

TEST_F(StreamerTest, ADownloadThatOutlastsTheDrainDeadlineIsCutAndTheProcessStillExitsCleanly) {
  const std::string bytes = RandomBytes(16 << 20, 17);
  const std::string id = AddTrack(bytes, "none");
  // A client that asks for 16 MiB and reads nothing: the write stalls on a full socket.
  RawConnection stuck(port_);
  ASSERT_TRUE(stuck.Send("GET /audio/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto stop_started = std::chrono::steady_clock::now();
  EXPECT_EQ(process_->Stop(), 0) << process_->log();
  // The fixture's drain deadline is 2 s; then the rest are closed and given at most a second.
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, std::chrono::seconds(6));
  const std::string log = process_->log();
  EXPECT_NE(log.find("drain deadline passed with 1 connections open; closing them"), std::string::npos) << log;
  // The cut session ended on its own (its access line is written), before the process stopped.
  const auto aborted = log.find("aborted=true");
  ASSERT_NE(aborted, std::string::npos) << log;
  EXPECT_LT(aborted, log.find("info stopped")) << log;
  EXPECT_EQ(log.find("did not close in time"), std::string::npos) << log;
}

}  // namespace
}  // namespace plyr::testing

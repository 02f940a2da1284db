// The labeler binary end to end: emitting, queryLabels, subscribeLabels, did.json and the
// plyr.fm drop-in endpoints, over real HTTP and WebSocket on loopback.
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "tests/labeler/labeler_fixture.h"

namespace plyr::testing {
namespace {

using boost::json::array;
using boost::json::object;

object Json(const HttpResult& r) { return boost::json::parse(r.body).as_object(); }

std::string Query(const std::string& params) { return "/xrpc/com.atproto.label.queryLabels?" + params; }

std::vector<std::int64_t> Range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (auto i = from; i <= to; ++i) out.push_back(i);
  return out;
}


// ---------------------------------------------------------------------------------------------
// Emitting and queryLabels

TEST_F(LabelerTest, EmittedLabelsAreSignedByThePublishedKey) {
  auto stored = Emit(array{object{{"uri", PostUri(1)}, {"val", "spam"}},
                           object{{"uri", PostUri(2)}, {"val", "copyright-violation"}, {"exp", "2099-01-01T00:00:00.000Z"}}});
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].as_object().at("seq").as_int64() + 1, stored[1].as_object().at("seq").as_int64());

  auto r = Fetch(port_, "GET", Query("uriPatterns=" + PostUri(1) + "&uriPatterns=" + PostUri(2)));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.Header("content-type").find("application/json"), std::string::npos);
  EXPECT_EQ(r.body.find("null"), std::string::npos) << r.body;
  auto body = Json(r);
  auto& labels = body.at("labels").as_array();
  ASSERT_EQ(labels.size(), 2u);
  const std::string did_key = DidKey();
  ASSERT_FALSE(did_key.empty());
  for (const auto& value : labels) {
    const auto& o = value.as_object();
    EXPECT_EQ(o.at("ver").as_int64(), 1);
    EXPECT_EQ(o.at("src").as_string(), kLabelerDid);
    EXPECT_FALSE(o.contains("neg"));  // omitted unless true
    EXPECT_EQ(labeler::CheckDatetime(std::string(o.at("cts").as_string())), "");
    auto label = LabelFromQueryJson(o);
    ASSERT_EQ(label.sig.size(), 64u);
    EXPECT_TRUE(labeler::VerifyWithDidKey(did_key, labeler::EncodeUnsignedLabel(label), label.sig));
  }
  EXPECT_EQ(labels[1].as_object().at("exp").as_string(), "2099-01-01T00:00:00.000Z");
  EXPECT_EQ(body.at("cursor").as_string(), std::to_string(stored[1].as_object().at("seq").as_int64()));
}

TEST_F(LabelerTest, AfterAKeyRotationResignServesEveryLabelUnderTheNewKey) {
  Emit(array{object{{"uri", PostUri(1)}, {"val", "spam"}}, object{{"uri", PostUri(2)}, {"val", "porn"}}});
  const std::string old_key = DidKey();
  auto before = Json(Fetch(port_, "GET", Query("uriPatterns=" + PostUri(1) + "&uriPatterns=" + PostUri(2))));
  ASSERT_EQ(process_->Stop(), 0);

  // The procedure of docs/labeler.md: keep the old key aside, make a new one, re-sign the log.
  const auto key_file = process_->data_dir() / "labeler" / "signing-key.json";
  std::filesystem::rename(key_file, process_->data_dir() / "labeler" / "signing-key.old.json");
  const std::string data = process_->data_dir().string();
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"labeler", "keygen", "--data", data}, &out), 0) << out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"labeler", "resign", "--data", data}, &out), 0) << out;
  EXPECT_NE(out.find("re-signed 2 labels"), std::string::npos) << out;
  const std::string new_key = DidKey();
  ASSERT_NE(new_key, old_key);

  Start({});
  auto after = Json(Fetch(port_, "GET", Query("uriPatterns=" + PostUri(1) + "&uriPatterns=" + PostUri(2))));
  const auto& was = before.at("labels").as_array();
  const auto& now = after.at("labels").as_array();
  ASSERT_EQ(now.size(), 2u);
  for (std::size_t i = 0; i < now.size(); ++i) {
    const auto label = LabelFromQueryJson(now[i].as_object());
    EXPECT_TRUE(labeler::VerifyWithDidKey(new_key, labeler::EncodeUnsignedLabel(label), label.sig));
    EXPECT_FALSE(labeler::VerifyWithDidKey(old_key, labeler::EncodeUnsignedLabel(label), label.sig));
    EXPECT_EQ(now[i].as_object().at("cts"), was[i].as_object().at("cts")) << "cts stays";
  }
  EXPECT_EQ(after.at("cursor"), before.at("cursor")) << "seq stays";
  // New labels are signed with the new key too.
  auto stored = Emit(array{object{{"uri", PostUri(3)}, {"val", "spam"}}});
  ASSERT_EQ(stored.size(), 1u);
  const auto fresh = LabelFromQueryJson(Json(Fetch(port_, "GET", Query("uriPatterns=" + PostUri(3))))
                                            .at("labels").as_array()[0].as_object());
  EXPECT_TRUE(labeler::VerifyWithDidKey(new_key, labeler::EncodeUnsignedLabel(fresh), fresh.sig));
}

TEST_F(LabelerTest, MetricsShowTheNewestSeq) {
  const std::int64_t last = EmitMany(0, 7);
  auto metrics = Fetch(port_, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("plyr_labeler_head_seq " + std::to_string(last)), std::string::npos) << metrics.body;
  Restart();
  metrics = Fetch(port_, "GET", "/metrics");
  EXPECT_NE(metrics.body.find("plyr_labeler_head_seq " + std::to_string(last)), std::string::npos)
      << "the log's head after a restart: " << metrics.body;
}

TEST_F(LabelerTest, QueryLabelsPatternsSourcesAndPaging) {
  EmitMany(1, 5);  // PostUri(1..5)
  Emit(array{object{{"uri", "did:plc:someaccount"}, {"val", "spam"}}});
  auto count = [&](const std::string& params) -> std::size_t {
    auto r = Fetch(port_, "GET", Query(params));
    EXPECT_EQ(r.status, 200) << params << " " << r.body;
    return r.status == 200 ? Json(r).at("labels").as_array().size() : 0;
  };
  EXPECT_EQ(count("uriPatterns=" + PostUri(1) + "," + PostUri(2)), 2u);  // plyr.fm's comma form
  EXPECT_EQ(count("uriPatterns=at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/*"), 5u);
  EXPECT_EQ(count("uriPatterns=*"), 6u);
  EXPECT_EQ(count("uriPatterns=AT://*"), 0u);  // prefixes are case-sensitive
  EXPECT_EQ(count("uriPatterns=did:plc:someaccount"), 1u);
  EXPECT_EQ(count("uriPatterns=*&sources=" + std::string(kLabelerDid)), 6u);
  EXPECT_EQ(count("uriPatterns=*&sources=did:plc:other"), 0u);

  // Paging: cursor = last seq of the page, order by seq, no cursor on an empty page.
  std::vector<std::int64_t> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    auto r = Fetch(port_, "GET", Query("uriPatterns=*&limit=4" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    ASSERT_EQ(r.status, 200);
    auto body = Json(r);
    auto& labels = body.at("labels").as_array();
    if (labels.empty()) {
      EXPECT_FALSE(body.contains("cursor"));
      break;
    }
    EXPECT_LE(labels.size(), 4u);
    cursor = std::string(body.at("cursor").as_string());
    seen.push_back(std::stoll(cursor));
  }
  EXPECT_EQ(seen, (std::vector<std::int64_t>{4, 6}));
}

TEST_F(LabelerTest, QueryLabelsRefusesBadParameters) {
  for (const std::string params : {"", "limit=5", "uriPatterns=at://*/app.bsky.feed.post/*", "uriPatterns=a*b",
                                   "uriPatterns=*&limit=0", "uriPatterns=*&limit=251", "uriPatterns=*&limit=ten",
                                   "uriPatterns=*&limit=-1", "uriPatterns=*&cursor=abc", "uriPatterns=*&cursor=-3",
                                   "uriPatterns=*&sources=notadid"}) {
    auto r = Fetch(port_, "GET", Query(params));
    EXPECT_EQ(r.status, 400) << params;
    if (r.status == 400) {
      EXPECT_EQ(Json(r).at("error").as_string(), "InvalidRequest") << params;
      EXPECT_TRUE(Json(r).contains("message"));
    }
  }
  EXPECT_EQ(Fetch(port_, "GET", Query("uriPatterns=*&limit=250")).status, 200);
  EXPECT_EQ(Fetch(port_, "GET", Query("uriPatterns=*&limit=1")).status, 200);
}

TEST_F(LabelerTest, EmitRefusesBadInputAndMissingToken) {
  const std::string one = R"({"uri":"at://did:plc:abc/app.bsky.feed.post/1","val":"spam"})";
  EXPECT_EQ(Fetch(port_, "POST", "/v1/labels", {}, one).status, 401);
  EXPECT_EQ(Fetch(port_, "POST", "/v1/labels", {{"Authorization", "Bearer wrong"}}, one).status, 401);
  EXPECT_EQ(Fetch(port_, "POST", "/emit-label", {{"X-Moderation-Key", "wrong"}}, one).status, 401);
  EXPECT_EQ(Fetch(port_, "POST", "/internal/labels", {}, R"({"uris":[]})").status, 401);
  EXPECT_EQ(Fetch(port_, "POST", "/emit-label", {{"X-Moderation-Key", token_}}, one).status, 200);

  auto expect_400 = [&](const std::string& body) {
    auto r = Fetch(port_, "POST", "/v1/labels", Admin(), body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    if (r.status == 400) {
      EXPECT_EQ(Json(r).at("error").as_string(), "InvalidRequest");
    }
  };
  const std::string uri = R"("uri":"at://did:plc:abc/app.bsky.feed.post/1")";
  expect_400("{" + uri + R"(,"val":")" + std::string(129, 'a') + "\"}");
  expect_400("{" + uri + ",\"val\":\"sp\xff\xfe" + "am\"}");
  expect_400("{" + uri + R"(,"val":""})");
  expect_400("{" + uri + R"(,"val":"has space"})");
  expect_400(R"({"uri":"did:nope","val":"spam"})");
  expect_400(R"({"uri":"https://example.com/x","val":"spam"})");
  expect_400(R"({"uri":"did:PLC:abc","val":"spam"})");
  expect_400("{" + uri + R"(,"val":"spam","exp":"2024-10-01T12:00:00.000z"})");
  expect_400("{" + uri + R"(,"val":"spam","exp":"2024-10-01 12:00:00Z"})");
  expect_400("{" + uri + R"(,"val":"spam","exp":"2024-10-01T12:00Z"})");
  expect_400("{" + uri + R"(,"val":"spam","cid":"not-a-cid"})");
  expect_400("{" + uri + R"(,"val":"spam","neg":"yes"})");
  expect_400(R"({"labels":[]})");
  expect_400(R"({"labels":"x"})");
  expect_400("not json");
  expect_400("[1,2]");
  EXPECT_EQ(Fetch(port_, "POST", "/v1/labels", Admin(), "{" + uri + ",\"val\":\"" + std::string(128, 'a') + "\"}").status,
            200);

  array many;
  for (int i = 0; i < 1001; ++i) many.push_back(object{{"uri", PostUri(i)}, {"val", "spam"}});
  auto r = Fetch(port_, "POST", "/v1/labels", Admin(), boost::json::serialize(object{{"labels", many}}));
  EXPECT_EQ(r.status, 413) << r.body;
  // Nothing of a refused batch is stored.
  auto q = Fetch(port_, "GET", Query("uriPatterns=*&limit=250"));
  EXPECT_EQ(Json(q).at("labels").as_array().size(), 2u);
}

TEST_F(LabelerTest, DidDocumentForDidWeb) {
  // With a did:plc configured there is no did.json to serve.
  EXPECT_EQ(Fetch(port_, "GET", "/.well-known/did.json").status, 404);
  Restart({"--labeler-did", "did:web:labeler.example.com"});
  auto r = Fetch(port_, "GET", "/.well-known/did.json");
  ASSERT_EQ(r.status, 200) << r.body;
  auto doc = Json(r);
  EXPECT_EQ(doc.at("id").as_string(), "did:web:labeler.example.com");
  auto& vm = doc.at("verificationMethod").as_array().at(0).as_object();
  EXPECT_EQ(vm.at("id").as_string(), "did:web:labeler.example.com#atproto_label");
  EXPECT_EQ(vm.at("type").as_string(), "Multikey");
  EXPECT_EQ(vm.at("controller").as_string(), "did:web:labeler.example.com");
  EXPECT_EQ("did:key:" + std::string(vm.at("publicKeyMultibase").as_string()), DidKey());
  auto& service = doc.at("service").as_array().at(0).as_object();
  EXPECT_EQ(service.at("id").as_string(), "#atproto_labeler");
  EXPECT_EQ(service.at("type").as_string(), "AtprotoLabeler");
  EXPECT_EQ(service.at("serviceEndpoint").as_string(), "https://labeler.example.com");
}

TEST_F(LabelerTest, DefaultDidIsTheListenersDidWeb) {
  process_->Stop();
  process_ = std::make_unique<PlyrProcess>(dir_.path() / "data");
  ASSERT_TRUE(process_->StartServe({"labeler"})) << process_->log();
  port_ = process_->port("labeler");
  const std::string did = "did:web:localhost%3A" + std::to_string(port_);
  auto r = Fetch(port_, "GET", "/.well-known/did.json");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Json(r).at("id").as_string(), did);
  EXPECT_EQ(Json(r).at("service").as_array().at(0).as_object().at("serviceEndpoint").as_string(),
            "http://localhost:" + std::to_string(port_));
  token_ = process_->admin_token();
  auto stored = Emit(array{object{{"uri", PostUri(1)}, {"val", "spam"}}});
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].as_object().at("label").as_object().at("src").as_string(), did);
}

// ---------------------------------------------------------------------------------------------
// plyr.fm drop-in

TEST_F(LabelerTest, PlyrFmMachineApiUsesOneActiveRule) {
  const std::string a = PostUri(1), b = PostUri(2), c = PostUri(3);
  Headers key = {{"X-Moderation-Key", token_}, {"Content-Type", "application/json"}};
  auto emit = [&](const object& body) {
    auto r = Fetch(port_, "POST", "/emit-label", key, boost::json::serialize(body));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? Json(r) : object{};
  };
  auto first = emit(object{{"uri", a}});  // val defaults to copyright-violation
  EXPECT_EQ(first.at("label").as_object().at("val").as_string(), "copyright-violation");
  EXPECT_GT(first.at("seq").as_int64(), 0);
  emit(object{{"uri", b}, {"context", object{{"track_title", "x"}, {"highest_score", 91}}}});
  emit(object{{"uri", b}, {"neg", true}});
  emit(object{{"uri", c}, {"val", "porn"}});
  emit(object{{"uri", c}, {"val", "sexual"}, {"exp", "2001-01-01T00:00:00.000Z"}});  // already expired

  auto post = [&](const std::string& path, const object& body) {
    auto r = Fetch(port_, "POST", path, key, boost::json::serialize(body));
    EXPECT_EQ(r.status, 200) << path << " " << r.body;
    return r.status == 200 ? Json(r) : object{};
  };
  auto uris = array{a, b, c, PostUri(99)};
  EXPECT_EQ(post("/internal/active-labels", object{{"uris", uris}}).at("active_uris").as_array(), (array{a}));
  EXPECT_EQ(post("/internal/negated-labels", object{{"uris", uris}}).at("negated_uris").as_array(), (array{b}));
  auto labels = post("/internal/labels", object{{"uris", uris}}).at("labels").as_object();
  EXPECT_EQ(labels.at(a).as_array(), (array{"copyright-violation"}));
  EXPECT_EQ(labels.at(c).as_array(), (array{"porn"}));
  EXPECT_FALSE(labels.contains(b) && !labels.at(b).as_array().empty());
  auto by_value = post("/internal/labels-by-value", object{{"values", array{"porn", "sexual"}}}).at("labels").as_object();
  EXPECT_EQ(by_value.size(), 1u);
  EXPECT_EQ(by_value.at(c).as_array(), (array{"porn"}));

  // Re-labelling after a negation makes it active again.
  emit(object{{"uri", b}});
  EXPECT_EQ(post("/internal/active-labels", object{{"uris", array{b}}}).at("active_uris").as_array(), (array{b}));
  EXPECT_EQ(Fetch(port_, "POST", "/internal/labels", key, R"({"uris":"x"})").status, 400);
}

TEST_F(LabelerTest, NegationCarriesALaterCts) {
  auto stored = Emit(array{object{{"uri", PostUri(1)}, {"val", "spam"}}, object{{"uri", PostUri(1)}, {"val", "spam"}, {"neg", true}}});
  ASSERT_EQ(stored.size(), 2u);
  auto& label = stored[0].as_object().at("label").as_object();
  auto& negation = stored[1].as_object().at("label").as_object();
  EXPECT_TRUE(negation.at("neg").as_bool());
  EXPECT_LT(std::string(label.at("cts").as_string()), std::string(negation.at("cts").as_string()));
}

// ---------------------------------------------------------------------------------------------
// subscribeLabels

TEST_F(LabelerTest, LiveSubscriberGetsFramesIdenticalToTheSignedLabels) {
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(), &error);
  ASSERT_TRUE(ws) << error;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto stored = Emit(array{object{{"uri", PostUri(7)}, {"val", "spam"}, {"cid", "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}}});
  ASSERT_EQ(stored.size(), 1u);
  std::vector<std::string> frames;
  auto seqs = ReadSeqs(*ws, 1, &frames);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0], stored[0].as_object().at("seq").as_int64());
  // The frame is exactly the DRISL encoding of what queryLabels returns.
  auto q = Fetch(port_, "GET", Query("uriPatterns=" + PostUri(7)));
  auto label = LabelFromQueryJson(Json(q).at("labels").as_array().at(0).as_object());
  EXPECT_EQ(frames[0], labeler::EncodeLabelsFrame(seqs[0], labeler::EncodeSignedLabel(label)));
  EXPECT_TRUE(labeler::VerifyWithDidKey(DidKey(), labeler::EncodeUnsignedLabel(label), label.sig));
}

TEST_F(LabelerTest, CursorReplaysEverythingAfterItThenGoesLive) {
  EmitMany(1, 5);
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(2), &error);
  ASSERT_TRUE(ws) << error;
  EXPECT_EQ(ReadSeqs(*ws, 3), Range(3, 5));
  EmitMany(100, 2);
  EXPECT_EQ(ReadSeqs(*ws, 2), Range(6, 7));
  // cursor == newest seq: valid, nothing to replay.
  auto at_head = WsClient::Connect(port_, Subscribe(7), &error);
  ASSERT_TRUE(at_head) << error;
  EmitMany(200, 1);
  EXPECT_EQ(ReadSeqs(*at_head, 1), Range(8, 8));
  // cursor=0: the whole log.
  auto all = WsClient::Connect(port_, Subscribe(0), &error);
  ASSERT_TRUE(all) << error;
  EXPECT_EQ(ReadSeqs(*all, 8), Range(1, 8));
}

TEST_F(LabelerTest, FutureCursorAndBadCursorGetErrorFramesThenClose) {
  EmitMany(1, 3);
  struct Case {
    std::string query;
    std::string error;
  };
  for (const auto& c : {Case{"?cursor=4", "FutureCursor"}, Case{"?cursor=abc", "InvalidRequest"},
                        Case{"?cursor=-1", "InvalidRequest"}}) {
    std::string error;
    auto ws = WsClient::Connect(port_, "/xrpc/com.atproto.label.subscribeLabels" + c.query, &error);
    ASSERT_TRUE(ws) << error;
    WsMessage m;
    ASSERT_EQ(ws->Read(m, std::chrono::seconds(5)), WsClient::Status::kMessage) << c.query;
    EXPECT_EQ(m.opcode, 2);
    EXPECT_TRUE(m.payload.starts_with(std::string("\xa1\x62op\x20", 5))) << c.query;
    EXPECT_NE(m.payload.find(c.error), std::string::npos) << c.query;
    ASSERT_EQ(ws->Read(m, std::chrono::seconds(5)), WsClient::Status::kMessage);
    EXPECT_EQ(m.opcode, 8);
    EXPECT_EQ(ws->close_code(), 1008);
  }
  // An empty log: any positive cursor is in the future.
  Restart({});
}

TEST_F(LabelerTest, AnswersPingsAndRefusesPlainHttp) {
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(), &error);
  ASSERT_TRUE(ws) << error;
  ASSERT_TRUE(ws->Send(9, "hello"));
  WsMessage m;
  ASSERT_EQ(ws->Read(m, std::chrono::seconds(5)), WsClient::Status::kMessage);
  EXPECT_EQ(m.opcode, 10);
  EXPECT_EQ(m.payload, "hello");
  auto r = Fetch(port_, "GET", Subscribe());
  EXPECT_EQ(r.status, 426);
  EXPECT_EQ(Json(r).at("error").as_string(), "UpgradeRequired");
}

TEST_F(LabelerTest, PingsWhileAWriteIsBlockedGetOnlyTheLatestAnswered) {
  for (int i = 0; i < 20; ++i) EmitMany(i * 1000, 1000);  // a replay of several MB
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(0), &error);
  ASSERT_TRUE(ws) << error;
  // Not reading: the replay fills the socket buffers and the server's write blocks, while pings
  // keep arriving.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  constexpr int kPings = 20000;
  for (int i = 0; i < kPings; ++i) ASSERT_TRUE(ws->Send(9, "p" + std::to_string(i)));
  int pongs = 0, labels = 0;
  std::string last_pong;
  WsMessage m;
  while (ws->Read(m, std::chrono::seconds(2)) == WsClient::Status::kMessage) {
    if (m.opcode == 10) {
      ++pongs;
      last_pong = m.payload;
    } else {
      ++labels;
    }
  }
  EXPECT_EQ(labels, 20000);
  EXPECT_EQ(last_pong, "p" + std::to_string(kPings - 1)) << "the latest ping is answered";
  EXPECT_LT(pongs, kPings / 2) << "unanswered pings collapse into one pong while the write is blocked";
}

TEST_F(LabelerTest, LabelsEmittedDuringALargeReplayArriveOnceInOrder) {
  for (int i = 0; i < 4; ++i) EmitMany(i * 1000, 1000);  // seq 1..4000
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(0), &error);
  ASSERT_TRUE(ws) << error;
  std::thread emitter([&] {
    for (int i = 0; i < 20; ++i) EmitMany(10'000 + i * 10, 10);  // seq 4001..4200, during the replay
  });
  auto seqs = ReadSeqs(*ws, 4200, nullptr, std::chrono::seconds(60));
  emitter.join();
  EXPECT_EQ(seqs, Range(1, 4200));
}

TEST_F(LabelerTest, ReconnectingWithTheCursorAfterARestartHasNoGapAndNoDuplicate) {
  EmitMany(1, 50);
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(0), &error);
  ASSERT_TRUE(ws) << error;
  auto before = ReadSeqs(*ws, 30);
  ASSERT_EQ(before, Range(1, 30));
  Restart();  // the subscriber is cut off mid-stream
  EmitMany(100, 20);
  auto again = WsClient::Connect(port_, Subscribe(before.back()), &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(ReadSeqs(*again, 40), Range(31, 70));
}

TEST_F(LabelerTest, SlowConsumerGetsConsumerTooSlowAndCanResume) {
  Restart({"--labeler-subscriber-max-lag", "300"});
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(), &error, 4096);
  ASSERT_TRUE(ws) << error;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int i = 0; i < 10; ++i) EmitMany(i * 1000, 1000);  // 10 000 labels, far more than the socket buffers
  std::vector<std::int64_t> seqs;
  std::string last_error_frame;
  bool closed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    WsMessage m;
    auto status = ws->Read(m, std::chrono::seconds(5));
    if (status != WsClient::Status::kMessage || m.opcode == 8) {
      closed = true;
      break;
    }
    if (m.payload.starts_with(std::string("\xa1\x62op\x20", 5))) {
      last_error_frame = m.payload;
      continue;
    }
    seqs.push_back(static_cast<std::int64_t>(seqs.size()) + 1);
  }
  EXPECT_TRUE(closed);
  EXPECT_NE(last_error_frame.find("ConsumerTooSlow"), std::string::npos);
  ASSERT_LT(seqs.size(), 10'000u);
  // Resume from where it stopped: everything after arrives.
  auto resumed = WsClient::Connect(port_, Subscribe(static_cast<std::int64_t>(seqs.size())), &error);
  ASSERT_TRUE(resumed) << error;
  auto rest = ReadSeqs(*resumed, 10'000 - seqs.size(), nullptr, std::chrono::seconds(60));
  EXPECT_EQ(rest, Range(static_cast<std::int64_t>(seqs.size()) + 1, 10'000));
}

// ---------------------------------------------------------------------------------------------
// Durability and keys

TEST_F(LabelerTest, EveryAcknowledgedLabelSurvivesKillDuringABurst) {
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::string>> acked;  // seq, uri
  std::vector<std::thread> emitters;
  for (int t = 0; t < 4; ++t) {
    emitters.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        const std::string uri = PostUri(t * 1'000'000 + i);
        auto r = Fetch(port_, "POST", "/v1/labels", Admin(),
                       boost::json::serialize(object{{"uri", uri}, {"val", "spam"}}), std::chrono::seconds(5));
        if (r.status != 200 || !r.transport_ok) break;
        boost::system::error_code ec;
        auto doc = boost::json::parse(r.body, ec);
        if (ec) break;  // cut off mid-answer by the kill: not acknowledged
        auto seq = doc.as_object().at("labels").as_array().at(0).as_object().at("seq").as_int64();
        std::lock_guard lock(mutex);
        acked.emplace_back(seq, uri);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  process_->Kill();
  stop = true;
  for (auto& t : emitters) t.join();
  ASSERT_GT(acked.size(), 10u);

  Start({});
  // The stream gives seq and label together: replay the whole log.
  std::int64_t max_acked = 0;
  std::map<std::int64_t, std::string> stored;
  std::string error;
  auto ws = WsClient::Connect(port_, Subscribe(0), &error);
  ASSERT_TRUE(ws) << error;
  std::vector<std::string> frames;
  std::int64_t expected = 0;
  for (const auto& [seq, uri] : acked) max_acked = std::max(max_acked, seq);
  auto seqs = ReadSeqs(*ws, static_cast<std::size_t>(max_acked), &frames, std::chrono::seconds(30));
  ASSERT_GE(seqs.size(), static_cast<std::size_t>(max_acked));
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    ++expected;
    EXPECT_EQ(seqs[i], expected);
    stored[seqs[i]] = frames[i];
  }
  for (const auto& [seq, uri] : acked) {
    ASSERT_TRUE(stored.contains(seq)) << seq;
    EXPECT_NE(stored[seq].find(uri), std::string::npos) << seq;
  }
  // A new label never reuses a seq.
  auto fresh = Emit(array{object{{"uri", PostUri(5)}, {"val", "spam"}}});
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_GT(fresh[0].as_object().at("seq").as_int64(), seqs.back());
}

TEST_F(LabelerTest, AFullDiskAnswers507StoresNothingAndPassesWhenSpaceReturns) {
  const std::int64_t before = EmitMany(0, 20);
  ASSERT_GT(before, 0);
  // The disk fills under the running labeler: no file of it may grow any more.
  std::uintmax_t largest = 0;
  for (const auto& entry : std::filesystem::directory_iterator(process_->data_dir() / "labeler")) {
    largest = std::max(largest, entry.file_size());
  }
  ASSERT_TRUE(process_->LimitFileSizeNow(largest));
  boost::json::array big;
  for (int i = 0; i < 200; ++i) big.push_back(object{{"uri", PostUri(1000 + i)}, {"val", "spam"}});
  auto full = Fetch(port_, "POST", "/v1/labels", Admin(), boost::json::serialize(object{{"labels", big}}));
  EXPECT_EQ(full.status, 507) << full.body;
  EXPECT_NE(full.body.find("\"error\":\"StorageError\""), std::string::npos) << full.body;

  // Space is back, without a restart: the next emit takes the next seq, nothing of the refused one
  // was stored, and the labeler is still running.
  ASSERT_TRUE(process_->LimitFileSizeNow(0));
  EXPECT_EQ(EmitMany(2000, 1), before + 1);
  EXPECT_TRUE(process_->Running());
  auto query = Fetch(port_, "GET", "/xrpc/com.atproto.label.queryLabels?uriPatterns=" + PostUri(1000));
  EXPECT_EQ(query.status, 200);
  EXPECT_EQ(query.body.find(PostUri(1000)), std::string::npos) << query.body;
}

TEST_F(LabelerTest, KeyFileProblemsStopTheStartInsteadOfMakingANewKey) {
  process_->Stop();
  const auto key_path = dir_.path() / "data" / "labeler" / "signing-key.json";
  ASSERT_TRUE(std::filesystem::exists(key_path));
  const std::string original = [&] {
    std::ifstream in(key_path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();

  std::filesystem::permissions(key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                             std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  PlyrProcess loose(dir_.path() / "data");
  EXPECT_FALSE(loose.StartServe({"labeler", "--labeler-did", kLabelerDid}, std::chrono::seconds(10)));
  EXPECT_NE(loose.log().find("signing-key.json"), std::string::npos) << loose.log();

  std::filesystem::permissions(key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  {
    std::ofstream out(key_path, std::ios::trunc);
    out << "{not json";
  }
  PlyrProcess corrupt(dir_.path() / "data");
  EXPECT_FALSE(corrupt.StartServe({"labeler", "--labeler-did", kLabelerDid}, std::chrono::seconds(10)));
  std::ifstream in(key_path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "{not json");  // left for the operator

  {
    std::ofstream out(key_path, std::ios::trunc);
    out << original;
  }
  Start({});
}

TEST(LabelerCommand, KeygenDidAndThePlyrFmKeyForm) {
  TempDir dir;
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"labeler", "keygen", "--data", dir.path().string(), "--curve", "p256"}, &out), 0)
      << out;
  EXPECT_TRUE(out.starts_with("did:key:zDnae")) << out;
  const std::string did_key = out.substr(0, out.find('\n'));
  EXPECT_NE(PlyrProcess::RunToCompletion({"labeler", "keygen", "--data", dir.path().string()}, &out), 0);
  EXPECT_NE(out.find("already exists"), std::string::npos) << out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"labeler", "did", "--data", dir.path().string()}, &out), 0) << out;
  EXPECT_NE(out.find(did_key), std::string::npos) << out;
  EXPECT_NE(out.find("multikey: zDnae"), std::string::npos) << out;

  // plyr.fm's form: hex of a secp256k1 scalar (the design notes' test vector key).
  ASSERT_EQ(PlyrProcess::RunToCompletion(
                {"labeler", "did", "--data", dir.path().string(), "--labeler-signing-key",
                 "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"},
                &out),
            0)
      << out;
  EXPECT_NE(out.find("did:key:zQ3shTqMWPLx6E4JiiHSEmAeYVookV2Q1i9BLZKMZw2PWdVEu"), std::string::npos) << out;
  EXPECT_NE(PlyrProcess::RunToCompletion({"labeler", "did", "--data", (dir.path() / "none").string()}, &out), 0);
}

}  // namespace
}  // namespace plyr::testing

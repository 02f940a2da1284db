#include "labeler/label.h"

#include <string>

#include <boost/algorithm/hex.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "tests/labeler/test_vector.h"

namespace plyr::labeler {
namespace {

// The vector label, signed.
Label VectorLabel() {
  Label label = testing::VectorLabel();
  label.sig = boost::algorithm::unhex(std::string(testing::kVectorK256Sig));
  return label;
}

TEST(LabelValue, AcceptsOrdinaryValues) {
  for (const char* val : {"spam", "!hide", "!no-unauthenticated", "graphic-media", "a", "porn", "étiquette",
                          "\xf0\x9f\x99\x82"}) {
    EXPECT_EQ(CheckLabelValue(val), "") << val;
  }
}

TEST(LabelValue, LengthIsCountedInBytes) {
  EXPECT_EQ(CheckLabelValue(std::string(128, 'a')), "");
  EXPECT_NE(CheckLabelValue(std::string(129, 'a')), "");
  EXPECT_NE(CheckLabelValue(""), "");
  std::string emoji;
  for (int i = 0; i < 32; ++i) emoji += "\xf0\x9f\x99\x82";  // 32 x 4 bytes = 128
  EXPECT_EQ(CheckLabelValue(emoji), "");
  EXPECT_NE(CheckLabelValue(emoji + "a"), "");
}

TEST(LabelValue, RejectsInvalidUtf8) {
  for (const std::string& val : {
           std::string("\xff"),
           std::string("abc\x80"),
           std::string("\xc0\xaf"),          // overlong '/'
           std::string("\xe0\x80\xaf"),      // overlong, three bytes
           std::string("\xed\xa0\x80"),      // UTF-16 surrogate
           std::string("\xf4\x90\x80\x80"),  // above U+10FFFF
           std::string("\xe2\x82"),          // truncated
           std::string("ok\xf0\x9f\x99"),    // truncated at the end
       }) {
    EXPECT_NE(CheckLabelValue(val), "") << boost::algorithm::hex(val);
  }
}

TEST(LabelValue, RejectsWhitespaceAndControls) {
  for (const std::string& val : {
           std::string("has space"),
           std::string("tab\t"),
           std::string("new\nline"),
           std::string("nul\0x", 5),
           std::string("del\x7f"),
           std::string("nbsp\xc2\xa0"),
           std::string("c1\xc2\x85"),
           std::string("ideographic\xe3\x80\x80"),
           std::string("line\xe2\x80\xa8sep"),
       }) {
    EXPECT_NE(CheckLabelValue(val), "") << boost::algorithm::hex(val);
  }
}

TEST(Did, AcceptsValidDids) {
  for (const char* did : {"did:plc:ar7c4by46qjdydhdevvrndac", "did:web:example.com", "did:web:localhost%3A8080",
                          "did:method:val:two", "did:m:v", "did:example:abc-def_ghi.jkl", "did:web:a.b.c:path"}) {
    EXPECT_EQ(CheckDid(did), "") << did;
  }
  EXPECT_EQ(CheckDid("did:plc:" + std::string(2040, 'a')), "");  // exactly 2048
}

TEST(Did, RejectsInvalidDids) {
  for (const char* did : {"", "did", "did:", "did:plc", "did:plc:", "DID:plc:abc", "did:PLC:abc", "did:pl1c:abc",
                          ":plc:abc", "did::abc", "did:plc:abc:", "did:plc:abc%", "did:plc:ab cd", "did:plc:abc/def",
                          "did:plc:abc#frag", "did:plc:abc?q=1", "did:web:x%zz", "did:web:x%4", "did:plc:é",
                          "at://did:plc:abc"}) {
    EXPECT_NE(CheckDid(did), "") << did;
  }
  EXPECT_NE(CheckDid("did:plc:" + std::string(2041, 'a')), "");
}

TEST(SubjectUri, AcceptsRecordUrisAndDids) {
  for (const char* uri : {
           "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l3pte3p2e325",
           "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
           "at://alice.bsky.social/app.bsky.feed.post/3l3pte3p2e325",
           "at://did:plc:abc",
           "at://did:plc:abc/app.bsky.actor.profile",
           "at://did:plc:abc/app.bsky.actor.profile/self",
           "at://did:web:example.com/fm.plyr.track/a:b~c_d-e.f",
       }) {
    EXPECT_EQ(CheckSubjectUri(uri), "") << uri;
  }
}

TEST(SubjectUri, RejectsOtherUris) {
  for (const char* uri : {
           "",
           "https://example.com/post/1",
           "at://",
           "at:///app.bsky.feed.post/x",
           "at://did:plc:abc/",
           "at://nodot/app.bsky.feed.post/x",
           "at://alice.123/app.bsky.feed.post/x",
           "at://-alice.com/app.bsky.feed.post/x",
           "at://did:plc:abc/notansid/x",
           "at://did:plc:abc/app.bsky/x",
           "at://did:plc:abc/app.bsky.feed.post/",
           "at://did:plc:abc/app.bsky.feed.post/a/b",
           "at://did:plc:abc/app.bsky.feed.post/x?y=1",
           "at://did:plc:abc/app.bsky.feed.post/x#frag",
           "at://did:plc:abc/app.bsky.feed.post/..",
           "at://did:plc:abc/app.bsky.feed.post/has space",
           "did:PLC:abc",
           "AT://did:plc:abc",
       }) {
    EXPECT_NE(CheckSubjectUri(uri), "") << uri;
  }
  EXPECT_NE(CheckSubjectUri("at://did:plc:abc/app.bsky.feed.post/" + std::string(8192, 'a')), "");
}

TEST(Cid, AcceptsV1Base32AndV0) {
  EXPECT_EQ(CheckCid("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"), "");
  EXPECT_EQ(CheckCid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"), "");
  EXPECT_EQ(CheckCid("QmY7Yh4UquoXHLPFo2XbhXkhBvFoPwmQUSa92pxnxjQuPU"), "");
}

TEST(Cid, RejectsOthers) {
  for (const char* cid : {"", "b", "bafy", "Bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
                          "bafyreiE5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
                          "bafyrei15737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
                          "QmY7Yh4UquoXHLPFo2XbhXkhBvFoPwmQUSa92pxnxjQuP",
                          "QmY7Yh4UquoXHLPFo2XbhXkhBvFoPwmQUSa92pxnxjQu0U",
                          "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA", "bafy rei"}) {
    EXPECT_NE(CheckCid(cid), "") << cid;
  }
  EXPECT_NE(CheckCid("b" + std::string(300, 'a')), "");
}

TEST(Datetime, AcceptsAtprotoDatetimes) {
  for (const char* dt : {
           "2024-10-01T12:00:00.000Z",
           "1985-04-12T23:20:50.123Z",
           "1985-04-12T23:20:50Z",
           "1985-04-12T23:20:50.1Z",
           "1985-04-12T23:20:50.123456789Z",
           "1985-04-12T23:20:50.123+00:00",
           "1985-04-12T23:20:50.123-07:00",
           "1985-04-12T23:20:50+14:00",
           "2024-02-29T00:00:00Z",
           "2000-02-29T23:59:59Z",
           "0010-01-01T00:00:00Z",
       }) {
    EXPECT_EQ(CheckDatetime(dt), "") << dt;
  }
}

TEST(Datetime, RejectsInvalidDatetimes) {
  for (const char* dt : {
           "",
           "1985-04-12t23:20:50.123Z",       // lower-case t
           "1985-04-12T23:20:50.123z",       // lower-case z
           "1985-04-12T23:20:50.123",        // no timezone
           "1985-04-12T23:20:50",            // no timezone
           "1985-04-12T23:20:50.123-00:00",  // unknown offset
           "1985-04-12T23:20Z",              // no seconds
           "1985-04-12T23:20.123Z",          // no seconds
           "1985-04-12",                     // date only
           "2024-13-01T00:00:00Z",           // month 13
           "2024-00-10T00:00:00Z",
           "2024-01-00T00:00:00Z",
           "2023-02-29T00:00:00Z",  // not a leap year
           "1900-02-29T00:00:00Z",  // not a leap year either
           "2024-04-31T00:00:00Z",
           "2024-01-01T24:00:00Z",
           "2024-01-01T23:60:00Z",
           "2024-01-01T23:59:60Z",  // leap second: JS Date refuses it
           "1985-04-12 23:20:50Z",
           "1985-04-12T23:20:50.Z",
           "1985-04-12T23:20:50+0700",
           "1985-04-12T23:20:50+07",
           "1985-04-12T23:20:50+24:00",
           "1985-04-12T23:20:50+07:60",
           "1985-04-12T23:20:50.123Z ",
           " 1985-04-12T23:20:50.123Z",
           "85-04-12T23:20:50Z",
           "+001985-04-12T23:20:50Z",
           "1985-4-12T23:20:50Z",
           "0000-01-01T00:00:00Z",
           "1985-04-12T23:20:50ZZ",
       }) {
    EXPECT_NE(CheckDatetime(dt), "") << dt;
  }
  EXPECT_NE(CheckDatetime("1985-04-12T23:20:50." + std::string(60, '1') + "Z"), "");
}

TEST(Datetime, NowHasMillisecondsAndZ) {
  const std::string now = NowDatetime();
  EXPECT_EQ(CheckDatetime(now), "") << now;
  ASSERT_EQ(now.size(), 24u) << now;
  EXPECT_EQ(now[19], '.');
  EXPECT_EQ(now.back(), 'Z');
  EXPECT_GE(now.substr(0, 4), "2024");
}

TEST(LabelToJson, VectorMatchesTheReferenceResponse) {
  // Design note §3: Ozone's JSON for the §2.5 label, byte for byte.
  EXPECT_EQ(boost::json::serialize(LabelToJson(VectorLabel())),
            R"({"ver":1,"src":"did:plc:ar7c4by46qjdydhdevvrndac",)"
            R"("uri":"at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l3pte3p2e325",)"
            R"("val":"spam","cts":"2024-10-01T12:00:00.000Z",)"
            R"("sig":{"$bytes":"HS6BQ7GZuBKf5c8yz0/WUx8YhoYf9IymeD7n0dk/Ls0eTS3D6XHt4PxVcdOQOHbyn533fwfwB4kmyTFhEx/JeQ"}})");
}

TEST(LabelToJson, NoNullsAndFalseNegOmitted) {
  const auto json = LabelToJson(VectorLabel());
  EXPECT_FALSE(json.contains("neg"));
  EXPECT_FALSE(json.contains("cid"));
  EXPECT_FALSE(json.contains("exp"));
  for (const auto& field : json) EXPECT_FALSE(field.value().is_null()) << field.key();
  EXPECT_EQ(boost::json::serialize(json).find("null"), std::string::npos);
}

TEST(LabelToJson, OptionalFieldsWhenSet) {
  Label label = VectorLabel();
  label.neg = true;
  label.cid = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";
  label.exp = "2025-10-01T12:00:00.000Z";
  const auto json = LabelToJson(label);
  EXPECT_EQ(json.at("neg"), true);
  EXPECT_EQ(json.at("cid").as_string(), *label.cid);
  EXPECT_EQ(json.at("exp").as_string(), *label.exp);
  EXPECT_EQ(json.at("ver"), 1);
}

TEST(LabelToJson, SigIsUnpaddedStandardBase64) {
  const auto json = LabelToJson(VectorLabel());
  const auto& bytes = json.at("sig").as_object().at("$bytes").as_string();
  EXPECT_EQ(bytes.size(), 86u);
  EXPECT_EQ(bytes.find('='), std::string::npos);
  EXPECT_EQ(bytes, "HS6BQ7GZuBKf5c8yz0/WUx8YhoYf9IymeD7n0dk/Ls0eTS3D6XHt4PxVcdOQOHbyn533fwfwB4kmyTFhEx/JeQ");

  Label label = VectorLabel();
  label.sig = std::string(64, '\xfb');  // '+' and '/' come out as they are: not the URL-safe alphabet
  const std::string b64(LabelToJson(label).at("sig").as_object().at("$bytes").as_string());
  EXPECT_NE(b64.find_first_of("+/"), std::string::npos);
  EXPECT_EQ(b64.find_first_of("-_="), std::string::npos);
}

TEST(LabelToJson, UnsignedLabelHasNoSig) {
  Label label = VectorLabel();
  label.sig.clear();
  EXPECT_FALSE(LabelToJson(label).contains("sig"));
}

// --- A caller's label input ---

StatusOr<Label> FromInput(std::string_view json, std::string_view default_val = {}) {
  return LabelFromInput(boost::json::parse(json), default_val);
}

TEST(LabelInput, ReadsTheFieldsACallerMaySet) {
  auto label = FromInput(R"({"uri": "at://did:plc:abc/fm.plyr.track/3k", "val": "nudity", "neg": true,
                             "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
                             "exp": "2027-01-01T00:00:00Z", "src": "did:plc:ignored", "context": {"x": 1}})");
  ASSERT_TRUE(label.ok()) << label.status().ToString();
  EXPECT_EQ(label->uri, "at://did:plc:abc/fm.plyr.track/3k");
  EXPECT_EQ(label->val, "nudity");
  EXPECT_TRUE(label->neg);
  EXPECT_EQ(label->cid, "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm");
  EXPECT_EQ(label->exp, "2027-01-01T00:00:00Z");
  EXPECT_TRUE(label->src.empty()) << "the labeler fills in its own DID";
  EXPECT_TRUE(label->sig.empty());
  // A default value stands in for a missing `val` only.
  EXPECT_EQ(FromInput(R"({"uri": "did:plc:abc"})", "copyright-violation")->val, "copyright-violation");
  EXPECT_EQ(FromInput(R"({"uri": "did:plc:abc", "val": "spam"})", "copyright-violation")->val, "spam");
}

TEST(LabelInput, RefusesWithTheMemberAndTheReason) {
  const auto refusal = [](std::string_view json) {
    auto label = FromInput(json);
    EXPECT_FALSE(label.ok()) << json;
    EXPECT_EQ(label.status().code(), StatusCode::kInvalidArgument) << json;
    return label.status().message();
  };
  EXPECT_EQ(refusal(R"([1, 2])"), "each label must be a JSON object");
  EXPECT_EQ(refusal(R"({"val": "spam"})"), "`uri` is required");
  EXPECT_EQ(refusal(R"({"uri": 5, "val": "spam"})"), "`uri` must be a string");
  EXPECT_EQ(refusal(R"({"uri": "did:plc:abc"})"), "`val` is required");
  EXPECT_EQ(refusal(R"({"uri": "did:plc:abc", "val": "spam", "neg": "yes"})"), "`neg` must be true or false");
  EXPECT_TRUE(refusal(R"({"uri": "https://example.com", "val": "spam"})").starts_with("uri: "));
  EXPECT_TRUE(refusal(R"({"uri": "did:plc:abc", "val": "two words"})").starts_with("val: "));
  EXPECT_TRUE(refusal(R"({"uri": "did:plc:abc", "val": "spam", "cid": "nope"})").starts_with("cid: "));
  EXPECT_TRUE(refusal(R"({"uri": "did:plc:abc", "val": "spam", "exp": "tomorrow"})").starts_with("exp: "));
}

}  // namespace
}  // namespace plyr::labeler

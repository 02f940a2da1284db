#include "common/log.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace plyr {
namespace {

namespace json = boost::json;

json::object Line(std::string_view message) {
  const auto time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796203908422));
  const std::string line = JsonLogLine(time, "info", message);
  json::value parsed = json::parse(line);  // throws, failing the test, unless it is JSON
  return parsed.as_object();
}

TEST(JsonLogTest, PairsAfterTheMessageBecomeFields) {
  const auto o = Line(R"(access service=streamer id=5f2a peer=127.0.0.1:5123 method=GET target="/audio/ab cd?x=1" status=206 bytes=65536 ms=0.412)");
  EXPECT_EQ(o.at("ts").as_string(), "2026-12-02T09:31:48.422Z");
  EXPECT_EQ(o.at("level").as_string(), "info");
  EXPECT_EQ(o.at("msg").as_string(), "access");
  EXPECT_EQ(o.at("service").as_string(), "streamer");
  EXPECT_EQ(o.at("peer").as_string(), "127.0.0.1:5123");
  EXPECT_EQ(o.at("target").as_string(), "/audio/ab cd?x=1");
  EXPECT_EQ(o.at("status").as_int64(), 206);
  EXPECT_DOUBLE_EQ(o.at("ms").as_double(), 0.412);
  EXPECT_EQ(o.at("id").as_string(), "5f2a");
}

TEST(JsonLogTest, AMessageWithoutPairsIsTheMessageWhole) {
  EXPECT_EQ(Line("streamer: streamer.listen is not host:port").at("msg").as_string(),
            "streamer: streamer.listen is not host:port");
  EXPECT_EQ(Line("shutting down signal=15").at("signal").as_int64(), 15);
  // Pairs that do not run to the end: the whole message, untouched.
  EXPECT_EQ(Line("a=1 and then prose").at("msg").as_string(), "a=1 and then prose");
  EXPECT_EQ(Line(R"(x target="unterminated)").at("msg").as_string(), R"(x target="unterminated)");
}

TEST(JsonLogTest, HostileTextStaysOneValidLine) {
  const std::string nasty = std::string("quote\" backslash\\ newline\n ctrl\x01 ") + "msg=shadow level=x";
  const std::string line = JsonLogLine(std::chrono::system_clock::now(), "warning", nasty);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto o = json::parse(line).as_object();
  EXPECT_EQ(o.at("level").as_string(), "warning") << "a field never replaces the line's own";
  EXPECT_EQ(Line("id=007").at("id").as_string(), "007");
  EXPECT_EQ(Line("n=+5").at("n").as_string(), "+5");
  EXPECT_EQ(Line("n=inf").at("n").as_string(), "inf");
  // Found by fuzz/proxy_and_log_fuzz: ".9" was written as a bare number, which JSON has not.
  for (const char* text : {".9", "1.", "-", "1e", "0x1", "1e+"}) {
    EXPECT_EQ(Line(std::string("n=") + text).at("n").as_string(), text) << text;
  }
  EXPECT_EQ(Line("n=-0.5e-3").at("n").as_double(), -0.5e-3);
  // Found by fuzz/proxy_and_log_fuzz: an exponent no double holds; Boost.JSON refuses the line.
  // "0E20555555550" is a finite zero, but JSON readers refuse an exponent that long or read it
  // as NaN (found by fuzz/proxy_and_log_fuzz); exponents up to 308 are numbers.
  EXPECT_DOUBLE_EQ(Line("n=2.5e-3").at("n").as_double(), 0.0025);
  EXPECT_EQ(Line("n=0e308").at("n").to_number<double>(), 0.0);
  for (const char* text : {"5e77777777777", "1e400", "-1e99999", "0E20555555550", "0e309", "0e1000"}) {
    EXPECT_EQ(Line(std::string("n=") + text).at("n").as_string(), text) << text;
  }
}

TEST(JsonLogTest, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  // Found by fuzz/proxy_and_log_fuzz: a lone 0xd6 made a line that is not JSON.
  const std::string line = JsonLogLine(std::chrono::system_clock::now(), "info", "x\xd6 y=\xff\xfe");
  const auto o = json::parse(line).as_object();
  EXPECT_EQ(o.at("msg").as_string(), "x\xef\xbf\xbd");
  EXPECT_EQ(o.at("y").as_string(), "\xef\xbf\xbd\xef\xbf\xbd") << line;
  // Valid UTF-8 stays; an encoded surrogate (not UTF-8) is replaced byte by byte.
  const auto text = json::parse(JsonLogLine(std::chrono::system_clock::now(), "info", "caf\xc3\xa9 \xed\xa0\x80"));
  EXPECT_EQ(text.as_object().at("msg").as_string(), "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

}  // namespace
}  // namespace plyr

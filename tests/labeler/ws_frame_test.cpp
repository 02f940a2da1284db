#include "labeler/ws_frame.h"

#include <gtest/gtest.h>

#include "tests/support/test_ws_client.h"

namespace plyr::labeler {
namespace {

std::string ClientFrame(std::uint8_t first_byte, const std::string& payload) {
  return testing::MaskedClientFrame(first_byte, payload);
}

TEST(WsFrame, ServerFramesUseTheShortestLengthForm) {
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kBinary, "abc"), std::string("\x82\x03" "abc", 5));
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kBinary, std::string(125, 'x')).substr(0, 2), std::string("\x82\x7d", 2));
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kBinary, std::string(126, 'x')).substr(0, 4), std::string("\x82\x7e\x00\x7e", 4));
  EXPECT_EQ(EncodeWsFrame(WsOpcode::kBinary, std::string(65535, 'x')).substr(0, 4), std::string("\x82\x7e\xff\xff", 4));
  auto big = EncodeWsFrame(WsOpcode::kBinary, std::string(65536, 'x'));
  EXPECT_EQ(big.substr(0, 10), std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  EXPECT_EQ(big.size(), 65536u + 10);
  EXPECT_EQ(EncodeWsClose(1008, "FutureCursor"), std::string("\x88\x0e\x03\xf0" "FutureCursor", 16));
  EXPECT_EQ(EncodeWsClose(1000, std::string(200, 'r')).size(), 2u + 125u);  // control frames cap at 125
}

TEST(WsFrameReader, PingSplitAcrossReadsIsReportedWithItsPayload) {
  WsFrameReader reader;
  const std::string bytes = ClientFrame(0x89, "hello");
  for (std::size_t split = 1; split < bytes.size(); ++split) {
    WsFrameReader r;
    std::string_view first(bytes.data(), split), second(bytes.data() + split, bytes.size() - split);
    EXPECT_EQ(r.Next(first).kind, WsFrameReader::Event::kNone) << split;
    auto event = r.Next(second);
    ASSERT_EQ(event.kind, WsFrameReader::Event::kPing) << split;
    EXPECT_EQ(event.payload, "hello");
  }
}

TEST(WsFrameReader, DataIsSkippedAndControlFramesBetweenAreSeen) {
  WsFrameReader reader;
  std::string bytes = ClientFrame(0x02, std::string(300, 'd'))  // binary, not final
                      + ClientFrame(0x89, "")                   // empty ping in the middle
                      + ClientFrame(0x80, "more")               // continuation, final
                      + ClientFrame(0x88, "\x03\xe8" "bye");     // close 1000
  std::string_view data(bytes);
  auto ping = reader.Next(data);
  ASSERT_EQ(ping.kind, WsFrameReader::Event::kPing);
  EXPECT_EQ(ping.payload, "");
  auto close = reader.Next(data);
  ASSERT_EQ(close.kind, WsFrameReader::Event::kClose);
  EXPECT_EQ(close.code, 1000);
  EXPECT_TRUE(data.empty());
}

TEST(WsFrameReader, RefusesWhatTheProtocolForbids) {
  auto first_event = [](const std::string& bytes) {
    WsFrameReader reader;
    std::string_view data(bytes);
    return reader.Next(data);
  };
  std::string unmasked("\x89\x00", 2);
  EXPECT_EQ(first_event(unmasked).kind, WsFrameReader::Event::kError);
  EXPECT_EQ(first_event(unmasked).code, 1002);
  EXPECT_EQ(first_event(ClientFrame(0xc2, "x")).code, 1002);          // a reserved bit
  EXPECT_EQ(first_event(ClientFrame(0x83, "x")).code, 1002);          // an unknown data opcode
  EXPECT_EQ(first_event(ClientFrame(0x8b, "x")).code, 1002);          // an unknown control opcode
  EXPECT_EQ(first_event(ClientFrame(0x09, "x")).code, 1002);          // a fragmented ping
  EXPECT_EQ(first_event(ClientFrame(0x89, std::string(126, 'p'))).code, 1002);  // control over 125 bytes
  // Data messages are capped, fragments counted together.
  WsFrameReader reader;
  std::string bytes = ClientFrame(0x02, std::string(40000, 'a')) + ClientFrame(0x80, std::string(40000, 'b'));
  std::string_view data(bytes);
  auto event = reader.Next(data);
  EXPECT_EQ(event.kind, WsFrameReader::Event::kError);
  EXPECT_EQ(event.code, 1009);
  // A close without a code reports 1005.
  EXPECT_EQ(first_event(ClientFrame(0x88, "")).code, 1005);
}

}  // namespace
}  // namespace plyr::labeler

#include "labeler/label_cbor.h"

#include <openssl/evp.h>

#include <array>
#include <string>

#include <boost/algorithm/hex.hpp>
#include <gtest/gtest.h>

#include "tests/labeler/test_vector.h"

namespace plyr::labeler {
namespace {

using testing::kVectorK256Sig;
using testing::VectorLabel;

using boost::algorithm::hex_lower;
using boost::algorithm::unhex;

// The verified test vector of the design note (atproto-labeler.md §2.5), checked against
// @ipld/dag-cbor and @atproto/crypto.
constexpr const char* kVectorCbor =
    "a5636374737818323032342d31302d30315431323a30303a30302e3030305a6373726378206469643a706c633a6172"
    "37633462793436716a6479646864657676726e64616363757269784661743a2f2f6469643a706c633a65777669376e"
    "787a796f756e367a687872687336346f697a2f6170702e62736b792e666565642e706f73742f336c3370746533703265"
    "3332356376616c647370616d6376657201";
constexpr const char* kVectorSha256 = "4a72ce5f5ca5c68b22bc3025ba6daf16a8ce8c35abce68636c253743b02b800d";
// §4.1: the whole subscribeLabels message for seq=1 carrying the signed vector label.
constexpr const char* kVectorFrame =
    "a2617467236c6162656c73626f7001a26373657101666c6162656c7381a6636374737818323032342d31302d30315431"
    "323a30303a30302e3030305a6373696758401d2e8143b199b8129fe5cf32cf4fd6531f1886861ff48ca6783ee7d1d93f"
    "2ecd1e4d2dc3e971ede0fc5571d3903876f29f9df77f07f0078926c93161131fc9796373726378206469643a706c633a"
    "617237633462793436716a6479646864657676726e64616363757269784661743a2f2f6469643a706c633a6577766937"
    "6e787a796f756e367a687872687336346f697a2f6170702e62736b792e666565642e706f73742f336c33707465337032"
    "653332356376616c647370616d6376657201";
constexpr const char* kLabelsHeader = "a2617467236c6162656c73626f7001";
constexpr const char* kErrorHeader = "a1626f7020";  // {op: -1}
constexpr const char* kInfoHeader = "a261746523696e666f626f7001";  // §4.1


// Hex of a CBOR text string shorter than 24 bytes (head 0x60 + length), for hand-built expectations.
std::string ShortText(std::string_view s) {
  std::string head(1, static_cast<char>(0x60 + s.size()));
  return hex_lower(head) + hex_lower(std::string(s));
}

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, 32> digest{};
  unsigned int size = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr), 1);
  return hex_lower(std::string(digest.begin(), digest.end()));
}

TEST(LabelCbor, UnsignedVectorByteForByte) {
  const std::string cbor = EncodeUnsignedLabel(VectorLabel());
  EXPECT_EQ(hex_lower(cbor), kVectorCbor);
  EXPECT_EQ(Sha256Hex(cbor), kVectorSha256);
}

TEST(LabelCbor, UnsignedIgnoresSig) {
  Label label = VectorLabel();
  label.sig = unhex(std::string(kVectorK256Sig));
  EXPECT_EQ(hex_lower(EncodeUnsignedLabel(label)), kVectorCbor);
}

TEST(LabelCbor, FalseNegIsOmitted) {
  Label label = VectorLabel();
  label.neg = false;
  EXPECT_EQ(hex_lower(EncodeUnsignedLabel(label)), kVectorCbor);
}

TEST(LabelCbor, TrueNegSitsBetweenCtsAndSrc) {
  Label label = VectorLabel();
  label.neg = true;
  // Same map with six entries: a6 instead of a5, and "neg": true (636e6567 f5) before "src".
  std::string expected = kVectorCbor;
  expected[1] = '6';
  const auto src = expected.find("6373726378");
  ASSERT_NE(src, std::string::npos);
  expected.insert(src, "636e6567f5");
  EXPECT_EQ(hex_lower(EncodeUnsignedLabel(label)), expected);
}

TEST(LabelCbor, AllOptionalFieldsInCanonicalOrder) {
  Label label;
  label.src = "did:plc:a";
  label.uri = "did:plc:b";
  label.cid = "bafyx";
  label.val = "x";
  label.neg = true;
  label.cts = "c";
  label.exp = "e";
  label.sig = std::string(64, '\x01');
  const std::string expected = "a9" + ShortText("cid") + ShortText("bafyx") + ShortText("cts") + ShortText("c") +
                               ShortText("exp") + ShortText("e") + ShortText("neg") + "f5" + ShortText("sig") +
                               "5840" + hex_lower(label.sig) +
                               ShortText("src") + ShortText("did:plc:a") + ShortText("uri") +
                               ShortText("did:plc:b") + ShortText("val") + ShortText("x") + ShortText("ver") + "01";
  EXPECT_EQ(hex_lower(EncodeSignedLabel(label)), expected);
}

TEST(LabelCbor, LongStringsGetLongerHeads) {
  Label label = VectorLabel();
  label.val = std::string(128, 'a');  // head 78 80
  label.uri = "did:plc:" + std::string(292, 'z');  // 300 bytes: head 79 01 2c
  const std::string hex = hex_lower(EncodeUnsignedLabel(label));
  EXPECT_NE(hex.find(ShortText("val") + "7880" + hex_lower(label.val)), std::string::npos);
  EXPECT_NE(hex.find(ShortText("uri") + "79012c" + hex_lower(label.uri)), std::string::npos);
}

TEST(LabelCbor, SignedVectorIsTheFramePayload) {
  Label label = VectorLabel();
  label.sig = unhex(std::string(kVectorK256Sig));
  const std::string frame_hex = kVectorFrame;
  // The label inside the frame starts right after {seq: 1, labels: [ (a2 63736571 01 666c6162656c73 81).
  const std::string body_prefix = "a2637365710166" + hex_lower(std::string("labels")) + "81";
  ASSERT_EQ(frame_hex.substr(30, body_prefix.size()), body_prefix);
  EXPECT_EQ(hex_lower(EncodeSignedLabel(label)), frame_hex.substr(30 + body_prefix.size()));
}

TEST(LabelCbor, LabelsFrameSeq1ByteForByte) {
  Label label = VectorLabel();
  label.sig = unhex(std::string(kVectorK256Sig));
  const std::string frame = EncodeLabelsFrame(1, EncodeSignedLabel(label));
  EXPECT_EQ(frame.size(), 258u);
  EXPECT_EQ(hex_lower(frame), kVectorFrame);
}

TEST(LabelCbor, LabelsFrameStartsWithTheLiteralGoConsumersMatch) {
  const std::string frame = EncodeLabelsFrame(42, "\xa0");
  EXPECT_EQ(frame.substr(0, 15), std::string("\xa2" "atg#labelsbop\x01"));
}

TEST(LabelCbor, SeqUsesTheShortestHead) {
  const std::pair<std::int64_t, const char*> cases[] = {
      {0, "00"},
      {23, "17"},
      {24, "1818"},
      {255, "18ff"},
      {256, "190100"},
      {65535, "19ffff"},
      {65536, "1a00010000"},
      {4294967295, "1affffffff"},
      {4294967296, "1b0000000100000000"},
      {(std::int64_t{1} << 53) - 1, "1b001fffffffffffff"},
  };
  for (const auto& [seq, head] : cases) {
    const std::string expected =
        std::string(kLabelsHeader) + "a2" + ShortText("seq") + head + ShortText("labels") + "81" + "a0";
    EXPECT_EQ(hex_lower(EncodeLabelsFrame(seq, "\xa0")), expected) << "seq " << seq;
  }
}

TEST(LabelCbor, ErrorFrameFutureCursor) {
  const std::string frame = EncodeErrorFrame("FutureCursor", "Cursor in the future.");
  // {op: -1} then {error: "FutureCursor", message: "Cursor in the future."} (21 bytes: head 75).
  const std::string expected = std::string(kErrorHeader) + "a2" + ShortText("error") + ShortText("FutureCursor") +
                               ShortText("message") + ShortText("Cursor in the future.");
  EXPECT_EQ(hex_lower(frame), expected);
  EXPECT_EQ(hex_lower(frame.substr(0, 5)), kErrorHeader);
}

TEST(LabelCbor, ErrorFrameWithoutMessage) {
  EXPECT_EQ(hex_lower(EncodeErrorFrame("ConsumerTooSlow", "")),
            std::string(kErrorHeader) + "a1" + ShortText("error") + ShortText("ConsumerTooSlow"));
}

TEST(LabelCbor, InfoFrameOutdatedCursor) {
  const std::string frame = EncodeInfoFrame("OutdatedCursor", "older than the window");
  const std::string expected = std::string(kInfoHeader) + "a2" + ShortText("name") + ShortText("OutdatedCursor") +
                               ShortText("message") + ShortText("older than the window");
  EXPECT_EQ(hex_lower(frame), expected);
  EXPECT_EQ(hex_lower(EncodeInfoFrame("OutdatedCursor", "")),
            std::string(kInfoHeader) + "a1" + ShortText("name") + ShortText("OutdatedCursor"));
}

TEST(LabelCbor, LongErrorMessage) {
  const std::string message(300, 'm');
  const std::string hex = hex_lower(EncodeErrorFrame("InvalidRequest", message));
  EXPECT_EQ(hex.substr(hex.size() - 600 - 6, 6), "79012c");
}

}  // namespace
}  // namespace plyr::labeler

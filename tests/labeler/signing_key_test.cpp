#include "labeler/signing_key.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <string>

#include <boost/algorithm/hex.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "common/file_util.h"
#include "labeler/label_cbor.h"
#include "tests/support/process.h"

namespace plyr::labeler {
namespace {

using boost::algorithm::hex_lower;
using boost::algorithm::unhex;

// The design note's test vector (atproto-labeler.md §2.5): one private key used on both curves.
constexpr const char* kVectorPrivateKey = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
constexpr const char* kVectorCbor =
    "a5636374737818323032342d31302d30315431323a30303a30302e3030305a6373726378206469643a706c633a6172"
    "37633462793436716a6479646864657676726e64616363757269784661743a2f2f6469643a706c633a65777669376e"
    "787a796f756e367a687872687336346f697a2f6170702e62736b792e666565642e706f73742f336c3370746533703265"
    "3332356376616c647370616d6376657201";
constexpr const char* kK256DidKey = "did:key:zQ3shTqMWPLx6E4JiiHSEmAeYVookV2Q1i9BLZKMZw2PWdVEu";
constexpr const char* kK256Sig =
    "1d2e8143b199b8129fe5cf32cf4fd6531f1886861ff48ca6783ee7d1d93f2ecd"
    "1e4d2dc3e971ede0fc5571d3903876f29f9df77f07f0078926c93161131fc979";
constexpr const char* kP256DidKey = "did:key:zDnaeagKWt45K6WCE6Dm3pAWvUzt7HgPtvAL1YNpBGX3YJ8eL";
// Made with RFC 6979 nonces; ours are random, so only verification is compared.
constexpr const char* kP256Sig =
    "cfb154d406cb3c18a376440976bb8cd23715659bf3e5a3ddc5c620a5cf539cb1"
    "6286a66228c1c2754067598c4b47d520e41f9db9c24b18e6249f38a8031713d5";

constexpr const char* kK256Order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
constexpr const char* kP256Order = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

std::string Cbor() { return unhex(std::string(kVectorCbor)); }

// Big-endian a - b over equal-length byte strings (a >= b).
std::string Subtract(const std::string& a, const std::string& b) {
  std::string out(a.size(), '\0');
  int borrow = 0;
  for (std::size_t i = a.size(); i-- > 0;) {
    int diff = static_cast<unsigned char>(a[i]) - static_cast<unsigned char>(b[i]) - borrow;
    borrow = diff < 0 ? 1 : 0;
    out[i] = static_cast<char>(diff + 256 * borrow);
  }
  return out;
}

// n / 2, rounded down.
std::string Half(const std::string& n) {
  std::string out(n.size(), '\0');
  int carry = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const int v = static_cast<unsigned char>(n[i]) + 256 * carry;
    out[i] = static_cast<char>(v / 2);
    carry = v % 2;
  }
  return out;
}

// The same signature with s replaced by n - s: mathematically valid ECDSA, but high-S.
std::string FlipS(const std::string& sig, const char* order_hex) {
  return sig.substr(0, 32) + Subtract(unhex(std::string(order_hex)), sig.substr(32));
}

bool IsLowS(const std::string& sig, const char* order_hex) {
  // Equal-length big-endian byte strings compare like the numbers they hold.
  return sig.substr(32) <= Half(unhex(std::string(order_hex)));
}

std::unique_ptr<SigningKey> VectorKey(Curve curve) {
  auto key = SigningKey::FromHex(curve, kVectorPrivateKey);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return key.ok() ? std::move(*key) : nullptr;
}

TEST(SigningKey, K256VectorDidKey) {
  auto key = VectorKey(Curve::kK256);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->curve(), Curve::kK256);
  EXPECT_EQ(key->DidKey(), kK256DidKey);
  EXPECT_EQ(key->PublicKeyCompressed().size(), 33u);
}

TEST(SigningKey, K256VectorSignatureByteForByte) {
  auto key = VectorKey(Curve::kK256);
  ASSERT_TRUE(key);
  const std::string sig = key->Sign(Cbor());
  EXPECT_EQ(hex_lower(sig), kK256Sig);  // RFC 6979 makes k256 signatures deterministic
  EXPECT_TRUE(VerifyWithDidKey(kK256DidKey, Cbor(), sig));
}

TEST(SigningKey, K256VectorSignatureVerifies) {
  const std::string sig = unhex(std::string(kK256Sig));
  EXPECT_TRUE(VerifyWithDidKey(kK256DidKey, Cbor(), sig));
  EXPECT_FALSE(VerifyWithDidKey(kK256DidKey, Cbor() + " ", sig));
  EXPECT_FALSE(VerifyWithDidKey(kP256DidKey, Cbor(), sig));
}

TEST(SigningKey, P256VectorDidKey) {
  auto key = VectorKey(Curve::kP256);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->curve(), Curve::kP256);
  EXPECT_EQ(key->DidKey(), kP256DidKey);
}

TEST(SigningKey, P256NoteSignatureVerifies) {
  const std::string sig = unhex(std::string(kP256Sig));
  EXPECT_TRUE(VerifyWithDidKey(kP256DidKey, Cbor(), sig));
  EXPECT_FALSE(VerifyWithDidKey(kP256DidKey, Cbor() + " ", sig));
  EXPECT_FALSE(VerifyWithDidKey(kK256DidKey, Cbor(), sig));
}

// OpenSSL picks a random nonce, so about half of raw P-256 signatures come out high-S; enough
// rounds make it certain the normalization ran.
TEST(SigningKey, P256SignaturesVerifyAndAreLowS) {
  auto key = VectorKey(Curve::kP256);
  ASSERT_TRUE(key);
  for (int i = 0; i < 64; ++i) {
    const std::string message = Cbor() + std::to_string(i);
    const std::string sig = key->Sign(message);
    ASSERT_EQ(sig.size(), 64u);
    EXPECT_TRUE(IsLowS(sig, kP256Order));
    EXPECT_TRUE(VerifyWithDidKey(kP256DidKey, message, sig));
  }
}

TEST(SigningKey, K256SignaturesVerifyAndAreLowS) {
  auto key = SigningKey::Generate(Curve::kK256);
  ASSERT_TRUE(key);
  for (int i = 0; i < 64; ++i) {
    const std::string message = "message " + std::to_string(i);
    const std::string sig = key->Sign(message);
    ASSERT_EQ(sig.size(), 64u);
    EXPECT_TRUE(IsLowS(sig, kK256Order));
    EXPECT_TRUE(VerifyWithDidKey(key->DidKey(), message, sig));
  }
}

TEST(SigningKey, HighSSignaturesAreRejected) {
  const std::string k256 = unhex(std::string(kK256Sig));
  const std::string k256_high = FlipS(k256, kK256Order);
  ASSERT_FALSE(IsLowS(k256_high, kK256Order));
  EXPECT_FALSE(VerifyWithDidKey(kK256DidKey, Cbor(), k256_high));

  const std::string p256 = unhex(std::string(kP256Sig));
  const std::string p256_high = FlipS(p256, kP256Order);
  ASSERT_FALSE(IsLowS(p256_high, kP256Order));
  EXPECT_FALSE(VerifyWithDidKey(kP256DidKey, Cbor(), p256_high));
}

TEST(SigningKey, MalformedSignaturesAndKeysAreRejected) {
  const std::string sig = unhex(std::string(kK256Sig));
  EXPECT_FALSE(VerifyWithDidKey(kK256DidKey, Cbor(), sig.substr(0, 63)));
  EXPECT_FALSE(VerifyWithDidKey(kK256DidKey, Cbor(), sig + '\0'));
  EXPECT_FALSE(VerifyWithDidKey(kK256DidKey, Cbor(), std::string(64, '\0')));
  EXPECT_FALSE(VerifyWithDidKey(kP256DidKey, Cbor(), std::string(64, '\0')));
  EXPECT_FALSE(VerifyWithDidKey(kP256DidKey, Cbor(), std::string(64, '\xff')));
  const std::string k256_did = kK256DidKey;
  EXPECT_FALSE(VerifyWithDidKey(k256_did.substr(8), Cbor(), sig));                 // bare multikey
  EXPECT_FALSE(VerifyWithDidKey(k256_did.substr(0, k256_did.size() - 1), Cbor(), sig));  // truncated
  EXPECT_FALSE(VerifyWithDidKey("did:key:z0OIl", Cbor(), sig));                     // not base58
  EXPECT_FALSE(VerifyWithDidKey("did:plc:ar7c4by46qjdydhdevvrndac", Cbor(), sig));
  EXPECT_FALSE(VerifyWithDidKey("", Cbor(), sig));
}

TEST(SigningKey, SpecExampleDidKeysDecode) {
  // atproto.com/specs/cryptography examples (design note §2.4).
  const auto p256 = Base58Decode(std::string_view("zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo").substr(1));
  ASSERT_TRUE(p256);
  ASSERT_EQ(p256->size(), 35u);
  EXPECT_EQ(p256->substr(0, 3), std::string("\x80\x24\x03", 3));

  const auto k256 = Base58Decode(std::string_view("zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc").substr(1));
  ASSERT_TRUE(k256);
  ASSERT_EQ(k256->size(), 35u);
  EXPECT_EQ(k256->substr(0, 3), std::string("\xe7\x01\x03", 3));
}

TEST(SigningKey, GeneratedKeysHaveTheirCurvesMultikeyPrefix) {
  for (int i = 0; i < 8; ++i) {
    auto k256 = SigningKey::Generate(Curve::kK256);
    auto p256 = SigningKey::Generate(Curve::kP256);
    ASSERT_TRUE(k256 && p256);
    EXPECT_TRUE(k256->Multikey().starts_with("zQ3sh")) << k256->Multikey();
    EXPECT_TRUE(p256->Multikey().starts_with("zDnae")) << p256->Multikey();
    EXPECT_TRUE(k256->DidKey().starts_with("did:key:zQ3sh"));
  }
  EXPECT_NE(SigningKey::Generate(Curve::kK256)->DidKey(), SigningKey::Generate(Curve::kK256)->DidKey());
}

TEST(SigningKey, FromHexRejectsBadInput) {
  const std::string bad_hex = std::string(kVectorPrivateKey).substr(0, 62) + "zz";
  auto refused = SigningKey::FromHex(Curve::kK256, bad_hex);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message().find(bad_hex), std::string::npos) << "the key must not be echoed";
  EXPECT_FALSE(refused.status().message().empty());
  auto invalid = [](Curve curve, const std::string& hex) {
    auto key = SigningKey::FromHex(curve, hex);
    return !key.ok() && key.status().code() == StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid(Curve::kK256, std::string(kVectorPrivateKey).substr(2)));
  EXPECT_TRUE(invalid(Curve::kK256, std::string(kVectorPrivateKey) + "00"));
  EXPECT_TRUE(invalid(Curve::kK256, ""));
  EXPECT_TRUE(invalid(Curve::kK256, std::string(64, '0')));
  EXPECT_TRUE(invalid(Curve::kP256, std::string(64, '0')));
  // The scalar must be below the group order.
  EXPECT_TRUE(invalid(Curve::kK256, kK256Order));
  EXPECT_TRUE(invalid(Curve::kP256, kP256Order));
  const std::string p256_max = hex_lower(Subtract(unhex(std::string(kP256Order)), std::string(31, '\0') + '\x01'));
  auto max = SigningKey::FromHex(Curve::kP256, p256_max);
  EXPECT_TRUE(max.ok()) << max.status().ToString();
  // Upper-case hex is the same key.
  std::string upper = kVectorPrivateKey;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  auto key = SigningKey::FromHex(Curve::kK256, upper);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->DidKey(), kK256DidKey);
}

TEST(Curve, NamesRoundTrip) {
  EXPECT_EQ(CurveName(Curve::kK256), "k256");
  EXPECT_EQ(CurveName(Curve::kP256), "p256");
  EXPECT_EQ(ParseCurve("k256").value(), Curve::kK256);
  EXPECT_EQ(ParseCurve("p256").value(), Curve::kP256);
  EXPECT_FALSE(ParseCurve("secp256k1"));
  EXPECT_FALSE(ParseCurve("K256"));
}

TEST(Base58, KnownValuesAndLeadingZeros) {
  EXPECT_EQ(Base58Encode(""), "");
  EXPECT_EQ(Base58Encode("hello world"), "StV1DL6CwTryKyV");
  EXPECT_EQ(Base58Encode(std::string("\0\0\x01", 3)), "112");
  EXPECT_EQ(Base58Encode(std::string(3, '\0')), "111");
  EXPECT_EQ(Base58Decode("StV1DL6CwTryKyV").value(), "hello world");
  EXPECT_EQ(Base58Decode("112").value(), std::string("\0\0\x01", 3));
  EXPECT_EQ(Base58Decode("").value(), "");
  for (const char* bad : {"0", "O", "I", "l", "abc+", "ab c"}) EXPECT_FALSE(Base58Decode(bad)) << bad;
}

TEST(Base58, RandomRoundTrip) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string bytes(rng() % 48, '\0');
    for (std::size_t j = rng() % 4; j < bytes.size(); ++j) bytes[j] = static_cast<char>(rng());
    const auto decoded = Base58Decode(Base58Encode(bytes));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, bytes);
  }
}

// --- key file ---

void WriteKeyFile(const std::filesystem::path& path, const std::string& contents, int mode = 0600) {
  ASSERT_TRUE(WriteFileAtomically(path, contents, mode).ok());
}

unsigned FileMode(const std::filesystem::path& path) {
  struct stat st{};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 0777;
}

TEST(SigningKeyFile, RoundTripBothCurves) {
  plyr::testing::TempDir dir;
  for (Curve curve : {Curve::kK256, Curve::kP256}) {
    const auto path = dir.path() / "labeler" / (std::string(CurveName(curve)) + ".json");
    auto key = SigningKey::Generate(curve);
    ASSERT_TRUE(key);
    Status saved = key->Save(path);
    ASSERT_TRUE(saved.ok()) << saved.ToString();
    EXPECT_EQ(FileMode(path), 0600u);
    auto loaded = SigningKey::Load(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ((*loaded)->curve(), curve);
    EXPECT_EQ((*loaded)->DidKey(), key->DidKey());
    EXPECT_TRUE(VerifyWithDidKey(key->DidKey(), "m", (*loaded)->Sign("m")));
  }
}

TEST(SigningKeyFile, FormatIsCurveAndHex) {
  plyr::testing::TempDir dir;
  const auto path = dir.path() / "signing-key.json";
  auto key = VectorKey(Curve::kK256);
  ASSERT_TRUE(key);
  Status saved = key->Save(path);
  ASSERT_TRUE(saved.ok()) << saved.ToString();
  const auto text = ReadSmallFile(path);
  ASSERT_TRUE(text.ok());
  const auto doc = boost::json::parse(*text).as_object();
  EXPECT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc.at("curve").as_string(), "k256");
  EXPECT_EQ(doc.at("private_key").as_string(), kVectorPrivateKey);
}

TEST(SigningKeyFile, LoadsAHandWrittenFile) {
  plyr::testing::TempDir dir;
  const auto path = dir.path() / "signing-key.json";
  WriteKeyFile(path, std::string(R"({"curve": "p256", "private_key": ")") + kVectorPrivateKey + "\"}\n");
  auto key = SigningKey::Load(path);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->DidKey(), kP256DidKey);
}

// CI runs as root, which can read anything, so the check must be on the mode bits themselves.
TEST(SigningKeyFile, RefusesAFileOthersMayRead) {
  plyr::testing::TempDir dir;
  const auto path = dir.path() / "signing-key.json";
  auto key = SigningKey::Generate(Curve::kK256);
  Status saved = key->Save(path);
  ASSERT_TRUE(saved.ok()) << saved.ToString();
  for (mode_t mode : {0644, 0640, 0604, 0660, 0601}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto refused = SigningKey::Load(path);
    ASSERT_FALSE(refused.ok()) << std::oct << mode;
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(refused.status().message().find("chmod 600"), std::string::npos) << refused.status().message();
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  auto loaded = SigningKey::Load(path);
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
}

TEST(SigningKeyFile, RefusesAMissingFile) {
  plyr::testing::TempDir dir;
  auto key = SigningKey::Load(dir.path() / "nope.json");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kNotFound);
  EXPECT_NE(key.status().message().find("does not exist"), std::string::npos) << key.status().message();
}

TEST(SigningKeyFile, RefusesCorruptFiles) {
  plyr::testing::TempDir dir;
  const std::string good_hex = kVectorPrivateKey;
  const std::string bad_hex = good_hex.substr(0, 60) + "wxyz";
  const std::string cases[] = {
      "",
      "{not json",
      "[]",
      R"({"curve": "k256"})",
      R"({"private_key": ")" + good_hex + "\"}",
      R"({"curve": 256, "private_key": ")" + good_hex + "\"}",
      R"({"curve": "ed25519", "private_key": ")" + good_hex + "\"}",
      R"({"curve": "k256", "private_key": ")" + bad_hex + "\"}",
      R"({"curve": "k256", "private_key": ")" + good_hex.substr(4) + "\"}",
      R"({"curve": "k256", "private_key": ")" + std::string(64, '0') + "\"}",
      R"({"curve": "k256", "private_key": ")" + std::string(kK256Order) + "\"}",
  };
  int n = 0;
  for (const std::string& contents : cases) {
    const auto path = dir.path() / ("key-" + std::to_string(n++) + ".json");
    WriteKeyFile(path, contents);
    auto key = SigningKey::Load(path);
    ASSERT_FALSE(key.ok()) << contents;
    EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument) << contents;
    const std::string error = key.status().message();
    EXPECT_FALSE(error.empty()) << contents;
    EXPECT_EQ(error.find(good_hex.substr(4, 32)), std::string::npos) << "key material in: " << error;
    EXPECT_EQ(error.find(bad_hex.substr(4, 32)), std::string::npos) << "key material in: " << error;
  }
}

TEST(SigningKeyFile, SaveRefusesToOverwrite) {
  plyr::testing::TempDir dir;
  const auto path = dir.path() / "signing-key.json";
  auto first = SigningKey::Generate(Curve::kK256);
  auto second = SigningKey::Generate(Curve::kK256);
  Status saved = first->Save(path);
  ASSERT_TRUE(saved.ok()) << saved.ToString();
  Status refused = second->Save(path);
  EXPECT_EQ(refused.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(refused.message().find("already exists"), std::string::npos) << refused.message();
  auto loaded = SigningKey::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->DidKey(), first->DidKey());
}

TEST(SigningKeyFile, SignsTheVectorLabelAfterALoad) {
  plyr::testing::TempDir dir;
  const auto path = dir.path() / "signing-key.json";
  WriteKeyFile(path, std::string(R"({"curve":"k256","private_key":")") + kVectorPrivateKey + "\"}");
  auto key = SigningKey::Load(path);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  Label label;
  label.src = "did:plc:ar7c4by46qjdydhdevvrndac";
  label.uri = "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l3pte3p2e325";
  label.val = "spam";
  label.cts = "2024-10-01T12:00:00.000Z";
  EXPECT_EQ(hex_lower((*key)->Sign(EncodeUnsignedLabel(label))), kK256Sig);
}

}  // namespace
}  // namespace plyr::labeler

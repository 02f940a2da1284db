#include "streamer/stream_ticket.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sodium.h>

namespace plyr::streamer {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kNow = 1'700'000'000;
constexpr std::int64_t kMaxTtl = 3600;

// Seed 0x01..0x20: the fixed key behind the known-answer vector below.
TicketKeyPair FixedKeys() {
  EXPECT_GE(sodium_init(), 0);
  TicketKeyPair keys;
  for (std::size_t i = 0; i < keys.seed.size(); ++i) keys.seed[i] = static_cast<unsigned char>(i + 1);
  unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(keys.public_key.data(), secret_key, keys.seed.data());
  return keys;
}

TicketClaims Claims(std::string file_id, std::int64_t exp, std::string sub = "did:plc:viewer") {
  TicketClaims claims;
  claims.viewer_did = std::move(sub);
  claims.file_id = std::move(file_id);
  claims.expires_at = exp;
  return claims;
}

std::string Base64Url(std::string_view bytes) {
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), kVariant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string FromBase64Url(std::string_view text) {
  std::string out(text.size(), '\0');
  std::size_t size = 0;
  EXPECT_EQ(sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                              text.size(), nullptr, &size, nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
            0);
  out.resize(size);
  return out;
}

// Builds a correctly signed ticket around arbitrary payload bytes, bypassing MintTicket, so the
// verifier's payload checks can be reached past the signature check.
std::string SignRawPayload(const TicketKeyPair& keys, std::string_view payload,
                           std::string_view version = "v1") {
  std::string ticket = std::string(version) + "." + Base64Url(payload);
  unsigned char public_key[crypto_sign_PUBLICKEYBYTES];
  unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(public_key, secret_key, keys.seed.data());
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(ticket.data()),
                       ticket.size(), secret_key);
  return ticket + "." +
         Base64Url(std::string_view(reinterpret_cast<const char*>(signature), sizeof signature));
}

// A different character from the base64url alphabet, so the mutation stays decodable.
char OtherBase64Char(char c) { return c == 'A' ? 'B' : 'A'; }

struct TicketParts {
  std::string version, payload, signature;
};
TicketParts Split(const std::string& ticket) {
  const std::size_t a = ticket.find('.');
  const std::size_t b = ticket.find('.', a + 1);
  return {ticket.substr(0, a), ticket.substr(a + 1, b - a - 1), ticket.substr(b + 1)};
}

class StreamTicketTest : public ::testing::Test {
 protected:
  TicketKeyPair keys_ = FixedKeys();
  TicketVerifier verifier_{keys_.public_key, kMaxTtl};

  TicketVerifier::Outcome VerifyRaw(std::string_view payload, std::string_view file = "f1") {
    return verifier_.Verify(SignRawPayload(keys_, payload), file, kNow);
  }
};

TEST_F(StreamTicketTest, ErrorNames) {
  EXPECT_EQ(TicketErrorName(TicketError::kMalformed), "malformed");
  EXPECT_EQ(TicketErrorName(TicketError::kBadSignature), "bad_signature");
  EXPECT_EQ(TicketErrorName(TicketError::kExpired), "expired");
  EXPECT_EQ(TicketErrorName(TicketError::kTooLongLived), "too_long_lived");
  EXPECT_EQ(TicketErrorName(TicketError::kWrongFile), "wrong_file");
}

TEST_F(StreamTicketTest, RoundTrip) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  const auto outcome = verifier_.Verify(ticket, "f1", kNow);
  ASSERT_TRUE(outcome.ok) << TicketErrorName(outcome.error);
  EXPECT_EQ(outcome.claims.viewer_did, "did:plc:viewer");
  EXPECT_EQ(outcome.claims.file_id, "f1");
  EXPECT_EQ(outcome.claims.expires_at, kNow + 60);
}

TEST_F(StreamTicketTest, RoundTripWithGeneratedKeys) {
  const TicketKeyPair keys = GenerateTicketKeyPair();
  const TicketVerifier verifier(keys.public_key, kMaxTtl);
  EXPECT_TRUE(verifier.Verify(MintTicket(keys, Claims("f1", kNow + 60)), "f1", kNow).ok);
}

TEST_F(StreamTicketTest, SeveralKeysLetTheSignerRotateWithoutAnOutage) {
  const TicketKeyPair next = GenerateTicketKeyPair();
  const TicketKeyPair stranger = GenerateTicketKeyPair();
  // While rotating, tickets signed by the new key and by the old one both verify.
  auto keys = ParsePublicKeyList(ToHex(next.public_key) + ", " + ToHex(keys_.public_key));
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 2u);
  const TicketVerifier rotating(*keys, kMaxTtl);
  EXPECT_TRUE(rotating.Verify(MintTicket(next, Claims("f1", kNow + 60)), "f1", kNow).ok);
  EXPECT_TRUE(rotating.Verify(MintTicket(keys_, Claims("f1", kNow + 60)), "f1", kNow).ok);
  const auto refused = rotating.Verify(MintTicket(stranger, Claims("f1", kNow + 60)), "f1", kNow);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.error, TicketError::kBadSignature);
  // Then the old key is dropped: its tickets stop verifying.
  const TicketVerifier rotated(std::vector<Ed25519PublicKey>{next.public_key}, kMaxTtl);
  EXPECT_FALSE(rotated.Verify(MintTicket(keys_, Claims("f1", kNow + 60)), "f1", kNow).ok);

  for (const char* bad : {"", ",", "abc", "00,11"}) EXPECT_FALSE(ParsePublicKeyList(bad)) << bad;
}

TEST_F(StreamTicketTest, PayloadIsCompactJsonWithKeysInDocumentedOrder) {
  const TicketParts parts = Split(MintTicket(keys_, Claims("f1", 123)));
  EXPECT_EQ(parts.version, "v1");
  EXPECT_EQ(FromBase64Url(parts.payload), R"({"sub":"did:plc:viewer","file":"f1","exp":123})");
  EXPECT_EQ(FromBase64Url(parts.signature).size(), 64u);
}

// Ed25519 is deterministic, so this pins the whole wire format (JSON layout, base64url variant,
// signed bytes). Cross-checked against Python (cryptography's Ed25519 and
// json.dumps(claims, separators=(",", ":"))). Docs can reuse it:
//   seed (hex)       = 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
//   public key (hex) = 79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664
//   payload          = {"sub":"did:plc:viewer","file":"0123456789abcdef","exp":2000000000}
//   ticket           =
//     v1.eyJzdWIiOiJkaWQ6cGxjOnZpZXdlciIsImZpbGUiOiIwMTIzNDU2Nzg5YWJjZGVmIiwiZXhwIjoyMDAwMDAwMDAwfQ.ZOrZ
//     BH0Ynv-9s20OWy5UvRX9znu9DBaMbkcK2y9Vd5Xpx4A9v2kGl8LxTQ2agnuLxZqH70wzaftisP-qFMO_BQ
TEST_F(StreamTicketTest, KnownAnswerVector) {
  const std::string ticket = MintTicket(keys_, Claims("0123456789abcdef", 2000000000));
  EXPECT_EQ(
      ticket,
      "v1.eyJzdWIiOiJkaWQ6cGxjOnZpZXdlciIsImZpbGUiOiIwMTIzNDU2Nzg5YWJjZGVmIiwiZXhwIjoyMDAwMDAwMDAwfQ.ZOrZ"
      "BH0Ynv-9s20OWy5UvRX9znu9DBaMbkcK2y9Vd5Xpx4A9v2kGl8LxTQ2agnuLxZqH70wzaftisP-qFMO_BQ");
  EXPECT_EQ(ToHex(keys_.public_key), "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664");
  const TicketVerifier verifier(keys_.public_key, std::numeric_limits<std::int64_t>::max());
  EXPECT_TRUE(verifier.Verify(ticket, "0123456789abcdef", 1'999'999'999).ok);
}

TEST_F(StreamTicketTest, WildcardGrantsAnyFile) {
  const std::string ticket = MintTicket(keys_, Claims("*", kNow + 60));
  for (std::string_view file : {"f1", "f2", "0123456789abcdef", "*"}) {
    const auto outcome = verifier_.Verify(ticket, file, kNow);
    EXPECT_TRUE(outcome.ok) << file;
    EXPECT_EQ(outcome.claims.file_id, "*");
  }
}

TEST_F(StreamTicketTest, WrongFile) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  for (std::string_view file : {"f2", "", "F1", "f1 ", "*"}) {
    const auto outcome = verifier_.Verify(ticket, file, kNow);
    EXPECT_FALSE(outcome.ok) << file;
    EXPECT_EQ(outcome.error, TicketError::kWrongFile) << file;
  }
}

TEST_F(StreamTicketTest, ExpiredAtAndBeforeNow) {
  for (std::int64_t exp :
       {kNow, kNow - 1, std::int64_t{0}, std::int64_t{-1}, std::numeric_limits<std::int64_t>::min()}) {
    const auto outcome = verifier_.Verify(MintTicket(keys_, Claims("f1", exp)), "f1", kNow);
    EXPECT_FALSE(outcome.ok) << exp;
    EXPECT_EQ(outcome.error, TicketError::kExpired) << exp;
  }
  EXPECT_TRUE(verifier_.Verify(MintTicket(keys_, Claims("f1", kNow + 1)), "f1", kNow).ok);
}

TEST_F(StreamTicketTest, TooLongLived) {
  EXPECT_TRUE(verifier_.Verify(MintTicket(keys_, Claims("f1", kNow + kMaxTtl)), "f1", kNow).ok);
  for (std::int64_t exp : {kNow + kMaxTtl + 1, std::numeric_limits<std::int64_t>::max()}) {
    const auto outcome = verifier_.Verify(MintTicket(keys_, Claims("f1", exp)), "f1", kNow);
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.error, TicketError::kTooLongLived);
  }
}

TEST_F(StreamTicketTest, ExpiryChecksComeBeforeFileCheck) {
  EXPECT_EQ(verifier_.Verify(MintTicket(keys_, Claims("f1", kNow)), "f2", kNow).error, TicketError::kExpired);
  EXPECT_EQ(verifier_.Verify(MintTicket(keys_, Claims("f1", kNow + kMaxTtl + 1)), "f2", kNow).error,
            TicketError::kTooLongLived);
}

TEST_F(StreamTicketTest, ExtremeTimesDoNotOverflow) {
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(verifier_.Verify(MintTicket(keys_, Claims("f1", kMax)), "f1", kMin).error,
            TicketError::kTooLongLived);
  EXPECT_EQ(verifier_.Verify(MintTicket(keys_, Claims("f1", kMin)), "f1", kMax).error, TicketError::kExpired);
  EXPECT_EQ(verifier_.Verify(MintTicket(keys_, Claims("f1", kMax)), "f1", kMax).error, TicketError::kExpired);

  const TicketVerifier unlimited(keys_.public_key, kMax);
  EXPECT_TRUE(unlimited.Verify(MintTicket(keys_, Claims("f1", kMax)), "f1", 0).ok);
  // The lifetime from kMin + 1 to kMax is 2^64 - 2 seconds: beyond any int64 max_ttl.
  EXPECT_EQ(unlimited.Verify(MintTicket(keys_, Claims("f1", kMax)), "f1", kMin + 1).error,
            TicketError::kTooLongLived);
  const TicketVerifier negative_ttl(keys_.public_key, -5);
  EXPECT_EQ(negative_ttl.Verify(MintTicket(keys_, Claims("f1", kNow + 1)), "f1", kNow).error,
            TicketError::kTooLongLived);
}

TEST_F(StreamTicketTest, FlippedSignatureByteIsBadSignature) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  std::string forged = ticket;
  const std::size_t pos = ticket.rfind('.') + 10;
  forged[pos] = OtherBase64Char(forged[pos]);
  const auto outcome = verifier_.Verify(forged, "f1", kNow);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.error, TicketError::kBadSignature);
}

TEST_F(StreamTicketTest, FlippedPayloadByteIsBadSignature) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  std::string forged = ticket;
  forged[10] = OtherBase64Char(forged[10]);
  const auto outcome = verifier_.Verify(forged, "f1", kNow);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.error, TicketError::kBadSignature);
}

TEST_F(StreamTicketTest, SwappedPayloadKeepingSignatureIsBadSignature) {
  // The attack that matters: keep a genuine signature, widen the grant to every file.
  const TicketParts parts = Split(MintTicket(keys_, Claims("f1", kNow + 60)));
  const std::string widened = Base64Url(R"({"sub":"did:plc:viewer","file":"*","exp":1700000060})");
  const auto outcome = verifier_.Verify("v1." + widened + "." + parts.signature, "f2", kNow);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.error, TicketError::kBadSignature);
}

TEST_F(StreamTicketTest, EverySingleCharacterChangeIsRefused) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  for (std::size_t i = 0; i < ticket.size(); ++i) {
    for (char replacement : {'A', 'B', '.', '=', '\0', '\xff'}) {
      if (ticket[i] == replacement) continue;
      std::string mutated = ticket;
      mutated[i] = replacement;
      EXPECT_FALSE(verifier_.Verify(mutated, "f1", kNow).ok) << "position " << i;
    }
  }
}

TEST_F(StreamTicketTest, NonAsciiBytesNeverStandForBase64Characters) {
  // libsodium 1.0.18 decodes some bytes >= 0x80 as alphabet characters ('\xff' as '_'), which
  // would let anyone re-encode a valid ticket's signature into a different accepted string.
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  for (std::size_t i = 0; i < ticket.size(); ++i) {
    if (ticket[i] == '.') continue;
    for (int byte = 0x80; byte <= 0xff; ++byte) {
      std::string mutated = ticket;
      mutated[i] = static_cast<char>(byte);
      EXPECT_FALSE(verifier_.Verify(mutated, "f1", kNow).ok) << "position " << i << " byte " << byte;
    }
  }
  const std::string zero_signature = "v1.eyJ9." + std::string(86, 'A');  // 64 zero bytes: decodes fine
  EXPECT_EQ(verifier_.Verify(zero_signature, "f1", kNow).error, TicketError::kBadSignature);
  std::string aliased = zero_signature;
  aliased[20] = '\xff';
  EXPECT_EQ(verifier_.Verify(aliased, "f1", kNow).error, TicketError::kMalformed);
}

TEST_F(StreamTicketTest, TicketFromAnotherKeyIsBadSignature) {
  const TicketKeyPair other = GenerateTicketKeyPair();
  const auto outcome = verifier_.Verify(MintTicket(other, Claims("f1", kNow + 60)), "f1", kNow);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.error, TicketError::kBadSignature);
}

// A flood repeating one forged ticket pays one Ed25519 verification: the refusal is remembered,
// the memory is bounded, and a remembered forgery never shadows a genuine ticket.
TEST_F(StreamTicketTest, ForgedTicketsAreRememberedWithinABound) {
  const TicketKeyPair other = GenerateTicketKeyPair();
  const std::string forged = MintTicket(other, Claims("f1", kNow + 60));
  EXPECT_EQ(verifier_.remembered_forgeries(), 0u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(verifier_.Verify(forged, "f1", kNow).error, TicketError::kBadSignature);
  EXPECT_EQ(verifier_.remembered_forgeries(), 1u);
  // Malformed tickets are cheap to refuse already and are not remembered.
  EXPECT_EQ(verifier_.Verify("v1.garbage", "f1", kNow).error, TicketError::kMalformed);
  EXPECT_EQ(verifier_.remembered_forgeries(), 1u);
  for (std::size_t i = 0; i <= TicketVerifier::kRefusedCacheEntries; ++i) {
    const std::string other_forgery = MintTicket(other, Claims("f" + std::to_string(i), kNow + 60));
    EXPECT_EQ(verifier_.Verify(other_forgery, "f1", kNow).error, TicketError::kBadSignature);
  }
  EXPECT_LE(verifier_.remembered_forgeries(), TicketVerifier::kRefusedCacheEntries);
  EXPECT_TRUE(verifier_.Verify(MintTicket(keys_, Claims("f1", kNow + 60)), "f1", kNow).ok);
}

TEST_F(StreamTicketTest, MismatchedPublicKeyInKeyPairDoesNotChangeSignature) {
  // MintTicket derives the signing key from the seed alone; a wrong public_key field must not
  // produce different (and key-leaking) signatures.
  TicketKeyPair inconsistent = keys_;
  inconsistent.public_key = GenerateTicketKeyPair().public_key;
  EXPECT_EQ(MintTicket(inconsistent, Claims("f1", kNow + 60)), MintTicket(keys_, Claims("f1", kNow + 60)));
}

TEST_F(StreamTicketTest, EveryTruncationIsRefused) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  for (std::size_t length = 0; length < ticket.size(); ++length) {
    EXPECT_FALSE(verifier_.Verify(std::string_view(ticket).substr(0, length), "f1", kNow).ok) << length;
  }
}

TEST_F(StreamTicketTest, ExtraPartsOrSuffixAreRefused) {
  const std::string ticket = MintTicket(keys_, Claims("f1", kNow + 60));
  EXPECT_EQ(verifier_.Verify(ticket + ".", "f1", kNow).error, TicketError::kMalformed);
  EXPECT_EQ(verifier_.Verify(ticket + ".x", "f1", kNow).error, TicketError::kMalformed);
  EXPECT_FALSE(verifier_.Verify(ticket + "A", "f1", kNow).ok);
  EXPECT_FALSE(verifier_.Verify(ticket + "=", "f1", kNow).ok);
  EXPECT_FALSE(verifier_.Verify(" " + ticket, "f1", kNow).ok);
  EXPECT_FALSE(verifier_.Verify(ticket + "\n", "f1", kNow).ok);
}

TEST_F(StreamTicketTest, WrongVersionIsMalformed) {
  for (std::string_view version : {"v2", "V1", "v10", "", "v1 "}) {
    const auto outcome = verifier_.Verify(
        SignRawPayload(keys_, R"({"sub":"did:x:y","file":"f1","exp":1700000060})", version), "f1", kNow);
    EXPECT_FALSE(outcome.ok) << version;
    EXPECT_EQ(outcome.error, TicketError::kMalformed) << version;
  }
}

TEST_F(StreamTicketTest, EmptyAndGarbageAreMalformed) {
  const std::vector<std::string> inputs = {
      "",
      ".",
      "..",
      "...",
      "v1",
      "v1.",
      "v1..",
      "v1.a.",
      "v1..a",
      "v1.a.b",
      "v1.a.b.c",
      "not a ticket",
      std::string("v1.\0\0.\0\0", 9),
      "v1.eyJ9.!!!!",
      "v1.eyJ9." + std::string(86, '='),
      "v1.eyJ9." + std::string(85, 'A') + "B",  // non-zero leftover bits: a non-canonical encoding
      "v1.eyJ9." + std::string(85, 'A'),        // 63 bytes
      "v1.eyJ9." + std::string(88, 'A'),        // 66 bytes
  };
  for (const std::string& input : inputs) {
    const auto outcome = verifier_.Verify(input, "f1", kNow);
    EXPECT_FALSE(outcome.ok) << input;
    EXPECT_EQ(outcome.error, TicketError::kMalformed) << input;
  }
}

TEST_F(StreamTicketTest, RandomBytesAreRefused) {
  std::string buffer(600, '\0');
  for (int i = 0; i < 2000; ++i) {
    const std::size_t length = randombytes_uniform(static_cast<std::uint32_t>(buffer.size()));
    randombytes_buf(buffer.data(), length);
    EXPECT_FALSE(verifier_.Verify(std::string_view(buffer.data(), length), "f1", kNow).ok);
    // Structurally plausible but random parts.
    const std::string shaped = "v1." + Base64Url(std::string_view(buffer.data(), length)) + "." +
                               Base64Url(std::string_view(buffer.data(), 64));
    EXPECT_FALSE(verifier_.Verify(shaped, "f1", kNow).ok);
  }
}

TEST_F(StreamTicketTest, LengthLimitIs2048Bytes) {
  EXPECT_EQ(verifier_.Verify(std::string(3000, 'A'), "f1", kNow).error, TicketError::kMalformed);

  // Validly signed tickets of exactly 2048 and 2049 bytes, made long with a long DID.
  std::string sub = "did:plc:";
  std::string ticket;
  while ((ticket = MintTicket(keys_, Claims("f1", kNow + 60, sub))).size() < 2048) sub += 'x';
  ASSERT_EQ(ticket.size(), 2048u);
  EXPECT_TRUE(verifier_.Verify(ticket, "f1", kNow).ok);
  const std::string too_long = MintTicket(keys_, Claims("f1", kNow + 60, sub + "x"));
  ASSERT_EQ(too_long.size(), 2049u);
  EXPECT_EQ(verifier_.Verify(too_long, "f1", kNow).error, TicketError::kMalformed);

  std::string huge_sub = "did:plc:" + std::string(2200, 'x');
  const std::string huge = MintTicket(keys_, Claims("f1", kNow + 60, huge_sub));
  ASSERT_GE(huge.size(), 3000u);
  EXPECT_EQ(verifier_.Verify(huge, "f1", kNow).error, TicketError::kMalformed);
}

TEST_F(StreamTicketTest, SignedNonJsonIsMalformed) {
  for (std::string_view payload : {"not json", "", "{", "{}", "[]", "null", "\"did:x:y\"", "1700000060",
                                   "{\"sub\":\"did:x:y\",\"file\":\"f1\",\"exp\":1700000060} trailing",
                                   "{\"sub\":\"did:x:y\",\"file\":\"f1\",\"exp\":1700000060,}",
                                   "{\"sub\":\"did:x:\xff\",\"file\":\"f1\",\"exp\":1700000060}",
                                   "/* c */{\"sub\":\"did:x:y\",\"file\":\"f1\",\"exp\":1700000060}"}) {
    const auto outcome = VerifyRaw(payload);
    EXPECT_FALSE(outcome.ok) << payload;
    EXPECT_EQ(outcome.error, TicketError::kMalformed) << payload;
  }
  EXPECT_EQ(VerifyRaw(std::string(1000, '[') + std::string(1000, ']')).error, TicketError::kMalformed);
}

TEST_F(StreamTicketTest, SignedPayloadWithMissingOrMistypedFieldsIsMalformed) {
  for (std::string_view payload : {
           R"({"file":"f1","exp":1700000060})",
           R"({"sub":"did:x:y","exp":1700000060})",
           R"({"sub":"did:x:y","file":"f1"})",
           R"({"sub":"did:x:y","file":"f1","exp":"1700000060"})",
           R"({"sub":"did:x:y","file":"f1","exp":1700000060.0})",
           R"({"sub":"did:x:y","file":"f1","exp":1.7e9})",
           R"({"sub":"did:x:y","file":"f1","exp":true})",
           R"({"sub":"did:x:y","file":"f1","exp":null})",
           R"({"sub":"did:x:y","file":"f1","exp":18446744073709551615})",
           R"({"sub":"did:x:y","file":"f1","exp":[1700000060]})",
           R"({"sub":1,"file":"f1","exp":1700000060})",
           R"({"sub":"plc:viewer","file":"f1","exp":1700000060})",
           R"({"sub":"DID:x:y","file":"f1","exp":1700000060})",
           R"({"sub":"did:","file":"f1","exp":1700000060})",
           R"({"sub":"","file":"f1","exp":1700000060})",
           R"({"sub":"did:x:y","file":"","exp":1700000060})",
           R"({"sub":"did:x:y","file":null,"exp":1700000060})",
           R"({"sub":"did:x:y","file":["f1"],"exp":1700000060})",
           R"({"sub":"did:x:y","file":"f1","exp":1700000060,"aud":"x"})",
       }) {
    const auto outcome = VerifyRaw(payload);
    EXPECT_FALSE(outcome.ok) << payload;
    EXPECT_EQ(outcome.error, TicketError::kMalformed) << payload;
  }
}

TEST_F(StreamTicketTest, FileIdLengthLimitIs64) {
  const std::string file64(64, 'a');
  const std::string file65(65, 'a');
  EXPECT_TRUE(VerifyRaw(R"({"sub":"did:x:y","file":")" + file64 + R"(","exp":1700000060})", file64).ok);
  EXPECT_EQ(VerifyRaw(R"({"sub":"did:x:y","file":")" + file65 + R"(","exp":1700000060})", file65).error,
            TicketError::kMalformed);
}

TEST_F(StreamTicketTest, VerifierDoesNotRequireCanonicalJson) {
  // Only the signed bytes matter; other minters may order keys or space them differently.
  const auto outcome = VerifyRaw("{ \"exp\" : 1700000060, \"file\" : \"f1\", \"sub\" : \"did:x:y\" }\n");
  ASSERT_TRUE(outcome.ok) << TicketErrorName(outcome.error);
  EXPECT_EQ(outcome.claims.viewer_did, "did:x:y");
  EXPECT_EQ(outcome.claims.expires_at, 1'700'000'060);
}

TEST_F(StreamTicketTest, ClaimsAreEmptyOnFailure) {
  const auto outcome = verifier_.Verify(MintTicket(keys_, Claims("f1", kNow + 60)), "f2", kNow);
  EXPECT_FALSE(outcome.ok);
  EXPECT_TRUE(outcome.claims.viewer_did.empty());
  EXPECT_TRUE(outcome.claims.file_id.empty());
}

TEST(ParsePublicKeyHexTest, RoundTripsWithToHex) {
  const TicketKeyPair keys = FixedKeys();
  const std::string hex = ToHex(keys.public_key);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
  auto parsed = ParsePublicKeyHex(hex);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, keys.public_key);

  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto parsed_upper = ParsePublicKeyHex(upper);
  ASSERT_TRUE(parsed_upper);
  EXPECT_EQ(*parsed_upper, keys.public_key);
}

TEST(ParsePublicKeyHexTest, RefusesBadInput) {
  const std::string hex = ToHex(FixedKeys().public_key);
  for (const std::string& bad :
       {std::string(), hex.substr(1), hex + "0", hex + "\n", " " + hex, "0x" + hex.substr(2),
        "g" + hex.substr(1), hex.substr(0, 63) + "\0", std::string(64, ' '),
        std::string(64, '0')}) {  // all zeros: a small-order point, no real key
    EXPECT_FALSE(ParsePublicKeyHex(bad)) << bad;
  }
}

// ---- Key files -----------------------------------------------------------------------------

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const fs::path& path, std::string_view content, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string SeedHex(const Ed25519Seed& seed) {
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, seed.data(), seed.size());
  return hex;
}

class TicketKeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "stream-ticket-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    key_path_ = dir_ / "ticket-signing.key";
    pub_path_ = dir_ / "ticket-signing.pub";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes a key file by hand and checks that loading refuses it without touching it.
  void ExpectRefusedAndUntouched(std::string_view content, mode_t mode) {
    WriteFile(key_path_, content, mode);
    auto keys = LoadOrCreateTicketKeys(dir_);
    EXPECT_FALSE(keys) << "content: " << content;
    EXPECT_EQ(ReadFile(key_path_), content);
    EXPECT_EQ(ModeOf(key_path_), mode);
    EXPECT_FALSE(fs::exists(pub_path_));
  }

  fs::path dir_, key_path_, pub_path_;
};

TEST_F(TicketKeyFileTest, CreatesKeyFilesWithDocumentedContentAndModes) {
  auto keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(keys) << keys.status().message();

  EXPECT_EQ(ModeOf(key_path_), 0600u);
  EXPECT_EQ(ModeOf(pub_path_), 0644u);
  EXPECT_EQ(ReadFile(key_path_), SeedHex(keys->seed) + "\n");
  EXPECT_EQ(ReadFile(pub_path_), ToHex(keys->public_key) + "\n");

  unsigned char expected_public[crypto_sign_PUBLICKEYBYTES];
  unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(expected_public, secret_key, keys->seed.data());
  EXPECT_EQ(std::memcmp(expected_public, keys->public_key.data(), sizeof expected_public), 0);

  // No temporary files left behind.
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) names.insert(entry.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"ticket-signing.key", "ticket-signing.pub"}));
}

TEST_F(TicketKeyFileTest, ModesDoNotDependOnUmask) {
  const mode_t old_umask = ::umask(077);
  auto keys = LoadOrCreateTicketKeys(dir_);
  ::umask(old_umask);
  ASSERT_TRUE(keys);
  EXPECT_EQ(ModeOf(key_path_), 0600u);
  EXPECT_EQ(ModeOf(pub_path_), 0644u);
}

TEST_F(TicketKeyFileTest, CreatesMissingDataDir) {
  const fs::path nested = dir_ / "a" / "b";
  auto keys = LoadOrCreateTicketKeys(nested);
  ASSERT_TRUE(keys) << keys.status().message();
  EXPECT_TRUE(fs::exists(nested / "ticket-signing.key"));
}

TEST_F(TicketKeyFileTest, ReloadGivesSameKeys) {
  auto first = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(first);
  const std::string key_content = ReadFile(key_path_);
  auto second = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->seed, second->seed);
  EXPECT_EQ(first->public_key, second->public_key);
  EXPECT_EQ(ReadFile(key_path_), key_content);
}

TEST_F(TicketKeyFileTest, PubFileVerifiesTicketsMintedWithKeyFile) {
  auto keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(keys);
  std::string pub = ReadFile(pub_path_);
  ASSERT_FALSE(pub.empty());
  pub.pop_back();  // newline
  auto public_key = ParsePublicKeyHex(pub);
  ASSERT_TRUE(public_key);
  const TicketVerifier verifier(*public_key, kMaxTtl);
  EXPECT_TRUE(verifier.Verify(MintTicket(*keys, Claims("f1", kNow + 60)), "f1", kNow).ok);
}

TEST_F(TicketKeyFileTest, LoadsHandWrittenKeyFile) {
  const TicketKeyPair fixed = FixedKeys();
  // Uppercase and trailing whitespace, as an editor might leave it.
  std::string hex = SeedHex(fixed.seed);
  for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  WriteFile(key_path_, hex + " \r\n\n", 0600);
  auto keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(keys) << keys.status().message();
  EXPECT_EQ(keys->seed, fixed.seed);
  EXPECT_EQ(keys->public_key, fixed.public_key);
  EXPECT_EQ(ReadFile(pub_path_), ToHex(fixed.public_key) + "\n");
  EXPECT_EQ(ReadFile(key_path_), hex + " \r\n\n");
}

TEST_F(TicketKeyFileTest, RewritesMissingPubFile) {
  auto keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(keys);
  const std::string pub = ReadFile(pub_path_);
  fs::remove(pub_path_);
  auto reloaded = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(ReadFile(pub_path_), pub);
  EXPECT_EQ(ModeOf(pub_path_), 0644u);
}

TEST_F(TicketKeyFileTest, MismatchedPubFileIsRefusedNotOverwritten) {
  ASSERT_TRUE(LoadOrCreateTicketKeys(dir_));
  const std::string stale = ToHex(GenerateTicketKeyPair().public_key) + "\n";
  WriteFile(pub_path_, stale, 0644);
  EXPECT_FALSE(LoadOrCreateTicketKeys(dir_));
  EXPECT_EQ(ReadFile(pub_path_), stale);

  WriteFile(pub_path_, "garbage\n", 0644);
  EXPECT_FALSE(LoadOrCreateTicketKeys(dir_));
  EXPECT_EQ(ReadFile(pub_path_), "garbage\n");
}

TEST_F(TicketKeyFileTest, CorruptKeyFileIsRefusedAndUntouched) {
  const std::string good = SeedHex(FixedKeys().seed);
  ExpectRefusedAndUntouched("", 0600);
  ExpectRefusedAndUntouched("\n", 0600);
  ExpectRefusedAndUntouched(good.substr(1) + "\n", 0600);  // 63 hex
  ExpectRefusedAndUntouched(good + "0\n", 0600);           // 65 hex
  ExpectRefusedAndUntouched(" " + good + "\n", 0600);      // leading whitespace
  ExpectRefusedAndUntouched(good + "\nsecond line\n", 0600);
  ExpectRefusedAndUntouched(std::string(64, 'z') + "\n", 0600);  // not hex
  ExpectRefusedAndUntouched(good.substr(0, 32) + "\n" + good.substr(32), 0600);
  ExpectRefusedAndUntouched(std::string(10000, '0'), 0600);

  WriteFile(key_path_, std::string(64, 'z'), 0600);
  auto keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(keys.status().message().find("ticket-signing.key"), std::string::npos) << keys.status().message();
  WriteFile(key_path_, good.substr(2), 0600);
  keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TicketKeyFileTest, KeyFileReadableByOthersIsRefused) {
  const std::string content = SeedHex(FixedKeys().seed) + "\n";
  for (mode_t mode : {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0700 | 0004}) {
    ExpectRefusedAndUntouched(content, mode);
    auto keys = LoadOrCreateTicketKeys(dir_);
    ASSERT_FALSE(keys);
    EXPECT_EQ(keys.status().code(), StatusCode::kFailedPrecondition) << std::oct << mode;
  }
  // Tightening the mode is all it takes.
  ASSERT_EQ(::chmod(key_path_.c_str(), 0600), 0);
  auto keys = LoadOrCreateTicketKeys(dir_);
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->seed, FixedKeys().seed);
}

TEST_F(TicketKeyFileTest, UnreadableKeyFileIsRefused) {
  const std::string content = SeedHex(FixedKeys().seed) + "\n";
  WriteFile(key_path_, content, 0000);
  if (::geteuid() == 0) {
    // Root reads mode 0000 files: check from a child that runs as "nobody" instead.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
      auto keys = LoadOrCreateTicketKeys(dir_);
      ::_exit(!keys.ok() && keys.status().code() == StatusCode::kFailedPrecondition ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "as an unprivileged user the unreadable key must be refused";
  } else {
    auto keys = LoadOrCreateTicketKeys(dir_);
    ASSERT_FALSE(keys);
    EXPECT_EQ(keys.status().code(), StatusCode::kFailedPrecondition);  // EACCES from open()
  }
  EXPECT_EQ(ModeOf(key_path_), 0000u);
  EXPECT_FALSE(fs::exists(pub_path_));
  ASSERT_EQ(::chmod(key_path_.c_str(), 0600), 0);  // only now can the test read it back
  EXPECT_EQ(ReadFile(key_path_), content);
}

TEST_F(TicketKeyFileTest, KeyPathThatIsNotARegularFileIsRefused) {
  fs::create_directory(key_path_);
  EXPECT_FALSE(LoadOrCreateTicketKeys(dir_));
  EXPECT_TRUE(fs::is_directory(key_path_));
}

TEST_F(TicketKeyFileTest, DataDirThatIsAFileIsRefused) {
  const fs::path file = dir_ / "plain-file";
  WriteFile(file, "x", 0644);
  EXPECT_FALSE(LoadOrCreateTicketKeys(file));
}

TEST_F(TicketKeyFileTest, ConcurrentFirstUseAgreesOnOneKey) {
  // Several processes (here threads) starting on an empty data dir must end up with one key;
  // none may replace a key another already returned.
  for (int round = 0; round < 10; ++round) {
    const fs::path round_dir = dir_ / std::to_string(round);
    constexpr int kThreads = 8;
    std::vector<StatusOr<TicketKeyPair>> results(kThreads, Status(StatusCode::kCancelled, "not run"));
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] { results[i] = LoadOrCreateTicketKeys(round_dir); });
    }
    for (auto& t : threads) t.join();
    auto on_disk = LoadOrCreateTicketKeys(round_dir);
    ASSERT_TRUE(on_disk);
    for (const auto& result : results) {
      ASSERT_TRUE(result) << result.status().message();
      EXPECT_EQ(result->seed, on_disk->seed);
    }
  }
}

TEST(GenerateTicketKeyPairTest, FreshAndConsistent) {
  const TicketKeyPair a = GenerateTicketKeyPair();
  const TicketKeyPair b = GenerateTicketKeyPair();
  EXPECT_NE(a.seed, b.seed);
  EXPECT_NE(a.public_key, b.public_key);
  unsigned char expected_public[crypto_sign_PUBLICKEYBYTES];
  unsigned char secret_key[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(expected_public, secret_key, a.seed.data());
  EXPECT_EQ(std::memcmp(expected_public, a.public_key.data(), sizeof expected_public), 0);
}

TEST(TicketVerifierCacheTest, RememberedTicketsStillExpireAndStayBoundToTheirFile) {
  const TicketKeyPair keys = GenerateTicketKeyPair();
  const TicketVerifier verifier(keys.public_key, 86400);
  const std::int64_t now = 1'900'000'000;
  const std::string ticket = MintTicket(keys, {"did:plc:viewer", "0123456789abcdef", now + 60});
  ASSERT_TRUE(verifier.Verify(ticket, "0123456789abcdef", now).ok);  // now remembered
  EXPECT_TRUE(verifier.Verify(ticket, "0123456789abcdef", now + 59).ok);
  EXPECT_EQ(verifier.Verify(ticket, "0123456789abcdef", now + 60).error, TicketError::kExpired);
  EXPECT_EQ(verifier.Verify(ticket, "fedcba9876543210", now).error, TicketError::kWrongFile);
  std::string forged = ticket;
  forged.back() = forged.back() == 'A' ? 'Q' : 'A';
  EXPECT_FALSE(verifier.Verify(forged, "0123456789abcdef", now).ok);
}

}  // namespace
}  // namespace plyr::streamer

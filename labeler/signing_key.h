// SigningKey: the labeler's ATProto signing key, on either curve the protocol allows.
//
//   k256 (secp256k1, the default) signs through libsecp256k1; p256 (NIST P-256) through OpenSSL 3.
//   Sign() hashes the message with SHA-256, signs the digest and returns the 64-byte compact r||s
//   with low S (s <= n/2) on both curves, as ATProto requires. k256 nonces are RFC 6979, so its
//   signatures are deterministic; OpenSSL 3.0 has no RFC 6979, so p256 nonces are random (ATProto
//   does not require deterministic nonces).
//   Private key bytes are wiped when a key is destroyed and never appear in error messages.
//   The public key is published as a Multikey: "z" + base58btc(multicodec prefix + 33-byte
//   compressed point), prefix e7 01 (secp256k1-pub) or 80 24 (p256-pub); did:key = "did:key:" + it.
//
// Key file (<data>/labeler/signing-key.json, mode 0600): {"curve": "k256", "private_key": "<64 hex>"}.
// Load() refuses a file with any group/other permission bit set or that does not parse; Save()
// never replaces a key.
//
// Errors are Status values whose message says what is wrong and names the file, never the key:
// InvalidArgument for a malformed key or key file, NotFound for a missing file, AlreadyExists when
// Save() would replace one, FailedPrecondition for a file others may read, Internal for an I/O or
// crypto library failure.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace plyr::labeler {

enum class Curve { kK256, kP256 };

std::string_view CurveName(Curve curve);  // "k256" / "p256"
// InvalidArgument for any other name.
StatusOr<Curve> ParseCurve(std::string_view name);

class SigningKey {
 public:
  // A new random key. Null only if the crypto library fails (out of memory).
  static std::unique_ptr<SigningKey> Generate(Curve curve);
  // From a 32-byte private scalar given as 64 hex characters (PLYR_LABELER_SIGNING_KEY's form).
  // InvalidArgument when it is not 64 hex characters or not a valid scalar of the curve.
  static StatusOr<std::unique_ptr<SigningKey>> FromHex(Curve curve, std::string_view hex);
  // Reads a key file: NotFound when it is missing, FailedPrecondition when others may read it,
  // InvalidArgument when it is not a key file (or not a regular file), Internal when unreadable.
  static StatusOr<std::unique_ptr<SigningKey>> Load(const std::filesystem::path& path);
  // Writes the key file atomically with mode 0600, creating missing parent folders. Refuses to
  // overwrite an existing file (AlreadyExists); Internal when a folder or the file cannot be made.
  Status Save(const std::filesystem::path& path) const;

  virtual ~SigningKey() = default;
  virtual Curve curve() const = 0;
  // SHA-256 of `message`, ECDSA, low-S, 64 bytes r||s. Thread-safe. Empty only if the crypto
  // library fails (out of memory), so callers check for 64 bytes before storing a label.
  virtual std::string Sign(std::string_view message) const = 0;
  // 33-byte compressed public point.
  virtual std::string PublicKeyCompressed() const = 0;
  // "z..." multibase of the multicodec-prefixed public key.
  std::string Multikey() const;
  // "did:key:z...".
  std::string DidKey() const { return "did:key:" + Multikey(); }

 protected:
  virtual std::string PrivateKeyHex() const = 0;
};

// Verifies a 64-byte r||s signature over SHA-256(message) against a did:key (either curve).
// Rejects high-S signatures, as the reference verifiers do, and anything malformed (false, never
// an exception).
bool VerifyWithDidKey(std::string_view did_key, std::string_view message, std::string_view signature);

// base58btc (Bitcoin alphabet; each leading zero byte is a '1') of `bytes`, and its inverse, which
// fails with InvalidArgument on a character outside the alphabet. Quadratic: for short
// inputs such as keys.
std::string Base58Encode(std::string_view bytes);
StatusOr<std::string> Base58Decode(std::string_view text);

}  // namespace plyr::labeler

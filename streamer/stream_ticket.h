// Stream tickets: short-lived, Ed25519-signed grants that let a viewer stream gated audio.
//
// The API layer (which knows who the viewer is) mints a ticket and hands it to the browser;
// the streamer holds only the public key and verifies tickets locally, with no database round
// trip. The wire format is documented in docs/stream-tickets.md and is easy to mint from
// Python with PyNaCl:
//
//   ticket  = "v1." + base64url(payload) + "." + base64url(signature)   (no padding)
//   payload = compact JSON: {"sub": "<viewer DID>", "file": "<file_id or *>", "exp": <unix seconds>}
//   signature = Ed25519 over the ASCII bytes of "v1." + base64url(payload)
//
// Keys are 32-byte Ed25519 seeds (secret) and 32-byte public keys, both written as lowercase hex.
// All functions are thread-safe; TicketVerifier may be shared by every I/O thread.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"

namespace plyr::streamer {

using Ed25519PublicKey = std::array<unsigned char, 32>;
using Ed25519Seed = std::array<unsigned char, 32>;

struct TicketKeyPair {
  Ed25519Seed seed{};
  Ed25519PublicKey public_key{};
};

// Why a ticket was refused. Every failure maps to 401 at the HTTP layer; the kind goes to logs.
enum class TicketError {
  kMalformed = 1,   // not three parts, bad base64url, bad JSON, missing or mistyped fields, too long
  kBadSignature,    // signature does not verify under the configured public key
  kExpired,         // exp <= now
  kTooLongLived,    // exp further in the future than the verifier's max_ttl allows
  kWrongFile,       // valid ticket, but for another file
};
std::string_view TicketErrorName(TicketError e);  // "malformed", "bad_signature", ...

struct TicketClaims {
  std::string viewer_did;  // "sub"
  std::string file_id;     // "file": a file id, or "*" for any file
  std::int64_t expires_at = 0;  // "exp", unix seconds
};

// Generates a fresh key pair (libsodium randombytes).
TicketKeyPair GenerateTicketKeyPair();

// Loads the key pair stored in `data_dir` ("ticket-signing.key" seed hex, 0600, and
// "ticket-signing.pub"), creating both on first use. Fails (never overwrites), naming the file:
// InvalidArgument for a file that is not a key (or a .pub that does not match the key),
// FailedPrecondition for a key file that is unreadable or readable by group or others, Internal
// for anything else.
StatusOr<TicketKeyPair> LoadOrCreateTicketKeys(const std::filesystem::path& data_dir);

// Parses 64 hex characters into a public key; InvalidArgument otherwise.
StatusOr<Ed25519PublicKey> ParsePublicKeyHex(std::string_view hex);
// Parses a comma-separated list of such keys (at least one); InvalidArgument otherwise.
StatusOr<std::vector<Ed25519PublicKey>> ParsePublicKeyList(std::string_view list);
std::string ToHex(const Ed25519PublicKey& key);

// Mints a ticket. `claims.expires_at` is used as given.
std::string MintTicket(const TicketKeyPair& keys, const TicketClaims& claims);

class TicketVerifier {
 public:
  // `max_ttl_seconds`: tickets whose exp lies further than this beyond `now` are refused, so a
  // leaked long-lived ticket cannot be minted by mistake and kept forever.
  TicketVerifier(const Ed25519PublicKey& public_key, std::int64_t max_ttl_seconds);
  // Accepts a ticket signed by any of `public_keys` (the current key first, then those being
  // retired): the signer's key can change without an outage (docs/stream-tickets.md). Needs at
  // least one key.
  TicketVerifier(std::vector<Ed25519PublicKey> public_keys, std::int64_t max_ttl_seconds);

  // Verifies `ticket` at time `now` (unix seconds) for access to `file_id`.
  // Returns the claims on success; the failure reason otherwise. Never throws; any input
  // (empty, huge, binary) is handled. Tickets longer than 2048 bytes are kMalformed.
  struct Outcome {
    bool ok = false;
    TicketError error = TicketError::kMalformed;
    TicketClaims claims;
  };
  // Tickets whose signature verified are remembered (at most kVerifiedCacheEntries), so the
  // many range requests of one playback verify the signature once; expiry, lifetime and file
  // are checked on every call. Tickets whose signature failed are remembered too (at most
  // kRefusedCacheEntries), so a flood repeating a forged ticket costs a lookup per request, not
  // an Ed25519 verification (the keys never change while the verifier lives).
  Outcome Verify(std::string_view ticket, std::string_view file_id, std::int64_t now) const;

  // How many forged tickets are remembered now (for tests).
  std::size_t remembered_forgeries() const;

  static constexpr std::size_t kVerifiedCacheEntries = 16384;
  static constexpr std::size_t kRefusedCacheEntries = 4096;

 private:
  // Checks the format and the Ed25519 signature, then parses the claims; sets `error` on failure.
  std::optional<TicketClaims> VerifySignature(std::string_view ticket, TicketError* error) const;

  std::vector<Ed25519PublicKey> public_keys_;
  std::int64_t max_ttl_seconds_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, TicketClaims> verified_;  // guarded by cache_mutex_
  mutable std::unordered_set<std::string> forged_;                  // guarded by cache_mutex_
};

}  // namespace plyr::streamer

// Label: one ATProto label (com.atproto.label.defs#label) as this labeler signs, stores and serves
// it, plus the validation rules its fields obey.
//
// The signed bytes are the DRISL (deterministic DAG-CBOR) map of exactly the fields below minus
// `sig`, with `ver` = 1, `neg` present only when true and `cid`/`exp` only when set. What is served
// is that same map plus `sig`, so every verifier re-encodes precisely what was signed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/status.h"

namespace plyr::labeler {

struct Label {
  std::string src;                 // the labeler's DID
  std::string uri;                 // subject: at:// URI or a bare DID
  std::optional<std::string> cid;  // the record version the label applies to
  std::string val;                 // label value, at most 128 bytes
  bool neg = false;                // a negation withdraws an earlier label
  std::string cts;                 // created-at, RFC 3339 with milliseconds and Z
  std::optional<std::string> exp;  // expiry
  std::string sig;                 // 64 bytes r||s (low-S), empty until signed
};

// A label in the log: its sequence number and its signed CBOR encoding (the map with `sig`), which
// is what the stream sends.
struct StoredLabel {
  std::int64_t seq = 0;
  Label label;
  std::string cbor;
};

// --- Validation (each returns an empty string when valid, otherwise why not) ---

// `val`: 1..128 UTF-8 bytes, valid UTF-8, no whitespace or control characters.
std::string CheckLabelValue(std::string_view val);
// A DID: "did:" method ":" identifier, per the ATProto DID syntax (at most 2048 characters); a '%'
// must start a percent-encoded octet (%XX), as W3C DID syntax requires.
std::string CheckDid(std::string_view did);
// A label subject: an at:// URI (authority a DID or handle, then optionally /collection-NSID and
// /record-key; no query or fragment), or a bare DID. At most 8192 characters.
std::string CheckSubjectUri(std::string_view uri);
// A CID string (CIDv1 multibase base32 'b...' or CIDv0 'Qm...').
std::string CheckCid(std::string_view cid);
// An ATProto datetime: RFC 3339 with upper-case T, whole seconds, optional fraction, Z or ±hh:mm
// (not -00:00).
std::string CheckDatetime(std::string_view datetime);

// Reads a label to emit from a caller's JSON object: `uri`, `val` (or `default_val` when absent
// and `default_val` is not empty), `cid`?, `neg`?, `exp`?; other members are ignored. `src`, `cts`
// and `sig` are left for the labeler to fill in. InvalidArgument, saying which member and why,
// when the object is not a label this labeler would sign.
StatusOr<Label> LabelFromInput(const boost::json::value& input, std::string_view default_val);

// Now, as an ATProto datetime with millisecond precision ("2026-11-25T14:05:10.123Z").
std::string NowDatetime();

// The label as JSON for XRPC responses: no nulls, `neg` only when true, `sig` (when signed) as
// {"$bytes": standard base64 without padding}.
boost::json::object LabelToJson(const Label& label);

}  // namespace plyr::labeler

// AWS Signature Version 4 (AWS4-HMAC-SHA256), as S3-compatible stores (AWS S3, Cloudflare R2,
// MinIO) check it: an Authorization header for a request, or a presigned URL's query.
//
// S3 rules throughout: the path is encoded once, byte by byte (everything but A-Z a-z 0-9 - . _ ~
// and '/'), and never normalised ("a//b" and "a/./b" are names of their own). Query names and
// values are encoded the same way ('/' too) and sorted; header names are lower-cased, values
// trimmed with inner runs of spaces collapsed, and headers of one name joined with ','.
//
// Pure functions of their arguments (the time included): thread-safe, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plyr::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only: sent and signed as X-Amz-Security-Token
};

// Where a signature is valid: "us-east-1" (R2 takes "auto") and "s3".
struct Scope {
  std::string region;
  std::string service = "s3";
};

using NameValues = std::vector<std::pair<std::string, std::string>>;

// What is signed. Names and values are as they are meant, not encoded; `headers` must hold
// `host` (the Host header as sent: "bucket.s3.amazonaws.com" or "127.0.0.1:9000").
struct SignableRequest {
  std::string method = "GET";
  std::string path = "/";  // "/bucket/key with spaces"
  NameValues query;
  NameValues headers;
  // Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". S3 also wants it sent as x-amz-content-sha256.
  std::string payload_sha256;
};

// The hex SHA-256 of no bytes: the payload hash of a request without a body.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// "20150830T123600Z" for the given Unix time (UTC).
std::string AmzDate(std::int64_t unix_seconds);
// RFC 3986 percent-encoding of each byte but the unreserved ones; '/' is kept when `keep_slash`.
std::string UriEncode(std::string_view text, bool keep_slash);
// Hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

// The canonical request (the first step, exposed for tests and for debugging a refused request).
std::string CanonicalRequest(const SignableRequest& request);
// The string to sign for a canonical request made at `amz_date`.
std::string StringToSign(std::string_view canonical_request, std::string_view amz_date, const Scope& scope);
// The hex signature of `string_to_sign` with the key derived from `secret` for the date and scope.
std::string Signature(std::string_view secret, std::string_view amz_date, const Scope& scope,
                      std::string_view string_to_sign);

// Signs `request` made at `unix_seconds`: the headers to add to it, in this order: x-amz-date,
// x-amz-security-token (with temporary credentials), and authorization. The request's own
// headers (x-amz-content-sha256 included, if sent) must be the ones it goes out with.
NameValues SignHeaders(SignableRequest request, const Credentials& credentials, const Scope& scope,
                       std::int64_t unix_seconds);

// A presigned URL's query string for `method` on `path` at `host` ("X-Amz-Algorithm=…&
// X-Amz-Signature=…"), valid `expires_seconds` (1 to 604800) from `unix_seconds`; `extra_query`
// (such as response-content-type) is signed with it. The payload is UNSIGNED-PAYLOAD and only
// `host` is signed, so any client can use the URL as it is.
std::string PresignedQuery(std::string_view method, std::string_view host, std::string_view path,
                           const NameValues& extra_query, const Credentials& credentials, const Scope& scope,
                           std::int64_t unix_seconds, int expires_seconds);

}  // namespace plyr::aws

// S3Client: the objects of one bucket in an S3-compatible store (AWS S3, Cloudflare R2, MinIO),
// over HttpClient, each request signed with Signature V4 (common/aws_sigv4.h).
//
// Addressing is path-style (endpoint/bucket/key), which all of them accept. Files go up and
// come down streamed (HttpClient's body_file and response_file), never whole in memory.
// Failures: NotFound for a missing key or bucket; FailedPrecondition when the store refuses
// the credentials or the signature (403); InvalidArgument for a range outside the object (416);
// Unavailable when the store cannot be reached or answers 5xx (retrying may help); Internal
// for any other answer. Messages carry the store's own error code (NoSuchKey, SlowDown, ...).
//
// Thread-safe (no mutable state); the HttpClient must outlive it. Each call's I/O runs on the
// executor passed in, as HttpClient's does.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/aws_sigv4.h"
#include "common/http_client.h"
#include "common/net.h"
#include "common/status.h"

namespace plyr {

struct S3Settings {
  std::string endpoint;  // "https://<account>.r2.cloudflarestorage.com", "http://127.0.0.1:9000"
  std::string bucket;
  std::string region = "auto";  // R2 takes "auto"; AWS the bucket's region
  aws::Credentials credentials;
  std::chrono::milliseconds timeout{60'000};  // per request, the transfer included
};

struct S3Object {
  std::uint64_t size = 0;
  std::string etag;
  std::string content_type;
};

struct S3ListedObject {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t last_modified = 0;  // Unix seconds

  bool operator==(const S3ListedObject&) const = default;
};

// One page of a listing: keys in UTF-8 binary order, and where the next page starts (empty: no
// more).
struct S3Listing {
  std::vector<S3ListedObject> objects;
  std::string next_token;
};

class S3Client {
 public:
  // InvalidArgument when the endpoint is not http(s)://host[:port] without a path, the bucket is
  // not a bucket name, or a credential is empty.
  static StatusOr<std::unique_ptr<S3Client>> Create(HttpClient& http, S3Settings settings);

  // Uploads `path` as `key` in one PUT. `payload_sha256`: the file's hex SHA-256 when the caller
  // has it (the store then checks the bytes), else empty (UNSIGNED-PAYLOAD).
  asio::awaitable<Status> PutFile(asio::any_io_executor executor, std::string key, std::filesystem::path path,
                                  std::string content_type, std::string payload_sha256);
  // Uploads a file of any size as `key` in parts of `part_bytes` (5 MiB to 5 GiB, raised so that
  // there are at most 10 000 parts), each streamed from its slice of the file: never whole in
  // memory. A failure aborts the upload, so no parts are left behind on the store.
  asio::awaitable<Status> PutFileMultipart(asio::any_io_executor executor, std::string key,
                                           std::filesystem::path path, std::string content_type,
                                           std::uint64_t part_bytes = kDefaultPartBytes);
  // Uploads the file of `size` bytes at `path` as `key` the way its size calls for: one PUT up to
  // four parts' worth, PutFileMultipart beyond (a failed part then costs only itself).
  asio::awaitable<Status> PutFileOfSize(asio::any_io_executor executor, std::string key, std::filesystem::path path,
                                        std::uint64_t size, std::string content_type);
  // Uploads small `bytes` as `key`.
  asio::awaitable<Status> PutBytes(asio::any_io_executor executor, std::string key, std::string bytes,
                                   std::string content_type);
  asio::awaitable<StatusOr<S3Object>> Head(asio::any_io_executor executor, std::string key);
  // Bytes [offset, offset + length) of `key` (at most 8 MiB; fewer when the object ends first).
  asio::awaitable<StatusOr<std::string>> GetRange(asio::any_io_executor executor, std::string key,
                                                  std::uint64_t offset, std::uint64_t length);
  // Bytes [offset, offset + length) of `key` as a stream, read as the caller takes them (a
  // proxy): the store has answered 206 when this succeeds. A range past the end is
  // InvalidArgument; a range running past it is cut short by the store (the stream then ends
  // early: the caller compares what it got with what it asked for).
  asio::awaitable<StatusOr<std::unique_ptr<HttpResponseStream>>> OpenRange(asio::any_io_executor executor,
                                                                           std::string key, std::uint64_t offset,
                                                                           std::uint64_t length);
  // The whole object into `path` (created or truncated).
  asio::awaitable<Status> GetToFile(asio::any_io_executor executor, std::string key, std::filesystem::path path);
  // Keys starting with `prefix`, at most `max_keys` (1-1000) a page, from `token` (empty: the
  // first page; else the previous page's next_token).
  asio::awaitable<StatusOr<S3Listing>> List(asio::any_io_executor executor, std::string prefix, std::string token,
                                            int max_keys = 1000);
  // Removes `key`; a key that is not there is removed already (S3 answers 204 either way).
  asio::awaitable<Status> Delete(asio::any_io_executor executor, std::string key);

  // A URL anyone can GET `key` with for `expires_seconds` from `unix_seconds`.
  std::string PresignedGetUrl(std::string_view key, int expires_seconds, std::int64_t unix_seconds) const;

  static constexpr std::uint64_t kMaxRangeBytes = 8 << 20;
  static constexpr std::uint64_t kMinPartBytes = 5 << 20;  // S3's floor for every part but the last
  static constexpr std::uint64_t kDefaultPartBytes = 16 << 20;

 private:
  S3Client(HttpClient& http, S3Settings settings, std::string host);
  // `request` (method, body, headers other than host) for `key`, signed, with URL and timeout.
  HttpClientRequest Signed(const HttpClientRequest& unsigned_request, std::string_view key,
                           std::string_view payload_sha256, const aws::NameValues& query) const;
  // Signs and sends `request` (method, body, headers other than host) for `key`.
  asio::awaitable<StatusOr<HttpClientResponse>> Send(asio::any_io_executor executor,
                                                     const HttpClientRequest& unsigned_request, std::string_view key,
                                                     std::string_view payload_sha256, const aws::NameValues& query = {});
  // Abandons a multipart upload (its parts are dropped by the store); best effort.
  asio::awaitable<void> AbortMultipart(asio::any_io_executor executor, const std::string& key,
                                       const std::string& upload_id);
  // "/bucket/key"; "/bucket" for the empty key (the bucket itself: listings).
  std::string PathOf(std::string_view key) const;

  HttpClient& http_;
  S3Settings settings_;
  std::string host_;  // host[:port] of the endpoint, as the Host header carries it
};

}  // namespace plyr

#include "common/s3_client.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>

#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include "common/file_util.h"

namespace plyr {

namespace {

// The text of the first <tag>…</tag> in an S3 error document (empty if none). S3's errors are
// flat: <Error><Code>NoSuchKey</Code><Message>…</Message>…</Error>.
std::string XmlField(std::string_view xml, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  const auto start = xml.find(open);
  if (start == std::string_view::npos) return {};
  const auto end = xml.find(close, start + open.size());
  if (end == std::string_view::npos) return {};
  return std::string(xml.substr(start + open.size(), end - start - open.size()));
}

// XML character data with its five predefined entities decoded (keys may hold any character).
std::string XmlText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '&') {
      static constexpr std::pair<std::string_view, char> kEntities[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
      bool decoded = false;
      for (const auto& [entity, c] : kEntities) {
        if (text.substr(i, entity.size()) == entity) {
          out += c;
          i += entity.size() - 1;
          decoded = true;
          break;
        }
      }
      if (decoded) continue;
    }
    out += text[i];
  }
  return out;
}

// Unix seconds of an ISO 8601 UTC time as S3 writes it ("2026-12-03T14:05:09.000Z"); 0 if it
// is not one.
std::int64_t ParseIsoTime(std::string_view text) {
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (std::sscanf(std::string(text).c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &year, &month, &day, &hour, &minute,
                  &second) != 6) {
    return 0;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(::timegm(&tm));
}

// A non-2xx answer as a Status (see the header for the codes).
Status StoreRefused(const HttpClientResponse& response, std::string_view what) {
  std::string code = XmlField(response.body, "Code");
  if (code.empty()) code = "HTTP " + std::to_string(response.status);
  const std::string message = std::string(what) + ": the store answered " + code;
  if (response.status == 404) return Status(StatusCode::kNotFound, message);
  if (response.status == 403) return Status(StatusCode::kFailedPrecondition, message);
  if (response.status == 416) return Status(StatusCode::kInvalidArgument, message);
  if (response.status >= 500) return Status(StatusCode::kUnavailable, message);
  return Status(StatusCode::kInternal, message);
}

// S3 bucket names: 3-63 of a-z 0-9 . - (the rules every S3-compatible store accepts).
bool IsBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  return true;
}

std::int64_t Now() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

StatusOr<std::unique_ptr<S3Client>> S3Client::Create(HttpClient& http, S3Settings settings) {
  while (!settings.endpoint.empty() && settings.endpoint.back() == '/') settings.endpoint.pop_back();
  auto url = boost::urls::parse_uri(settings.endpoint);
  if (!url || (url->scheme_id() != boost::urls::scheme::http && url->scheme_id() != boost::urls::scheme::https) ||
      url->host().empty() || !url->encoded_path().empty() || url->has_query() || url->has_userinfo()) {
    return Status(StatusCode::kInvalidArgument, "the S3 endpoint must be http(s)://host[:port], without a path");
  }
  if (!IsBucketName(settings.bucket)) {
    return Status(StatusCode::kInvalidArgument, "the S3 bucket must be 3-63 characters of a-z, 0-9, '.' and '-'");
  }
  if (settings.credentials.access_key_id.empty() || settings.credentials.secret_access_key.empty()) {
    return Status(StatusCode::kInvalidArgument, "the S3 access key id and secret access key are both required");
  }
  if (settings.region.empty()) return Status(StatusCode::kInvalidArgument, "the S3 region is empty");
  std::string host(url->encoded_host_and_port());
  return std::unique_ptr<S3Client>(new S3Client(http, std::move(settings), std::move(host)));
}

S3Client::S3Client(HttpClient& http, S3Settings settings, std::string host)
    : http_(http), settings_(std::move(settings)), host_(std::move(host)) {}

std::string S3Client::PathOf(std::string_view key) const {
  return key.empty() ? "/" + settings_.bucket : "/" + settings_.bucket + "/" + std::string(key);
}

HttpClientRequest S3Client::Signed(const HttpClientRequest& unsigned_request, std::string_view key,
                                   std::string_view payload_sha256, const aws::NameValues& query) const {
  HttpClientRequest request = unsigned_request;
  aws::SignableRequest signable;
  signable.method = std::string(http::to_string(request.method));
  signable.path = PathOf(key);
  signable.headers = request.headers;
  signable.headers.emplace_back("host", host_);
  signable.headers.emplace_back("x-amz-content-sha256", std::string(payload_sha256));
  signable.payload_sha256 = std::string(payload_sha256);
  signable.query = query;
  const aws::Scope scope{settings_.region, "s3"};
  request.headers.emplace_back("x-amz-content-sha256", std::string(payload_sha256));
  for (auto& header : aws::SignHeaders(std::move(signable), settings_.credentials, scope, Now())) {
    request.headers.push_back(std::move(header));
  }
  request.url = settings_.endpoint + aws::UriEncode(PathOf(key), true);
  for (std::size_t i = 0; i < query.size(); ++i) {
    request.url += (i == 0 ? "?" : "&") + aws::UriEncode(query[i].first, false) + "=" + aws::UriEncode(query[i].second, false);
  }
  request.timeout = settings_.timeout;
  return request;
}

asio::awaitable<StatusOr<HttpClientResponse>> S3Client::Send(asio::any_io_executor executor,
                                                             const HttpClientRequest& unsigned_request,
                                                             std::string_view key, std::string_view payload_sha256,
                                                             const aws::NameValues& query) {
  const HttpClientRequest request = Signed(unsigned_request, key, payload_sha256, query);
  co_return co_await http_.Send(executor, request);
}

asio::awaitable<Status> S3Client::PutFile(asio::any_io_executor executor, std::string key, std::filesystem::path path,
                                          std::string content_type, std::string payload_sha256) {
  HttpClientRequest request;
  request.method = http::verb::put;
  request.body_file = std::move(path);
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", std::move(content_type));
  std::string hash = payload_sha256.empty() ? std::string(aws::kUnsignedPayload) : std::move(payload_sha256);
  auto response = co_await Send(executor, request, key, hash);
  if (!response.ok()) co_return response.status();
  if (response->status / 100 != 2) co_return StoreRefused(*response, "PUT " + key);
  co_return OkStatus();
}

asio::awaitable<Status> S3Client::PutFileMultipart(asio::any_io_executor executor, std::string key,
                                                   std::filesystem::path path, std::string content_type,
                                                   std::uint64_t part_bytes) {
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) co_return FileError("cannot upload " + path.filename().string(), ec.value());
  constexpr std::uint64_t kMaxPartBytes = 5ull << 30, kMaxParts = 10'000;
  part_bytes = std::clamp(part_bytes, kMinPartBytes, kMaxPartBytes);
  part_bytes = std::max(part_bytes, (size + kMaxParts - 1) / kMaxParts);

  HttpClientRequest create;
  create.method = http::verb::post;
  if (!content_type.empty()) create.headers.emplace_back("Content-Type", std::move(content_type));
  const aws::NameValues create_query = {{"uploads", ""}};
  auto created = co_await Send(executor, create, key, aws::kEmptyPayloadSha256, create_query);
  if (!created.ok()) co_return created.status();
  if (created->status != 200) co_return StoreRefused(*created, "starting the upload of " + key);
  const std::string upload_id = XmlField(created->body, "UploadId");
  if (upload_id.empty()) co_return Status(StatusCode::kInternal, "the store started an upload without an UploadId");

  std::string parts_xml;
  Status failed;
  for (std::uint64_t offset = 0, number = 1; offset < size || number == 1; offset += part_bytes, ++number) {
    HttpClientRequest part;
    part.method = http::verb::put;
    part.body_file = path;
    part.body_file_offset = offset;
    part.body_file_length = std::min(part_bytes, size - offset);
    const aws::NameValues part_query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    auto sent = co_await Send(executor, part, key, aws::kUnsignedPayload, part_query);
    if (!sent.ok()) {
      failed = sent.status();
      break;
    }
    if (sent->status != 200) {
      failed = StoreRefused(*sent, "part " + std::to_string(number) + " of " + key);
      break;
    }
    parts_xml += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>" +
                 std::string(sent->Header("ETag")) + "</ETag></Part>";
    if (size == 0) break;  // an empty file is one empty part
  }
  if (failed.ok()) {
    HttpClientRequest complete;
    complete.method = http::verb::post;
    complete.body = "<CompleteMultipartUpload>" + parts_xml + "</CompleteMultipartUpload>";
    complete.headers.emplace_back("Content-Type", "application/xml");
    const std::string body_hash = aws::Sha256Hex(complete.body);
    const aws::NameValues complete_query = {{"uploadId", upload_id}};
    auto completed = co_await Send(executor, complete, key, body_hash, complete_query);
    if (!completed.ok()) {
      failed = completed.status();
    } else if (completed->status != 200 || completed->body.find("<Error>") != std::string::npos) {
      // S3 may answer 200 and put the error in the body (it decides after the headers are out).
      failed = StoreRefused(*completed, "completing the upload of " + key);
    }
  }
  if (failed.ok()) co_return OkStatus();
  co_await AbortMultipart(executor, key, upload_id);
  co_return failed;
}

asio::awaitable<void> S3Client::AbortMultipart(asio::any_io_executor executor, const std::string& key,
                                               const std::string& upload_id) {
  HttpClientRequest abort;
  abort.method = http::verb::delete_;
  const aws::NameValues query = {{"uploadId", upload_id}};
  auto aborted = co_await Send(executor, abort, key, aws::kEmptyPayloadSha256, query);
  if (!aborted.ok() || aborted->status / 100 != 2) {
    // Left to the bucket's lifecycle rule for incomplete uploads (docs/deployment.md).
    spdlog::warn("s3: cannot abort the upload of key={} upload_id={}", key, upload_id);
  }
}

asio::awaitable<Status> S3Client::PutFileOfSize(asio::any_io_executor executor, std::string key,
                                                std::filesystem::path path, std::uint64_t size,
                                                std::string content_type) {
  if (size > 4 * kDefaultPartBytes) {
    co_return co_await PutFileMultipart(executor, key, path, content_type);
  }
  const std::string unsigned_payload;  // no hash: the caller hashed the bytes on their way in, if at all
  co_return co_await PutFile(executor, key, path, content_type, unsigned_payload);
}

asio::awaitable<Status> S3Client::PutBytes(asio::any_io_executor executor, std::string key, std::string bytes,
                                           std::string content_type) {
  HttpClientRequest request;
  request.method = http::verb::put;
  std::string hash = aws::Sha256Hex(bytes);
  request.body = std::move(bytes);
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", std::move(content_type));
  auto response = co_await Send(executor, request, key, hash);
  if (!response.ok()) co_return response.status();
  if (response->status / 100 != 2) co_return StoreRefused(*response, "PUT " + key);
  co_return OkStatus();
}

asio::awaitable<StatusOr<S3Object>> S3Client::Head(asio::any_io_executor executor, std::string key) {
  HttpClientRequest request;
  request.method = http::verb::head;
  auto response = co_await Send(executor, request, key, aws::kEmptyPayloadSha256);
  if (!response.ok()) co_return response.status();
  if (response->status != 200) co_return StoreRefused(*response, "HEAD " + key);
  S3Object object;
  const std::string_view length = response->Header("Content-Length");
  std::from_chars(length.data(), length.data() + length.size(), object.size);
  object.etag = std::string(response->Header("ETag"));
  object.content_type = std::string(response->Header("Content-Type"));
  co_return object;
}

asio::awaitable<StatusOr<std::string>> S3Client::GetRange(asio::any_io_executor executor, std::string key,
                                                          std::uint64_t offset, std::uint64_t length) {
  if (length == 0 || length > kMaxRangeBytes) {
    co_return Status(StatusCode::kInvalidArgument, "a ranged read is 1 byte to 8 MiB");
  }
  HttpClientRequest request;
  request.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  request.body_limit = kMaxRangeBytes + 64 * 1024;  // the range, or an error document
  auto response = co_await Send(executor, request, key, aws::kEmptyPayloadSha256);
  if (!response.ok()) co_return response.status();
  // 206 for the range; 200 (the whole object) from a store that ignores Range on a small one.
  if (response->status == 200) co_return response->body.substr(std::min<std::uint64_t>(offset, response->body.size()), length);
  if (response->status != 206) co_return StoreRefused(*response, "GET " + key);
  co_return std::move(response->body);
}

asio::awaitable<StatusOr<std::unique_ptr<HttpResponseStream>>> S3Client::OpenRange(asio::any_io_executor executor,
                                                                                   std::string key,
                                                                                   std::uint64_t offset,
                                                                                   std::uint64_t length) {
  if (length == 0) co_return Status(StatusCode::kInvalidArgument, "a ranged read is at least 1 byte");
  HttpClientRequest unsigned_request;
  unsigned_request.headers.emplace_back("Range",
                                        "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  const HttpClientRequest request = Signed(unsigned_request, key, aws::kEmptyPayloadSha256, {});
  auto opened = co_await http_.Open(executor, request);
  if (!opened.ok()) co_return opened.status();
  const unsigned status = (*opened)->head().status;
  // 206 for the range; 200 (the whole object) only when the range starts at 0, from a store that
  // ignores Range: the first bytes are then the ones asked for.
  if (status == 206 || (status == 200 && offset == 0)) co_return std::move(*opened);
  // An error document: small, read whole for its code.
  HttpClientResponse refused = (*opened)->head();
  std::array<char, 4096> piece;
  while (refused.body.size() < 64 * 1024) {
    auto got = co_await (*opened)->Read(piece);
    if (!got.ok() || *got == 0) break;
    refused.body.append(piece.data(), *got);
  }
  if (status / 100 == 2) co_return Status(StatusCode::kInternal, "GET " + key + ": the store ignored the range");
  co_return StoreRefused(refused, "GET " + key);
}

asio::awaitable<Status> S3Client::GetToFile(asio::any_io_executor executor, std::string key,
                                            std::filesystem::path path) {
  HttpClientRequest request;
  request.response_file = std::move(path);
  request.body_limit = 64 * 1024;  // an error document
  request.response_file_limit = UINT64_MAX;  // the object, streamed to the file
  auto response = co_await Send(executor, request, key, aws::kEmptyPayloadSha256);
  if (!response.ok()) co_return response.status();
  if (response->status != 200) co_return StoreRefused(*response, "GET " + key);
  co_return OkStatus();
}

asio::awaitable<StatusOr<S3Listing>> S3Client::List(asio::any_io_executor executor, std::string prefix,
                                                    std::string token, int max_keys) {
  HttpClientRequest request;
  request.body_limit = 4 << 20;  // a page of 1 000 keys is a few hundred KiB
  aws::NameValues query = {{"list-type", "2"}, {"max-keys", std::to_string(std::clamp(max_keys, 1, 1000))}};
  if (!prefix.empty()) query.emplace_back("prefix", prefix);
  if (!token.empty()) query.emplace_back("continuation-token", token);
  auto response = co_await Send(executor, request, "", aws::kEmptyPayloadSha256, query);
  if (!response.ok()) co_return response.status();
  if (response->status != 200) co_return StoreRefused(*response, "listing " + prefix + "*");
  S3Listing listing;
  std::string_view body = response->body;
  for (auto at = body.find("<Contents>"); at != std::string_view::npos; at = body.find("<Contents>")) {
    const auto end = body.find("</Contents>", at);
    if (end == std::string_view::npos) break;
    const std::string_view entry = body.substr(at, end - at);
    std::uint64_t size = 0;
    const std::string size_text = XmlField(entry, "Size");
    std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
    listing.objects.push_back(S3ListedObject{XmlText(XmlField(entry, "Key")), size,
                                             ParseIsoTime(XmlField(entry, "LastModified"))});
    body.remove_prefix(end);
  }
  if (XmlField(response->body, "IsTruncated") == "true") {
    listing.next_token = XmlText(XmlField(response->body, "NextContinuationToken"));
  }
  co_return listing;
}

asio::awaitable<Status> S3Client::Delete(asio::any_io_executor executor, std::string key) {
  HttpClientRequest request;
  request.method = http::verb::delete_;
  auto response = co_await Send(executor, request, key, aws::kEmptyPayloadSha256);
  if (!response.ok()) co_return response.status();
  if (response->status / 100 != 2 && response->status != 404) co_return StoreRefused(*response, "DELETE " + key);
  co_return OkStatus();
}

std::string S3Client::PresignedGetUrl(std::string_view key, int expires_seconds, std::int64_t unix_seconds) const {
  const std::string path = PathOf(key);
  return settings_.endpoint + aws::UriEncode(path, true) + "?" +
         aws::PresignedQuery("GET", host_, path, {}, settings_.credentials, aws::Scope{settings_.region, "s3"},
                             unix_seconds, expires_seconds);
}

}  // namespace plyr

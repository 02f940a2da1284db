#include "common/upload.h"

#include <span>
#include <vector>

#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace plyr {

namespace {

constexpr std::size_t kUploadChunk = 256 * 1024;

Response TooLarge(std::uint64_t limit) {
  return ErrorResponse(http::status::payload_too_large, "PayloadTooLarge",
                       fmt::format("uploads are limited to {} bytes", limit));
}

}  // namespace

asio::awaitable<std::variant<std::unique_ptr<BlobStore::Writer>, Response>> ReceiveUpload(
    Request& request, BlobStore& store, std::uint64_t limit, std::string_view log_name) {
  if (auto length = request.ContentLength(); length && *length > limit) co_return TooLarge(limit);
  auto writer = store.Begin(co_await asio::this_coro::executor);
  if (!writer) {
    spdlog::error("{}: cannot create an upload file error=\"{}\"", log_name, writer.status().message());
    co_return StorageErrorResponse(writer.status().code(), "cannot store the upload");
  }
  std::vector<char> buffer(kUploadChunk);
  for (;;) {
    auto got = co_await request.ReadSome(buffer);
    if (auto* e = std::get_if<BodyError>(&got)) co_return ErrorResponseFor(*e, limit);
    const std::size_t n = std::get<std::size_t>(got);
    if (n == 0) break;
    if ((*writer)->size() + n > limit) co_return TooLarge(limit);
    const std::span<const char> bytes(buffer.data(), n);
    if (Status written = co_await (*writer)->Write(bytes); !written.ok()) {
      spdlog::error("{}: upload write failed error=\"{}\"", log_name, written.message());
      co_return StorageErrorResponse(written.code(), "cannot store the upload");
    }
  }
  co_return std::move(*writer);
}

}  // namespace plyr

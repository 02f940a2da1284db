// ReceiveUpload: a request body streamed into a new blob, never held in memory, the one way a
// service takes an upload (the streamer's PUT /v1/files, the transcoder's jobs).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <variant>

#include "common/blob_store.h"
#include "common/http_message.h"

namespace plyr {

// Reads the body of `request` into a blob of `store` (io_uring writes on the caller's executor)
// and returns the writer, not yet committed: the caller commits it (an fsync: off the I/O
// threads) or drops it (the temporary is removed). Or returns the answer to send instead: 413
// past `limit` (checked against Content-Length before a byte is read, then while reading), 408
// or 400 for a body that stalls or is malformed, 507 when the bytes cannot be stored.
// `log_name` names the service in the log line of a storage failure.
asio::awaitable<std::variant<std::unique_ptr<BlobStore::Writer>, Response>> ReceiveUpload(
    Request& request, BlobStore& store, std::uint64_t limit, std::string_view log_name);

}  // namespace plyr

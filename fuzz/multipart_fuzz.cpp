// A multipart/form-data body with any boundary, fed in pieces: never a crash, and part data
// never exceeds the body.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "transcoder/multipart_reader.h"

namespace {

class Counting final : public plyr::transcoder::MultipartReader::Handler {
 public:
  plyr::Status OnPartBegin(const plyr::transcoder::MultipartPart&) override { return plyr::OkStatus(); }
  plyr::Status OnPartData(std::string_view bytes) override {
    bytes_ += bytes.size();
    return plyr::OkStatus();
  }
  plyr::Status OnPartEnd() override { return plyr::OkStatus(); }
  std::size_t bytes_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t boundary_size = data[0] % 70 + 1;
  const std::size_t split = data[1] % 13 + 1;
  if (size < 2 + boundary_size) return 0;
  // The boundary as the Content-Type header would give it: a header that yields none is refused
  // before a reader exists.
  const std::string content_type =
      "multipart/form-data; boundary=" + std::string(reinterpret_cast<const char*>(data + 2), boundary_size);
  auto boundary = plyr::transcoder::MultipartBoundary(content_type);
  if (!boundary.ok()) return 0;
  std::string_view body(reinterpret_cast<const char*>(data + 2 + boundary_size), size - 2 - boundary_size);
  const std::size_t body_size = body.size();
  Counting handler;
  plyr::transcoder::MultipartReader reader(*boundary, handler);
  while (!body.empty()) {
    const std::string_view piece = body.substr(0, split);
    body.remove_prefix(piece.size());
    if (!reader.Feed(piece).ok()) return 0;
  }
  (void)reader.Finish();
  if (handler.bytes_ > body_size) std::abort();
  return 0;
}

// Client WebSocket bytes, split anywhere: never a crash; a ping's payload is a control payload.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "labeler/ws_frame.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % 7 + 1;  // pieces of 1..7 bytes, as a network may cut them
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  plyr::labeler::WsFrameReader reader;
  while (!rest.empty()) {
    std::string_view piece = rest.substr(0, split);
    rest.remove_prefix(piece.size());
    while (!piece.empty()) {
      auto event = reader.Next(piece);
      if (event.kind == plyr::labeler::WsFrameReader::Event::kPing && event.payload.size() > 125) std::abort();
      if (event.kind == plyr::labeler::WsFrameReader::Event::kClose ||
          event.kind == plyr::labeler::WsFrameReader::Event::kError) {
        return 0;  // the stream ends there
      }
    }
  }
  return 0;
}

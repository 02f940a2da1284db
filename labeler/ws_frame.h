// WebSocket framing (RFC 6455 section 5) for the label stream after Beast's handshake.
//
// Why not Beast's stream for the data: Beast writes one message per operation, so a subscriber
// costs one send per label; measured on this 2-core machine, 1 000 subscribers took 11.7 µs of
// server CPU per delivered label, nearly all of it per-send kernel and completion work. A label's
// frame is identical for every subscriber (server frames are unmasked), so the feed encodes it
// once and each subscriber sends many frames per syscall. Reading is the small part the stream
// needs: client frames are masked, data is ignored, pings get pongs, a close gets a close.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace plyr::labeler {

enum class WsOpcode : std::uint8_t { kContinuation = 0, kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10 };

// One complete unmasked server frame (FIN set) carrying `payload`.
std::string EncodeWsFrame(WsOpcode opcode, std::string_view payload);
// A close frame with a status code and a short reason (truncated to fit a control frame).
std::string EncodeWsClose(std::uint16_t code, std::string_view reason);

// Parses client frames from a byte stream, one call per received chunk.
class WsFrameReader {
 public:
  struct Event {
    enum Kind { kNone, kPing, kClose, kError } kind = kNone;
    std::string payload;       // ping payload to echo
    std::uint16_t code = 0;    // close: the client's code (1005 when absent); error: ours to send
    std::string reason;        // error: why
  };

  // Consumes bytes from `data` (advancing it) until an event needs the caller's attention or the
  // data is used up. Data messages are skipped; at most `max_message` bytes each.
  Event Next(std::string_view& data);

  static constexpr std::uint64_t kMaxMessage = 64 * 1024;

 private:
  // Header bytes gathered so far (a header may arrive in pieces), then the payload state.
  std::string header_;
  std::uint64_t payload_left_ = 0;
  bool in_payload_ = false;
  WsOpcode opcode_ = WsOpcode::kContinuation;
  std::uint8_t mask_[4] = {};
  std::uint64_t payload_offset_ = 0;
  std::string control_;  // unmasked control payload being gathered
  std::uint64_t message_bytes_ = 0;  // data bytes in the current (possibly fragmented) message
};

}  // namespace plyr::labeler

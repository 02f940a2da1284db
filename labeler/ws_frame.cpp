#include "labeler/ws_frame.h"

namespace plyr::labeler {

std::string EncodeWsFrame(WsOpcode opcode, std::string_view payload) {
  std::string frame;
  frame.reserve(payload.size() + 10);
  frame += static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));
  const std::uint64_t n = payload.size();
  if (n < 126) {
    frame += static_cast<char>(n);
  } else if (n <= 0xffff) {
    frame += static_cast<char>(126);
    frame += static_cast<char>(n >> 8);
    frame += static_cast<char>(n & 0xff);
  } else {
    frame += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>((n >> shift) & 0xff);
  }
  frame.append(payload);
  return frame;
}

std::string EncodeWsClose(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xff);
  payload.append(reason.substr(0, 123));  // control payloads are at most 125 bytes
  return EncodeWsFrame(WsOpcode::kClose, payload);
}

WsFrameReader::Event WsFrameReader::Next(std::string_view& data) {
  auto error = [](std::uint16_t code, std::string reason) {
    Event e;
    e.kind = Event::kError;
    e.code = code;
    e.reason = std::move(reason);
    return e;
  };
  while (!data.empty()) {
    if (!in_payload_) {
      // Gather the header: 2 bytes, then the extended length and the 4-byte mask key.
      header_ += data.front();
      data.remove_prefix(1);
      if (header_.size() < 2) continue;
      const auto b0 = static_cast<std::uint8_t>(header_[0]);
      const auto b1 = static_cast<std::uint8_t>(header_[1]);
      if (b0 & 0x70) return error(1002, "reserved bits set");
      if (!(b1 & 0x80)) return error(1002, "client frames must be masked");
      const std::size_t length_bytes = (b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0;
      if (header_.size() < 2 + length_bytes + 4) continue;
      opcode_ = static_cast<WsOpcode>(b0 & 0x0f);
      std::uint64_t length = b1 & 0x7f;
      if (length_bytes) {
        length = 0;
        for (std::size_t i = 0; i < length_bytes; ++i) length = (length << 8) | static_cast<std::uint8_t>(header_[2 + i]);
      }
      for (int i = 0; i < 4; ++i) mask_[i] = static_cast<std::uint8_t>(header_[2 + length_bytes + i]);
      header_.clear();
      const bool control = static_cast<std::uint8_t>(opcode_) & 0x08;
      if (control) {
        if (length > 125 || !(b0 & 0x80)) return error(1002, "malformed control frame");
        if (opcode_ != WsOpcode::kClose && opcode_ != WsOpcode::kPing && opcode_ != WsOpcode::kPong) {
          return error(1002, "unknown opcode");
        }
      } else {
        if (opcode_ != WsOpcode::kContinuation && opcode_ != WsOpcode::kText && opcode_ != WsOpcode::kBinary) {
          return error(1002, "unknown opcode");
        }
        if (opcode_ != WsOpcode::kContinuation) message_bytes_ = 0;
        message_bytes_ += length;
        if (message_bytes_ > kMaxMessage) return error(1009, "message too big");
      }
      in_payload_ = true;
      payload_left_ = length;
      payload_offset_ = 0;
      control_.clear();
    }
    // Payload: control payloads are unmasked and kept; data payloads are skipped.
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, data.size()));
    if (static_cast<std::uint8_t>(opcode_) & 0x08) {
      for (std::size_t i = 0; i < take; ++i) {
        control_ += static_cast<char>(static_cast<std::uint8_t>(data[i]) ^ mask_[(payload_offset_ + i) % 4]);
      }
    }
    data.remove_prefix(take);
    payload_left_ -= take;
    payload_offset_ += take;
    if (payload_left_ > 0) break;
    in_payload_ = false;
    if (opcode_ == WsOpcode::kPing) {
      Event e;
      e.kind = Event::kPing;
      e.payload = std::move(control_);
      return e;
    }
    if (opcode_ == WsOpcode::kClose) {
      Event e;
      e.kind = Event::kClose;
      e.code = control_.size() >= 2 ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(control_[0]) << 8) |
                                                                  static_cast<std::uint8_t>(control_[1]))
                                    : 1005;
      return e;
    }
  }
  return {};
}

}  // namespace plyr::labeler

// A small blocking WebSocket client for tests, written independently of the server's Beast code
// so that tests check the bytes on the wire: the upgrade handshake (with Sec-WebSocket-Accept
// verified), unmasked server frames (opcode, FIN, payload), and masked client control frames.
// Plain POSIX sockets on loopback, every wait bounded.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace plyr::testing {

struct WsMessage {
  int opcode = 0;  // 1 text, 2 binary, 8 close, 9 ping, 10 pong
  std::string payload;
};

// A masked client frame (first byte = FIN/RSV/opcode as given), as browsers and libraries send.
std::string MaskedClientFrame(std::uint8_t first_byte, const std::string& payload);

class WsClient {
 public:
  // Connects to 127.0.0.1:port and upgrades on `target`. `receive_buffer` > 0 shrinks SO_RCVBUF
  // before connecting (a consumer that reads slowly). nullptr with `error` set on failure; the
  // HTTP answer of a refused upgrade is in `error`.
  static std::unique_ptr<WsClient> Connect(unsigned short port, const std::string& target, std::string* error,
                                           int receive_buffer = 0);
  ~WsClient();

  enum class Status { kMessage, kTimeout, kClosed };
  // Reads the next data or control frame (pings are answered by the caller if wanted).
  Status Read(WsMessage& message, std::chrono::milliseconds timeout);
  // Sends a masked frame.
  bool Send(int opcode, const std::string& payload);
  // The close code of a received close frame (0 if none).
  int close_code() const { return close_code_; }
  void Disconnect();

 private:
  explicit WsClient(int fd) : fd_(fd) {}
  bool Fill(std::size_t want, std::chrono::steady_clock::time_point deadline, bool* timed_out);
  int fd_ = -1;
  std::string buffer_;
  int close_code_ = 0;
};

}  // namespace plyr::testing

#include "tests/support/test_ws_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <random>

#include "tests/support/test_http_client.h"

namespace plyr::testing {

namespace {

std::string Base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

std::unique_ptr<WsClient> WsClient::Connect(unsigned short port, const std::string& target, std::string* error,
                                            int receive_buffer) {
  const int fd = ConnectLoopback(port, receive_buffer);
  if (fd < 0) {
    *error = "connect failed";
    return nullptr;
  }
  std::unique_ptr<WsClient> client(new WsClient(fd));
  unsigned char nonce[16];
  std::random_device rd;
  for (auto& b : nonce) b = static_cast<unsigned char>(rd());
  const std::string key = Base64(nonce, sizeof nonce);
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                        "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    *error = "send failed";
    return nullptr;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::size_t end;
  while ((end = client->buffer_.find("\r\n\r\n")) == std::string::npos) {
    bool timed_out = false;
    if (!client->Fill(client->buffer_.size() + 1, deadline, &timed_out)) {
      *error = timed_out ? "timed out waiting for the upgrade answer" : "closed: " + client->buffer_;
      return nullptr;
    }
  }
  std::string head = client->buffer_.substr(0, end + 4);
  client->buffer_.erase(0, end + 4);
  if (!head.starts_with("HTTP/1.1 101")) {
    // Keep the answer (with whatever body arrived) for the caller to inspect.
    bool timed_out = false;
    client->Fill(client->buffer_.size() + 1, std::chrono::steady_clock::now() + std::chrono::milliseconds(500),
                 &timed_out);
    *error = head + client->buffer_;
    return nullptr;
  }
  const std::string expected_input = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(expected_input.data()), expected_input.size(), digest);
  const std::string accept = Base64(digest, sizeof digest);
  std::string lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("sec-websocket-accept: " + [&] {
        std::string a = accept;
        for (auto& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return a;
      }()) == std::string::npos) {
    *error = "bad Sec-WebSocket-Accept in: " + head;
    return nullptr;
  }
  return client;
}

WsClient::~WsClient() { Disconnect(); }

void WsClient::Disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool WsClient::Fill(std::size_t want, std::chrono::steady_clock::time_point deadline, bool* timed_out) {
  *timed_out = false;
  while (buffer_.size() < want) {
    if (fd_ < 0) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      *timed_out = true;
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r == 0) continue;
    if (r < 0) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

WsClient::Status WsClient::Read(WsMessage& message, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  if (!Fill(2, deadline, &timed_out)) return timed_out ? Status::kTimeout : Status::kClosed;
  const auto b0 = static_cast<unsigned char>(buffer_[0]);
  const auto b1 = static_cast<unsigned char>(buffer_[1]);
  std::size_t header = 2;
  std::uint64_t length = b1 & 0x7f;
  if (b1 & 0x80) return Status::kClosed;  // servers never mask; treat as a protocol failure
  if (length == 126) header = 4;
  if (length == 127) header = 10;
  if (!Fill(header, deadline, &timed_out)) return timed_out ? Status::kTimeout : Status::kClosed;
  if (header > 2) {
    length = 0;
    for (std::size_t i = 2; i < header; ++i) length = (length << 8) | static_cast<unsigned char>(buffer_[i]);
  }
  if (!Fill(header + length, deadline, &timed_out)) return timed_out ? Status::kTimeout : Status::kClosed;
  message.opcode = b0 & 0x0f;
  message.payload = buffer_.substr(header, length);
  buffer_.erase(0, header + length);
  if (message.opcode == 8 && message.payload.size() >= 2) {
    close_code_ = (static_cast<unsigned char>(message.payload[0]) << 8) | static_cast<unsigned char>(message.payload[1]);
  }
  return Status::kMessage;
}

std::string MaskedClientFrame(std::uint8_t first_byte, const std::string& payload) {
  std::string frame;
  frame += static_cast<char>(first_byte);
  if (payload.size() < 126) {
    frame += static_cast<char>(0x80 | payload.size());
  } else {
    frame += static_cast<char>(0x80 | 126);
    frame += static_cast<char>(payload.size() >> 8);
    frame += static_cast<char>(payload.size() & 0xff);
  }
  unsigned char mask[4];
  std::random_device rd;
  for (auto& m : mask) m = static_cast<unsigned char>(rd());
  frame.append(reinterpret_cast<char*>(mask), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) frame += static_cast<char>(payload[i] ^ mask[i % 4]);
  return frame;
}

bool WsClient::Send(int opcode, const std::string& payload) {
  const std::string frame = MaskedClientFrame(static_cast<std::uint8_t>(0x80 | opcode), payload);
  return ::send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(frame.size());
}

}  // namespace plyr::testing

// Blocking HTTP helpers for tests: one request per connection (Beast, with bounded socket
// timeouts), and a raw loopback socket for sending hostile bytes.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace plyr::testing {

struct HttpResult {
  bool transport_ok = false;  // false: could not connect, or the connection failed mid-way
  std::string transport_error;
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string Header(const std::string& lower_name) const;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// Sends one request to 127.0.0.1:port and reads the whole answer (HEAD: headers only).
HttpResult Fetch(unsigned short port, const std::string& method, const std::string& target,
                 const Headers& headers = {}, const std::string& body = {},
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A blocking TCP connection to 127.0.0.1:port, its descriptor (the caller closes it), or -1.
// `receive_buffer` > 0 sets SO_RCVBUF first (a small one makes a slow reader).
int ConnectLoopback(unsigned short port, int receive_buffer = 0);

// A plain TCP connection to 127.0.0.1:port.
class RawConnection {
 public:
  explicit RawConnection(unsigned short port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends bytes; false if the peer closed.
  bool Send(const std::string& bytes);
  // Reads until the peer closes or `timeout` passes; returns what arrived. `closed` is set when
  // the connection ended (cleanly or by reset), `reset` only when it ended with a reset.
  std::string ReadUntilClose(std::chrono::milliseconds timeout, bool* closed = nullptr, bool* reset = nullptr);
  // Reads whatever arrives within `timeout` (at least one read).
  std::string ReadSome(std::chrono::milliseconds timeout);
  void Close();

 private:
  int fd_ = -1;
};

}  // namespace plyr::testing

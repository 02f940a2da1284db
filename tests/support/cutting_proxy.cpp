#include "tests/support/cutting_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "tests/support/test_http_client.h"

namespace plyr::testing {

namespace {

// Writes all of `data` unless the socket fails (a cut shuts it down, which ends a blocked send).
bool SendAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

CuttingProxy::CuttingProxy(unsigned short upstream_port, int max_connections)
    : upstream_port_(upstream_port), max_connections_(max_connections) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener_, 128) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
    throw std::runtime_error("CuttingProxy: cannot listen on loopback");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

CuttingProxy::~CuttingProxy() {
  stopping_ = true;
  acceptor_.join();
  Cut();
  std::list<std::unique_ptr<Relay>> relays;
  {
    std::lock_guard lock(mutex_);
    relays.swap(relays_);
  }
  for (auto& relay : relays) relay->thread.join();
  ::close(listener_);
}

void CuttingProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd pfd{listener_, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard lock(mutex_);
    ReapFinished();
    const int upstream = static_cast<int>(relays_.size()) < max_connections_ ? ConnectLoopback(upstream_port_) : -1;
    if (upstream < 0) {  // the service is down (or too many relays): the client sees a close
      ::close(client);
      continue;
    }
    auto relay = std::make_unique<Relay>();
    relay->client = client;
    relay->upstream = upstream;
    Relay* raw = relay.get();
    relay->thread = std::thread([this, raw] { Pump(raw); });
    relays_.push_back(std::move(relay));
    ++relayed_;
  }
}

void CuttingProxy::Pump(Relay* relay) {
  char buffer[64 * 1024];
  bool client_open = true;    // the client may still send
  bool upstream_open = true;  // the service may still send
  while (!stopping_ && (client_open || upstream_open)) {
    pollfd fds[2] = {{client_open ? relay->client : -1, POLLIN, 0}, {upstream_open ? relay->upstream : -1, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    bool failed = false;
    for (int i = 0; i < 2 && !failed; ++i) {
      if (fds[i].revents == 0) continue;
      const int from = i == 0 ? relay->client : relay->upstream;
      const int to = i == 0 ? relay->upstream : relay->client;
      const ssize_t n = ::recv(from, buffer, sizeof buffer, 0);
      if (n < 0) {
        failed = true;
      } else if (n == 0) {  // half-close: pass it on
        ::shutdown(to, SHUT_WR);
        (i == 0 ? client_open : upstream_open) = false;
      } else if (!SendAll(to, buffer, static_cast<std::size_t>(n))) {
        failed = true;
      }
    }
    if (failed) break;
  }
  std::lock_guard lock(mutex_);
  ::close(relay->client);
  ::close(relay->upstream);
  relay->done = true;
}

int CuttingProxy::Cut() {
  std::lock_guard lock(mutex_);
  int cut = 0;
  for (auto& relay : relays_) {
    if (relay->done) continue;
    // Linger 0: the close that follows sends a reset, not an orderly end.
    const linger abort{1, 0};
    for (int fd : {relay->client, relay->upstream}) {
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      ::shutdown(fd, SHUT_RDWR);
    }
    ++cut;
  }
  return cut;
}

void CuttingProxy::ReapFinished() {
  for (auto it = relays_.begin(); it != relays_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();
      it = relays_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace plyr::testing

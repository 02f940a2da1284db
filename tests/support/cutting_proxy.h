// CuttingProxy: a loopback TCP relay in front of one service, for fault injection. Clients (and
// the other services) connect to the proxy's fixed port while the service behind it may be killed
// and restarted on a new port (SetUpstream); Cut() resets every relayed connection at once, in
// whatever state its requests are, as a network failure or a proxy restart would.
//
// A thread per relayed connection, at most `max_connections` at once (more are closed on
// accept); every blocking wait is bounded, and the destructor cuts and joins everything.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace plyr::testing {

class CuttingProxy {
 public:
  explicit CuttingProxy(unsigned short upstream_port, int max_connections = 256);
  ~CuttingProxy();
  CuttingProxy(const CuttingProxy&) = delete;
  CuttingProxy& operator=(const CuttingProxy&) = delete;

  unsigned short port() const { return port_; }
  // New connections go to this port from now on; relayed ones stay where they are.
  void SetUpstream(unsigned short upstream_port) { upstream_port_ = upstream_port; }
  // Resets every connection relayed now (both sides see a reset); returns how many.
  int Cut();
  std::int64_t relayed() const { return relayed_.load(); }

 private:
  struct Relay {
    int client = -1;
    int upstream = -1;
    std::atomic<bool> done{false};
    std::thread thread;
  };
  void AcceptLoop();
  void Pump(Relay* relay);
  void ReapFinished();  // joins relays whose thread ended; caller holds mutex_

  int listener_ = -1;
  unsigned short port_ = 0;
  std::atomic<unsigned short> upstream_port_;
  const int max_connections_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> relayed_{0};
  std::mutex mutex_;
  std::list<std::unique_ptr<Relay>> relays_;  // guarded by mutex_
  std::thread acceptor_;
};

}  // namespace plyr::testing

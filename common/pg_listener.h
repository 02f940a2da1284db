// PgListener: PostgreSQL notifications (LISTEN/NOTIFY) on one channel, delivered to a callback on
// a thread of its own, so instances sharing a database learn promptly what the others changed.
//
// It keeps a dedicated connection. Notifications arrive in the order their transactions
// committed. A notification sent while the connection was down is lost, so after every (re)connect
// the callback is called with `resync` set (and no payload): the owner then compares its state
// with the database. Reconnection is retried every second. The callback may block (it runs on the
// listener's thread, never on an I/O thread); notifications wait meanwhile.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace plyr {

class PgListener {
 public:
  using Callback = std::function<void(bool resync, const std::string& payload)>;

  // Starts listening on `channel` (a lower-case identifier) at `url`. InvalidArgument for a bad
  // channel name; the first connection is made on the thread (a failure there is retried).
  static StatusOr<std::unique_ptr<PgListener>> Start(std::string url, std::string channel, Callback callback);
  ~PgListener();  // stops the thread (within about 200 ms) and closes the connection
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Connections made so far (1 after the first; more after reconnections).
  int connections() const { return connections_.load(); }

 private:
  PgListener(std::string url, std::string channel, Callback callback);
  void Run();

  std::string url_;
  std::string channel_;
  Callback callback_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace plyr

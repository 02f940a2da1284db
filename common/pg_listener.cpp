#include "common/pg_listener.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <chrono>

#include <spdlog/spdlog.h>

namespace plyr {

namespace {

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

bool IsChannelName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return name[0] < '0' || name[0] > '9';
}

// The first line of libpq's message, without the URL (which may hold a password: libpq does not
// quote it in connection errors, but its parse errors would).
std::string Reason(PGconn* conn) {
  std::string text = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  if (const auto end = text.find('\n'); end != std::string::npos) text.resize(end);
  return text;
}

}  // namespace

StatusOr<std::unique_ptr<PgListener>> PgListener::Start(std::string url, std::string channel, Callback callback) {
  if (!IsChannelName(channel)) {
    return Status(StatusCode::kInvalidArgument, "a notification channel is a lower-case identifier");
  }
  std::unique_ptr<PgListener> listener(new PgListener(std::move(url), std::move(channel), std::move(callback)));
  listener->thread_ = std::thread([l = listener.get()] { l->Run(); });
  return listener;
}

PgListener::PgListener(std::string url, std::string channel, Callback callback)
    : url_(std::move(url)), channel_(std::move(channel)), callback_(std::move(callback)) {}

PgListener::~PgListener() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void PgListener::Run() {
  using namespace std::chrono_literals;
  while (!stopping_.load()) {
    Conn conn(PQconnectdb(url_.c_str()));
    bool listening = conn && PQstatus(conn.get()) == CONNECTION_OK;
    if (listening) {
      PGresult* result = PQexec(conn.get(), ("LISTEN " + channel_).c_str());
      listening = PQresultStatus(result) == PGRES_COMMAND_OK;
      PQclear(result);
    }
    if (!listening) {
      spdlog::warn("notifications: cannot listen channel={} error=\"{}\"; retrying in 1 s", channel_,
                   Reason(conn.get()));
      for (int i = 0; i < 10 && !stopping_.load(); ++i) std::this_thread::sleep_for(100ms);
      continue;
    }
    connections_.fetch_add(1);
    // Whatever was sent before LISTEN took effect (or while disconnected) is not coming.
    callback_(true, {});
    auto quiet_since = std::chrono::steady_clock::now();
    while (!stopping_.load()) {
      pollfd fd{PQsocket(conn.get()), POLLIN, 0};
      const int ready = ::poll(&fd, 1, 200);
      if (ready < 0 && errno != EINTR) break;
      if (ready <= 0) {
        // A server that vanished without closing (a network partition) sends nothing: ask.
        if (std::chrono::steady_clock::now() - quiet_since < 10s) continue;
        PGresult* ping = PQexec(conn.get(), "SELECT 1");
        const bool alive = PQresultStatus(ping) == PGRES_TUPLES_OK;
        PQclear(ping);
        if (!alive) break;
      } else if (PQconsumeInput(conn.get()) == 0) {
        break;  // the connection is gone
      }
      quiet_since = std::chrono::steady_clock::now();
      // What arrived, whether read by PQconsumeInput or along with the ping's answer.
      while (PGnotify* notify = PQnotifies(conn.get())) {
        const std::string payload = notify->extra != nullptr ? notify->extra : "";
        PQfreemem(notify);
        callback_(false, payload);
      }
    }
    if (!stopping_.load()) {
      spdlog::warn("notifications: connection lost channel={} error=\"{}\"; reconnecting", channel_,
                   Reason(conn.get()));
    }
  }
}

}  // namespace plyr

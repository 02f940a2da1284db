#include "tests/support/drain.h"

#include <thread>

#include "common/http_server.h"
#include "common/runtime.h"

namespace plyr::testing {

namespace {

bool WaitIdle(HttpServer& server, std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (server.accept_loops() > 0 || server.open_connections() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

void DrainAndStop(HttpServer& server, Runtime& runtime, std::chrono::milliseconds bound) {
  server.BeginShutdown();
  if (!WaitIdle(server, bound)) {
    server.CloseAll();
    WaitIdle(server, bound);
  }
  runtime.Stop();
}

}  // namespace plyr::testing

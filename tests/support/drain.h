// Stopping an in-process test server the way plyr-core stops: no coroutine may be left
// suspended on an I/O object when the Runtime's contexts are destroyed (Asio 1.81 would then
// destroy it after the services it points into; AddressSanitizer reports a use-after-free).
#pragma once

#include <chrono>

namespace plyr {
class HttpServer;
class Runtime;
}  // namespace plyr

namespace plyr::testing {

// Stops accepting, waits (at most `bound`) for the accept loops and the connections to end,
// closes what is left and waits once more, then stops the runtime.
void DrainAndStop(HttpServer& server, Runtime& runtime,
                  std::chrono::milliseconds bound = std::chrono::seconds(3));

}  // namespace plyr::testing

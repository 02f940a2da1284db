// Process-wide logging on spdlog: one line per event, key=value pairs after the message so
// lines stay greppable and machine-readable. Never pass secrets (tokens, tickets, keys) here.
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace plyr {

// Sets the global level ("trace", "debug", "info", "warn", "error") and the line format.
// Unknown levels fall back to "info". Call once at start-up, before threads start.
void InitLogging(std::string_view level);

}  // namespace plyr

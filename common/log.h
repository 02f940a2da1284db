// Process-wide logging on spdlog: one line per event, key=value pairs after the message so
// lines stay greppable and machine-readable. Never pass secrets (tokens, tickets, keys) here.
//
// Two line formats:
//   text  2026-12-02T16:13:49.531Z info access service=streamer status=200 target="/audio/x"
//   json  {"ts":"2026-12-02T16:13:49.531Z","level":"info","msg":"access","service":"streamer",
//          "status":200,"target":"/audio/x"}
// In JSON each key=value pair after the message becomes a field (a value that reads as a
// number is a number; a quoted value is unquoted); a message that does not end in such pairs is
// the "msg" field whole.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace plyr {

// Sets the global level ("trace", "debug", "info", "warn", "error") and the line format ("text"
// or "json"; anything else is "text"). Unknown levels fall back to "info". Call once at
// start-up, before threads start.
void InitLogging(std::string_view level, std::string_view format = "text");

// One JSON log line (without the newline), as the json format writes it.
std::string JsonLogLine(std::chrono::system_clock::time_point time, std::string_view level,
                        std::string_view message);

}  // namespace plyr

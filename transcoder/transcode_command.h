// Command-line entry points of the transcoder:
//   plyr-core transcode FILE --out DIR   the engine without the service (people, scripts, the
//                                        benchmark); prints the facts and renditions as JSON
//   plyr-core job submit FILE [--wait]   a job through a running service's HTTP API, with a
//                                        progress bar on a terminal and plain lines otherwise
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "common/settings.h"

namespace plyr::transcoder {

void AddTranscodeCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action);
void AddJobCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action);

}  // namespace plyr::transcoder

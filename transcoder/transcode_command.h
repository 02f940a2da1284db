// `plyr-core transcode FILE --out DIR`: the transcoder's engine without the service, for people,
// scripts and the benchmark. Prints the facts and renditions as one JSON object.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "common/settings.h"

namespace plyr::transcoder {

void AddTranscodeCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action);

}  // namespace plyr::transcoder

// The streamer's plyr-core subcommands: `ticket keygen` and `ticket mint`, for the API layer
// and for tests. (`serve` is shared by all services and lives in main.cpp.)
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "common/settings.h"

namespace plyr::streamer {

// Registers `ticket` on `root`. When one of its subcommands is chosen, `action` is set to the
// code that runs it and returns the process exit status.
void AddTicketCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action);

}  // namespace plyr::streamer

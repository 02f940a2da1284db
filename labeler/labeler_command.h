// The labeler's plyr-core subcommands: `labeler keygen` and `labeler did`, for operators setting
// up a labeler's identity. (`serve` is shared by all services and lives in main.cpp.)
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "common/settings.h"

namespace plyr::labeler {

// Registers `labeler` on `root`; choosing a subcommand sets `action`.
void AddLabelerCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action);

}  // namespace plyr::labeler

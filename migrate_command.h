// `plyr-core migrate`: brings every store of an install to this build's schema without serving,
// and with --copy moves an embedded install (SQLite and the data folder's blobs) to PostgreSQL
// and an S3-compatible store (docs/deployment.md, "Moving an embedded install").
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "common/settings.h"

namespace plyr {

// Registers the subcommand; its run is left in `action`.
void AddMigrateCommand(CLI::App& app, const SettingsFile& file, std::function<int()>& action);

}  // namespace plyr

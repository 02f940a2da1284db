// plyr-core fingerprint: the fingerprint service's command line.
//
//   plyr-core fingerprint FILE... [--json] [--raw] [--length S]   print fingerprints, like fpcalc
//   plyr-core fingerprint import DIR [--url U] [--jobs N]         register every audio file under
//                                                                 DIR with a running service
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "common/settings.h"

namespace plyr::fingerprint {

void AddFingerprintCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action);

}  // namespace plyr::fingerprint

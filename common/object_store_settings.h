// The object store's settings (storage.s3.*), bound the same way wherever a command takes them
// (serve, migrate), and checked into S3Settings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "common/http_client.h"
#include "common/s3_client.h"
#include "common/settings.h"
#include "common/status.h"

namespace plyr {

struct ObjectStoreSettings {
  std::string endpoint;  // empty: no object store
  std::string bucket;
  std::string region = "auto";
  std::string access_key_id;
  std::string secret_access_key;  // a secret: from the environment or a file
  std::string prefix;
  std::int64_t timeout_ms = 60'000;
};

// Registers storage.s3.* on `command`.
void BindObjectStoreSettings(CLI::App& command, const SettingsFile& file, ObjectStoreSettings& settings);

// nullopt when no endpoint is set; else the checked S3Settings. InvalidArgument, naming the
// setting, for a bad one (the message never holds the secret).
StatusOr<std::optional<S3Settings>> CheckObjectStoreSettings(const ObjectStoreSettings& settings, HttpClient& http);

}  // namespace plyr

// The admin bearer token that guards admin and job APIs in every service.
//
// Resolution: a configured token (PLYR_ADMIN_TOKEN, --admin-token or the config file) wins;
// otherwise the token stored in <data>/admin-token is used, created on first start with 32
// random bytes (base64url) and owner-only permissions. The token itself is never logged; only
// the path of the file that holds it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace plyr {

// The shortest token a configuration may set: a guessable token guards nothing. A generated one
// is 43 characters.
inline constexpr std::size_t kMinAdminTokenLength = 24;

struct AdminToken {
  std::string value;
  std::filesystem::path generated_at;  // set when the token came from (or was written to) the data folder
};

// Returns the token to enforce. Fails, with a message naming the file, when the stored file is
// readable by group or others (FailedPrecondition: a token that leaked is not silently used),
// holds fewer than 16 characters (DataLoss), or cannot be read or created (Internal).
StatusOr<AdminToken> ResolveAdminToken(std::string_view configured, const std::filesystem::path& data_dir);

// For command-line clients of a running service: `given` (a --token flag or PLYR_ADMIN_TOKEN)
// when non-empty, else the token stored in <data>/admin-token. NotFound when neither exists.
StatusOr<std::string> ClientAdminToken(std::string_view given, const std::filesystem::path& data_dir);

}  // namespace plyr

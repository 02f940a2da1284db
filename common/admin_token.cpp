#include "common/admin_token.h"

#include <sys/stat.h>

#include <sodium.h>

#include "common/file_util.h"

namespace plyr {

StatusOr<AdminToken> ResolveAdminToken(std::string_view configured, const std::filesystem::path& data_dir) {
  if (!configured.empty()) return AdminToken{std::string(configured), {}};
  if (sodium_init() < 0) return Status(StatusCode::kInternal, "libsodium cannot be initialised");

  const auto path = data_dir / "admin-token";
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      return Status(StatusCode::kFailedPrecondition,
                    path.string() + " is readable by group or others; chmod 600 it (or replace the token)");
    }
    auto text = ReadSmallFile(path, 4096);
    if (!text.ok()) return text.status();
    std::string token = *text;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.size() < 16) {
      return Status(StatusCode::kDataLoss, path.string() + " holds no usable token (fewer than 16 characters)");
    }
    return AdminToken{token, path};
  }

  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  char encoded[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(encoded, sizeof encoded, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  std::string token(encoded);
  std::error_code fec;
  std::filesystem::create_directories(data_dir, fec);
  if (Status written = WriteFileAtomically(path, token + "\n", 0600); !written.ok()) return written;
  return AdminToken{token, path};
}

StatusOr<std::string> ClientAdminToken(std::string_view given, const std::filesystem::path& data_dir) {
  if (!given.empty()) return std::string(given);
  auto stored = ReadSmallFile(data_dir / "admin-token", 4096);
  if (!stored) {
    return Status(StatusCode::kNotFound,
                  "no --token, no PLYR_ADMIN_TOKEN and no readable " + (data_dir / "admin-token").string());
  }
  std::string token = *stored;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return token;
}

}  // namespace plyr

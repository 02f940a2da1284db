// Settings: every configurable value has one key and three spellings, resolved in this order
// (first wins):
//   1. a command-line flag       --streamer-listen 127.0.0.1:8410
//   2. an environment variable   PLYR_STREAMER_LISTEN=127.0.0.1:8410
//   3. the TOML config file      [streamer] listen = "127.0.0.1:8410"
//   4. the built-in default
// The key is the TOML path ("streamer.listen"); the flag and variable names derive from it
// ('.' and '_' become '-' in flags; everything becomes upper-case '_' in variables).
// The file is named by --config FILE or PLYR_CONFIG. Not thread-safe: use during start-up only.
//
// Checks: a file value of the wrong type (a string for a number, an array for a string) and a
// negative number (every numeric setting is a count, a size, a duration or a threshold) are
// errors, collected in errors() while the settings are bound; a flag or variable with such a
// value fails CLI11's parse. Keys of the file that no setting binds are in UnknownKeys().
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace plyr {

class SettingsFile {
 public:
  // Finds the config path in argv (--config FILE / --config=FILE) or PLYR_CONFIG and parses it.
  // No path: an empty file. A named file that does not exist is NotFound; one that cannot be read
  // or parsed is InvalidArgument. The message is "config file PATH: what is wrong (line N)".
  static StatusOr<SettingsFile> Load(int argc, const char* const* argv);

  SettingsFile();
  ~SettingsFile();
  SettingsFile(SettingsFile&&) noexcept;
  SettingsFile& operator=(SettingsFile&&) noexcept;

  // The value at a dotted path as CLI11 would read it from a flag ("true", "42", "text"), if set.
  std::optional<std::string> Lookup(std::string_view key) const;
  const std::filesystem::path& path() const { return path_; }

  // Registers the flag, the environment variable and the file value for `key` on `app`.
  template <typename T>
  CLI::Option* Bind(CLI::App& app, std::string_view key, T& value, std::string help) const {
    bound_.insert(std::string(key));
    CLI::Option* opt = app.add_option(FlagName(key), value, std::move(help))
                           ->envname(EnvName(key))
                           ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) opt->check(NonNegative());
    if (auto v = LookupAs(key, KindOf<T>())) {
      try {
        opt->default_val(*v);
      } catch (const CLI::Error& e) {
        errors_.push_back(FileError(key, e.what()));
      }
    } else {
      opt->capture_default_str();
    }
    return opt;
  }

  // Bind for a secret (a token, a key): the file's value applies, but --help never shows it, as
  // it shows other settings' values. A second setting, `<key>_file` (--admin-token-file,
  // PLYR_ADMIN_TOKEN_FILE, admin_token_file = "..."), names a file that holds the secret (its
  // trailing newline dropped), for secrets handed over as files (systemd credentials, container
  // secrets). Giving both is an error. Prefer the file or a variable to a flag: flags are visible
  // to every user in the process list.
  CLI::Option* BindSecret(CLI::App& app, std::string_view key, std::string& value, std::string help) const;

  // "config file F: key: what is wrong", one per bad value of the file, in binding order.
  const std::vector<std::string>& errors() const { return errors_; }
  // Dotted keys of the file's values that no Bind or BindSecret named (misspelt, or misplaced).
  std::vector<std::string> UnknownKeys() const;

  // A CLI11 check: a number, 0 or more ("must be 0 or more, not -5").
  static CLI::Validator NonNegative();

  static std::string FlagName(std::string_view key);  // "streamer.listen" -> "--streamer-listen"
  static std::string EnvName(std::string_view key);   // "streamer.listen" -> "PLYR_STREAMER_LISTEN"

 private:
  enum class ValueKind { kString, kBool, kInteger, kNumber, kAny };
  template <typename T>
  static constexpr ValueKind KindOf() {
    if constexpr (std::is_same_v<T, bool>) return ValueKind::kBool;
    else if constexpr (std::is_integral_v<T>) return ValueKind::kInteger;
    else if constexpr (std::is_floating_point_v<T>) return ValueKind::kNumber;
    else if constexpr (std::is_convertible_v<T, std::string_view>) return ValueKind::kString;
    else return ValueKind::kAny;
  }
  // Lookup, with a value of another kind recorded in errors_ (and then nullopt).
  std::optional<std::string> LookupAs(std::string_view key, ValueKind kind) const;
  std::string FileError(std::string_view key, std::string_view what) const;

  struct Table;
  std::filesystem::path path_;
  std::unique_ptr<Table> table_;
  mutable std::set<std::string, std::less<>> bound_;
  mutable std::vector<std::string> errors_;
};

}  // namespace plyr

// Settings: every configurable value has one key and three spellings, resolved in this order
// (first wins):
//   1. a command-line flag       --streamer-listen 127.0.0.1:8410
//   2. an environment variable   PLYR_STREAMER_LISTEN=127.0.0.1:8410
//   3. the TOML config file      [streamer] listen = "127.0.0.1:8410"
//   4. the built-in default
// The key is the TOML path ("streamer.listen"); the flag and variable names derive from it
// ('.' and '_' become '-' in flags; everything becomes upper-case '_' in variables).
// The file is named by --config FILE or PLYR_CONFIG. Not thread-safe: use during start-up only.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <boost/system/result.hpp>

namespace plyr {

class SettingsFile {
 public:
  // Finds the config path in argv (--config FILE / --config=FILE) or PLYR_CONFIG and parses it.
  // No path: an empty file. A path that cannot be read or parsed is an error (with a message).
  static boost::system::result<SettingsFile> Load(int argc, const char* const* argv, std::string* error);

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
    CLI::Option* opt = app.add_option(FlagName(key), value, std::move(help))
                           ->envname(EnvName(key))
                           ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    if (auto v = Lookup(key)) {
      opt->default_val(*v);
    } else {
      opt->capture_default_str();
    }
    return opt;
  }

  // Bind for a secret (a token, a key): the file's value applies, but --help never shows it, as
  // it shows other settings' values. Flags and variables still work; prefer the file or the
  // variable, since flags are visible to every user in the process list.
  CLI::Option* BindSecret(CLI::App& app, std::string_view key, std::string& value, std::string help) const {
    CLI::Option* opt = app.add_option(FlagName(key), value, std::move(help))
                           ->envname(EnvName(key))
                           ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    if (auto v = Lookup(key)) value = *v;  // the default CLI11 keeps when neither flag nor variable is given
    return opt;
  }

  static std::string FlagName(std::string_view key);  // "streamer.listen" -> "--streamer-listen"
  static std::string EnvName(std::string_view key);   // "streamer.listen" -> "PLYR_STREAMER_LISTEN"

 private:
  struct Table;
  std::filesystem::path path_;
  std::unique_ptr<Table> table_;
};

}  // namespace plyr

#include "common/settings.h"

#include <cctype>
#include <cstdlib>

#include <toml++/toml.h>

namespace plyr {

struct SettingsFile::Table {
  toml::table root;
};

SettingsFile::SettingsFile() = default;
SettingsFile::~SettingsFile() = default;
SettingsFile::SettingsFile(SettingsFile&&) noexcept = default;
SettingsFile& SettingsFile::operator=(SettingsFile&&) noexcept = default;

namespace {

std::optional<std::string> FindConfigPath(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) return std::string(argv[i + 1]);
    if (arg.starts_with("--config=")) return std::string(arg.substr(9));
  }
  if (const char* env = std::getenv("PLYR_CONFIG"); env && *env) return std::string(env);
  return std::nullopt;
}

}  // namespace

boost::system::result<SettingsFile> SettingsFile::Load(int argc, const char* const* argv, std::string* error) {
  SettingsFile file;
  auto path = FindConfigPath(argc, argv);
  if (!path) return file;
  file.path_ = *path;
  file.table_ = std::make_unique<Table>();
  try {
    // Debian's toml++ is built with exceptions: a parse error arrives as toml::parse_error.
    file.table_->root = toml::parse_file(*path);
  } catch (const toml::parse_error& e) {
    *error = "config file " + *path + ": " + std::string(e.description());
    if (auto line = e.source().begin.line) *error += " (line " + std::to_string(line) + ")";
    return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  }
  return file;
}

std::optional<std::string> SettingsFile::Lookup(std::string_view key) const {
  if (!table_) return std::nullopt;
  auto node = table_->root.at_path(key);
  if (!node) return std::nullopt;
  if (auto s = node.value<std::string>(); s && node.is_string()) return *s;
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_floating_point()) return std::to_string(*node.value<double>());
  return std::nullopt;
}

std::string SettingsFile::FlagName(std::string_view key) {
  std::string out = "--";
  for (char c : key) out += (c == '.' || c == '_') ? '-' : c;
  return out;
}

std::string SettingsFile::EnvName(std::string_view key) {
  std::string out = "PLYR_";
  for (char c : key) {
    out += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace plyr

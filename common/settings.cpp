#include "common/settings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iterator>

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

StatusOr<SettingsFile> SettingsFile::Load(int argc, const char* const* argv) {
  SettingsFile file;
  auto path = FindConfigPath(argc, argv);
  if (!path) return file;
  file.path_ = *path;
  file.table_ = std::make_unique<Table>();
  try {
    // Debian's toml++ is built with exceptions: a parse error arrives as toml::parse_error.
    file.table_->root = toml::parse_file(*path);
  } catch (const toml::parse_error& e) {
    std::string message = "config file " + *path + ": " + std::string(e.description());
    if (auto line = e.source().begin.line) message += " (line " + std::to_string(line) + ")";
    // toml++ reports a file it cannot open as a parse error too; only the code tells them apart.
    std::error_code ec;
    const bool missing = !std::filesystem::exists(*path, ec) && !ec;
    return Status(missing ? StatusCode::kNotFound : StatusCode::kInvalidArgument, std::move(message));
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

std::optional<std::string> SettingsFile::LookupAs(std::string_view key, ValueKind kind) const {
  if (!table_) return std::nullopt;
  auto node = table_->root.at_path(key);
  if (!node) return std::nullopt;
  const char* wanted = nullptr;
  switch (kind) {
    case ValueKind::kString: wanted = node.is_string() ? nullptr : "a string"; break;
    case ValueKind::kBool: wanted = node.is_boolean() ? nullptr : "true or false"; break;
    case ValueKind::kInteger: wanted = node.is_integer() ? nullptr : "a whole number"; break;
    case ValueKind::kNumber: wanted = node.is_integer() || node.is_floating_point() ? nullptr : "a number"; break;
    case ValueKind::kAny: wanted = node.is_array() || node.is_table() ? "a single value" : nullptr; break;
  }
  if (wanted) {
    errors_.push_back(FileError(key, std::string("must be ") + wanted));
    return std::nullopt;
  }
  return Lookup(key);
}

std::string SettingsFile::FileError(std::string_view key, std::string_view what) const {
  return "config file " + path_.string() + ": " + std::string(key) + ": " + std::string(what);
}

std::vector<std::string> SettingsFile::UnknownKeys() const {
  std::vector<std::string> unknown;
  if (!table_) return unknown;
  // Depth-first over tables; a leaf (any non-table value) is known when some setting binds it.
  std::vector<std::pair<std::string, const toml::table*>> pending = {{"", &table_->root}};
  while (!pending.empty()) {
    auto [prefix, table] = pending.back();
    pending.pop_back();
    for (const auto& [name, node] : *table) {
      const std::string key = prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
      if (const auto* inner = node.as_table(); inner && !bound_.contains(key)) {
        pending.emplace_back(key, inner);
      } else if (!bound_.contains(key)) {
        unknown.push_back(key);
      }
    }
  }
  std::sort(unknown.begin(), unknown.end());
  return unknown;
}

namespace {

// The secret a `<key>_file` setting names: the file's bytes without trailing newlines. NotFound
// when there is no such file, Internal when it cannot be read, InvalidArgument when it is empty.
StatusOr<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    const bool missing = !std::filesystem::exists(path, ec) && !ec;
    return Status(missing ? StatusCode::kNotFound : StatusCode::kInternal, "cannot read " + path);
  }
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return Status(StatusCode::kInvalidArgument, path + " is empty");
  return secret;
}

}  // namespace

CLI::Option* SettingsFile::BindSecret(CLI::App& app, std::string_view key, std::string& value,
                                      std::string help) const {
  const std::string file_key = std::string(key) + "_file";
  bound_.insert(std::string(key));
  bound_.insert(file_key);
  CLI::Option* opt = app.add_option(FlagName(key), value, help)
                         ->envname(EnvName(key))
                         ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // The path becomes the secret on the way in: the option writes the file's content to `value`.
  CLI::Option* file_opt =
      app.add_option(FlagName(file_key), value, "File holding the secret above (instead of the value itself)")
          ->envname(EnvName(file_key))
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
          ->transform(CLI::Validator(
              [](std::string& text) -> std::string {
                auto secret = ReadSecretFile(text);
                if (!secret.ok()) return secret.status().message();
                text = std::move(*secret);
                return {};
              },
              "", "secret file"));
  opt->excludes(file_opt);
  // The defaults CLI11 keeps when neither flag nor variable is given.
  auto from_file = LookupAs(key, ValueKind::kString);
  auto path = LookupAs(file_key, ValueKind::kString);
  if (from_file && path) {
    errors_.push_back(FileError(key, "give the secret or " + file_key + ", not both"));
  } else if (from_file) {
    value = *from_file;
  } else if (path) {
    if (auto secret = ReadSecretFile(*path); secret.ok()) {
      value = std::move(*secret);
    } else {
      errors_.push_back(FileError(file_key, secret.status().message()));
    }
  }
  return opt;
}

CLI::Validator SettingsFile::NonNegative() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size()) return "'" + text + "' is not a number";
        if (value < 0) return "must be 0 or more, not " + text;
        return {};
      },
      "");
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

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "common/settings.h"
#include "tests/support/process.h"

namespace plyr {
namespace {

TEST(SettingsFileTest, NamesDeriveFromTheKey) {
  EXPECT_EQ(SettingsFile::FlagName("streamer.listen"), "--streamer-listen");
  EXPECT_EQ(SettingsFile::FlagName("http.header_limit"), "--http-header-limit");
  EXPECT_EQ(SettingsFile::EnvName("streamer.listen"), "PLYR_STREAMER_LISTEN");
  EXPECT_EQ(SettingsFile::EnvName("admin_token"), "PLYR_ADMIN_TOKEN");
}

struct Parsed {
  std::string listen = "default";
  int threads = 1;
};

// Parses argv with a config file, the way main() does.
Parsed ParseWith(const std::filesystem::path& config, std::vector<const char*> args) {
  args.insert(args.begin(), "plyr-core");
  if (!config.empty()) {
    args.push_back("--config");
    args.push_back(config.c_str());
  }
  auto file = SettingsFile::Load(static_cast<int>(args.size()), args.data());
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  CLI::App app;
  std::string config_flag;
  app.add_option("--config", config_flag);
  Parsed p;
  file->Bind(app, "streamer.listen", p.listen, "");
  file->Bind(app, "threads", p.threads, "");
  app.parse(static_cast<int>(args.size()), args.data());
  return p;
}

TEST(SettingsFileTest, PrecedenceIsFlagThenEnvThenFileThenDefault) {
  testing::TempDir dir;
  auto config = dir.path() / "plyr.toml";
  std::ofstream(config) << "threads = 3\n[streamer]\nlisten = \"127.0.0.1:1111\"\n";

  unsetenv("PLYR_STREAMER_LISTEN");
  EXPECT_EQ(ParseWith({}, {}).listen, "default");
  EXPECT_EQ(ParseWith(config, {}).listen, "127.0.0.1:1111");
  EXPECT_EQ(ParseWith(config, {}).threads, 3);

  setenv("PLYR_STREAMER_LISTEN", "127.0.0.1:2222", 1);
  EXPECT_EQ(ParseWith(config, {}).listen, "127.0.0.1:2222");
  EXPECT_EQ(ParseWith(config, {"--streamer-listen", "127.0.0.1:3333"}).listen, "127.0.0.1:3333");
  unsetenv("PLYR_STREAMER_LISTEN");
}

// Binds the two settings of Parsed from `config`, the way main() does, and returns the file.
SettingsFile BindFrom(const std::filesystem::path& config, Parsed& p, CLI::App& app) {
  std::vector<const char*> args = {"plyr-core", "--config", config.c_str()};
  auto file = SettingsFile::Load(static_cast<int>(args.size()), args.data());
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  file->Bind(app, "streamer.listen", p.listen, "");
  file->Bind(app, "threads", p.threads, "");
  return std::move(*file);
}

TEST(SettingsFileTest, AFileValueOfTheWrongTypeOrNegativeIsAnErrorThatNamesTheKey) {
  testing::TempDir dir;
  auto config = dir.path() / "plyr.toml";
  std::ofstream(config) << "threads = \"three\"\n[streamer]\nlisten = 12\n";
  Parsed p;
  CLI::App app;
  SettingsFile file = BindFrom(config, p, app);
  ASSERT_EQ(file.errors().size(), 2u);
  EXPECT_NE(file.errors()[0].find("streamer.listen: must be a string"), std::string::npos) << file.errors()[0];
  EXPECT_NE(file.errors()[1].find("threads: must be a whole number"), std::string::npos) << file.errors()[1];
  EXPECT_NE(file.errors()[0].find(config.string()), std::string::npos) << "the file is named";

  std::ofstream(config, std::ios::trunc) << "threads = -2\n[streamer]\nlisten = [\"a\"]\n";
  Parsed q;
  CLI::App again;
  SettingsFile negative = BindFrom(config, q, again);
  ASSERT_EQ(negative.errors().size(), 2u);
  EXPECT_NE(negative.errors()[1].find("must be 0 or more, not -2"), std::string::npos) << negative.errors()[1];

  std::ofstream(config, std::ios::trunc) << "threads = 4\n[streamer]\nlisten = \"127.0.0.1:1\"\n";
  Parsed r;
  CLI::App fine;
  EXPECT_TRUE(BindFrom(config, r, fine).errors().empty());
}

TEST(SettingsFileTest, KeysNoSettingBindsAreListed) {
  testing::TempDir dir;
  auto config = dir.path() / "plyr.toml";
  std::ofstream(config) << "threads = 4\nthread = 2\n[streamer]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n"
                        << "[streamr]\nlisten = \"y\"\n";
  Parsed p;
  CLI::App app;
  SettingsFile file = BindFrom(config, p, app);
  EXPECT_EQ(file.UnknownKeys(), (std::vector<std::string>{"streamer.lisen", "streamr.listen", "thread"}));
}

TEST(SettingsFileTest, AFlagOrVariableMustBeANumberOfZeroOrMore) {
  Parsed p;
  SettingsFile file;
  CLI::App app;
  file.Bind(app, "threads", p.threads, "");
  std::vector<const char*> negative = {"plyr-core", "--threads", "-1"};
  EXPECT_THROW(app.parse(static_cast<int>(negative.size()), negative.data()), CLI::ValidationError);
  std::vector<const char*> text = {"plyr-core", "--threads", "many"};
  EXPECT_THROW(app.parse(static_cast<int>(text.size()), text.data()), CLI::ParseError);
}

TEST(SettingsFileTest, ASecretFromTheFileAppliesButIsNotADefaultForHelp) {
  testing::TempDir dir;
  auto config = dir.path() / "plyr.toml";
  std::ofstream(config) << "admin_token = \"from-the-file-0123456789abcdef\"\n";
  std::vector<const char*> args = {"plyr-core", "--config", config.c_str()};
  auto file = SettingsFile::Load(static_cast<int>(args.size()), args.data());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  unsetenv("PLYR_ADMIN_TOKEN");
  CLI::App app;
  std::string config_flag, token;
  app.add_option("--config", config_flag);
  CLI::Option* option = file->BindSecret(app, "admin_token", token, "");
  app.parse(static_cast<int>(args.size()), args.data());
  EXPECT_EQ(token, "from-the-file-0123456789abcdef");
  EXPECT_EQ(option->get_default_str(), "");
  EXPECT_EQ(app.help().find("from-the-file"), std::string::npos);

  setenv("PLYR_ADMIN_TOKEN", "from-the-environment", 1);
  CLI::App again;
  std::string token2;
  again.add_option("--config", config_flag);
  file->BindSecret(again, "admin_token", token2, "");
  again.parse(static_cast<int>(args.size()), args.data());
  EXPECT_EQ(token2, "from-the-environment");
  unsetenv("PLYR_ADMIN_TOKEN");
}

TEST(SettingsFileTest, BrokenFileIsAnErrorWithItsLine) {
  testing::TempDir dir;
  auto config = dir.path() / "bad.toml";
  std::ofstream(config) << "threads = 3\nlisten = = nope\n";
  const char* args[] = {"plyr-core", "--config", config.c_str()};
  auto file = SettingsFile::Load(3, args);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("line 2"), std::string::npos) << file.status().message();
}

TEST(SettingsFileTest, MissingFileIsAnError) {
  const char* args[] = {"plyr-core", "--config=/nonexistent/plyr.toml"};
  auto file = SettingsFile::Load(2, args);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("config file /nonexistent/plyr.toml: "), std::string::npos)
      << file.status().message();
}

TEST(SettingsFileTest, ASecretCanComeFromAFileNamedByTheFileSetting) {
  testing::TempDir dir;
  const auto secret = dir.path() / "token";
  std::ofstream(secret) << "token-from-a-file-0123456789\n";
  const auto config = dir.path() / "plyr.toml";
  unsetenv("PLYR_ADMIN_TOKEN");
  unsetenv("PLYR_ADMIN_TOKEN_FILE");
  auto bind = [&](const std::string& toml, std::vector<const char*> flags, std::string& token) {
    std::ofstream(config, std::ios::trunc) << toml;
    std::vector<const char*> args = {"plyr-core", "--config", config.c_str()};
    args.insert(args.end(), flags.begin(), flags.end());
    auto file = SettingsFile::Load(static_cast<int>(args.size()), args.data());
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    auto app = std::make_unique<CLI::App>();
    std::string config_flag;
    app->add_option("--config", config_flag);
    file->BindSecret(*app, "admin_token", token, "");
    app->parse(static_cast<int>(args.size()), args.data());
    return std::move(*file);
  };
  std::string from_toml;
  EXPECT_TRUE(bind("admin_token_file = \"" + secret.string() + "\"\n", {}, from_toml).errors().empty());
  EXPECT_EQ(from_toml, "token-from-a-file-0123456789");

  std::string from_flag;
  const std::string path = secret.string();
  bind("", {"--admin-token-file", path.c_str()}, from_flag);
  EXPECT_EQ(from_flag, "token-from-a-file-0123456789");

  std::string both;
  auto file = bind("admin_token = \"x\"\nadmin_token_file = \"" + path + "\"\n", {}, both);
  ASSERT_EQ(file.errors().size(), 1u);
  EXPECT_NE(file.errors()[0].find("not both"), std::string::npos) << file.errors()[0];

  std::string missing;
  EXPECT_THROW(bind("", {"--admin-token-file", "/nonexistent/token"}, missing), CLI::ValidationError);
  EXPECT_TRUE(bind("", {}, missing).UnknownKeys().empty());
}

}  // namespace
}  // namespace plyr

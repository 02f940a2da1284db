#include "tests/support/pg_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace plyr::testing {

namespace fs = std::filesystem;

namespace {

// The bin folder of the newest PostgreSQL installed (/usr/lib/postgresql/<version>/bin).
fs::path FindBin() {
  std::error_code ec;
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    if (fs::exists(entry.path() / "bin" / "pg_ctl")) found.push_back(entry.path() / "bin");
  }
  std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
    return std::stoi(a.parent_path().filename().string()) < std::stoi(b.parent_path().filename().string());
  });
  return found.empty() ? fs::path() : found.back();
}

// A loopback port free at this moment (the OS picks it; the server binds it right after).
unsigned short FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  unsigned short port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace

PgTestServer::~PgTestServer() { Stop(); }

int PgTestServer::RunAsOwner(const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> argv;
  if (::geteuid() == 0) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  argv.push_back((bin_ / args.front()).string());
  argv.insert(argv.end(), args.begin() + 1, args.end());
  return PlyrProcess::RunCommand(argv, output, std::chrono::seconds(60));
}

bool PgTestServer::Start() {
  if (running_) return true;
  std::string out;
  if (!initialised_) {
    bin_ = FindBin();
    if (bin_.empty()) {
      error_ = "PostgreSQL is not installed (scripts/install-deps.sh test installs it)";
      return false;
    }
    if (::geteuid() == 0) {
      const passwd* owner = ::getpwnam("postgres");
      if (owner == nullptr) {
        error_ = "no `postgres` user to run the cluster as (the postgresql package creates it)";
        return false;
      }
      std::error_code ec;
      fs::permissions(dir_.path(), fs::perms::owner_all, ec);
      if (::chown(dir_.path().c_str(), owner->pw_uid, owner->pw_gid) != 0) {
        error_ = "cannot give the cluster's folder to the postgres user";
        return false;
      }
    }
    if (RunAsOwner({"initdb", "-D", (dir_.path() / "data").string(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--no-sync", "--no-locale"},
                   &out) != 0) {
      error_ = "initdb failed: " + out;
      return false;
    }
    initialised_ = true;
  }
  // A port free a moment ago can be taken before the server binds it: try a few.
  // After a Stop, the same port first, so that URLs handed out before stay valid.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0 || port_ == 0) port_ = FreePort();
    const std::string options = "-p " + std::to_string(port_) + " -k " + dir_.path().string() +
                                " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off";
    if (RunAsOwner({"pg_ctl", "-D", (dir_.path() / "data").string(), "-l", (dir_.path() / "server.log").string(), "-w",
                    "-t", "30", "-o", options, "start"},
                   &out) == 0) {
      running_ = true;
      return true;
    }
  }
  error_ = "pg_ctl start failed: " + out + "\n" + ReadAll(dir_.path() / "server.log");
  return false;
}

void PgTestServer::Stop() {
  if (!running_) return;
  std::string out;
  RunAsOwner({"pg_ctl", "-D", (dir_.path() / "data").string(), "-m", "immediate", "-w", "stop"}, &out);
  running_ = false;
}

bool PgTestServer::CreateDatabase(const std::string& name) {
  std::string out;
  if (RunAsOwner({"createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", "postgres", name}, &out) != 0) {
    error_ = "createdb failed: " + out;
    return false;
  }
  return true;
}

std::string PgTestServer::url(const std::string& database) const {
  return "postgres://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

PgTestServer* SharedPgServer() {
  static std::unique_ptr<PgTestServer> server;
  if (server == nullptr) {
    auto started = std::make_unique<PgTestServer>();
    if (!started->Start()) {
      ADD_FAILURE() << started->error();
      return nullptr;
    }
    server = std::move(started);
  }
  return server.get();
}

std::string FreshPgDatabase() {
  PgTestServer* server = SharedPgServer();
  if (server == nullptr) return {};
  static int created = 0;
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "t" + std::to_string(++created) + "_";
  for (const char* part : {test->test_suite_name(), test->name()}) {
    for (const char* c = part; *c != '\0' && name.size() < 60; ++c) {
      name += std::isalnum(static_cast<unsigned char>(*c)) ? static_cast<char>(std::tolower(static_cast<unsigned char>(*c))) : '_';
    }
  }
  if (!server->CreateDatabase(name)) {
    ADD_FAILURE() << server->error();
    return {};
  }
  return server->url(name);
}

}  // namespace plyr::testing

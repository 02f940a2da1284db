// PgTestServer: a throw-away PostgreSQL cluster for tests, the real server from Debian's
// postgresql package: initdb into a temporary folder, started with pg_ctl on a free loopback
// port (its socket in that folder too), trust authentication for the `postgres` role. When the
// tests run as root it runs as the `postgres` user, since PostgreSQL refuses to run as root.
// Stopped (immediate shutdown) and removed on destruction; nothing outside its folder changes.
#pragma once

#include <filesystem>
#include <string>

#include "tests/support/process.h"

namespace plyr::testing {

class PgTestServer {
 public:
  PgTestServer() = default;
  ~PgTestServer();
  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  // initdb (once) and start; false with the reason in error(). Start after Stop keeps the data.
  bool Start();
  void Stop();
  // A fresh database in this cluster; false with the reason in error().
  bool CreateDatabase(const std::string& name);

  // "postgres://postgres@127.0.0.1:PORT/<database>".
  std::string url(const std::string& database = "postgres") const;
  unsigned short port() const { return port_; }
  const std::string& error() const { return error_; }

 private:
  // Runs a PostgreSQL program (from its version's bin folder) as the cluster's owner.
  int RunAsOwner(const std::vector<std::string>& args, std::string* output);

  TempDir dir_;
  std::filesystem::path bin_;
  bool initialised_ = false;
  bool running_ = false;
  unsigned short port_ = 0;
  std::string error_;
};

// One server for the tests of this process, started by the first caller (ctest runs one test a
// process; a binary run by hand shares it among its tests) and stopped at exit. Null, with a test
// failure saying why, when it cannot start.
PgTestServer* SharedPgServer();
// A fresh database on the shared server, named after the running test; its URL, or empty (with
// a test failure) when there is none.
std::string FreshPgDatabase();

}  // namespace plyr::testing

#include "tests/support/s3_test_server.h"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

namespace plyr::testing {

namespace fs = std::filesystem;

S3TestServer::S3TestServer(std::string bucket) : bucket_(std::move(bucket)) {}

S3TestServer::~S3TestServer() { Stop(); }

bool S3TestServer::Start() {
  const fs::path script = fs::path(PLYR_S3_SERVER_DIR) / "node_modules" / "s3rver" / "bin" / "s3rver.js";
  if (!fs::exists(script)) {
    error_ = "s3rver is not installed: run `npm ci` in " + std::string(PLYR_S3_SERVER_DIR) +
             " (scripts/test.sh does it before ctest)";
    return false;
  }
  const fs::path log = dir_.path() / "s3rver.log";
  const fs::path objects = dir_.path() / "objects";
  fs::create_directories(objects);
  // s3rver makes listing continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider.
  pid_ = Spawn({"/usr/bin/env", "node", "--openssl-legacy-provider", script.string(), "--directory", objects.string(), "--address", "127.0.0.1",
                "--port", "0", "--silent", "--configure-bucket", bucket_},
               log);
  if (pid_ <= 0) {
    error_ = "cannot start node: " + std::string(std::strerror(-pid_));
    pid_ = -1;
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  constexpr std::string_view kListening = "listening on 127.0.0.1:";
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string text = ReadAll(log);
    if (const auto at = text.find(kListening); at != std::string::npos) {
      port_ = static_cast<unsigned short>(std::stoi(text.substr(at + kListening.size())));
      return true;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "s3rver exited: " + text;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  error_ = "s3rver did not listen within 20 s: " + ReadAll(log);
  Stop();
  return false;
}

void S3TestServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

S3TestServer* SharedS3Server() {
  static std::unique_ptr<S3TestServer> server;
  if (server == nullptr) {
    auto started = std::make_unique<S3TestServer>();
    if (!started->Start()) {
      ADD_FAILURE() << started->error();
      return nullptr;
    }
    server = std::move(started);
  }
  return server.get();
}

}  // namespace plyr::testing

// S3TestServer: a real S3-compatible server on loopback for tests (s3rver from npm, installed
// by scripts/test.sh into tests/s3/node_modules), with one bucket, on an OS-chosen port, its
// objects in a temporary folder. Stopped (SIGTERM, then SIGKILL) on destruction.
//
// s3rver checks the access key (S3RVER, secret S3RVER) but not Signature V4 signatures; the
// signer is held to AWS's published examples instead (tests/common/aws_sigv4_test.cpp).
#pragma once

#include <sys/types.h>

#include <string>

#include "tests/support/process.h"

namespace plyr::testing {

class S3TestServer {
 public:
  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";

  explicit S3TestServer(std::string bucket = "plyr-test");
  ~S3TestServer();
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  // Starts the server and waits (up to 20 s) until it listens; false with the reason in error().
  bool Start();
  void Stop();

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  unsigned short port() const { return port_; }
  const std::string& bucket() const { return bucket_; }
  const std::string& error() const { return error_; }

 private:
  std::string bucket_;
  TempDir dir_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
  std::string error_;
};

// One server for the whole test binary, started on first use and stopped at exit; null (and a
// test failure) when it cannot start. Tests sharing it keep apart by key prefix.
S3TestServer* SharedS3Server();

}  // namespace plyr::testing

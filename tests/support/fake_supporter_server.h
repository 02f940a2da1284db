// FakeSupporterServer: a loopback stand-in for atprotofans that speaks the real XRPC
// (GET /xrpc/com.atprotofans.validateSupporter?supporter=&subject=&signer= -> {"valid": bool}),
// built on our own HTTP server and run on a background thread. Its behaviour can be switched to
// slow, failing or garbage answers to test how the streamer copes.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace plyr {
class HttpServer;
class MetricsRegistry;
class Runtime;
}  // namespace plyr

namespace plyr::testing {

class FakeSupporterServer {
 public:
  enum class Mode { kNormal, kGarbage, kServerError, kSlow };

  FakeSupporterServer();
  ~FakeSupporterServer();

  std::string url() const;  // "http://127.0.0.1:PORT"
  void AddSupporter(const std::string& viewer, const std::string& artist);
  void SetMode(Mode mode, std::chrono::milliseconds delay = {});
  int requests() const { return requests_.load(); }
  std::string last_query() const;

 private:
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::set<std::pair<std::string, std::string>> supporters_;  // guarded by mutex_
  Mode mode_ = Mode::kNormal;                                  // guarded by mutex_
  std::chrono::milliseconds delay_{};                          // guarded by mutex_
  std::string last_query_;                                     // guarded by mutex_
  std::atomic<int> requests_{0};
};

}  // namespace plyr::testing

#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <boost/json/parse.hpp>

extern char** environ;

namespace plyr::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("plyr-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string PlyrProcess::BinaryPath() {
  const char* bin = std::getenv("PLYR_CORE_BIN");
  return bin ? bin : "plyr-core";
}

PlyrProcess::PlyrProcess(fs::path data_dir) : data_dir_(std::move(data_dir)) {
  fs::create_directories(data_dir_);
  std::random_device rd;
  const std::string tag = std::to_string(rd());
  log_path_ = data_dir_.parent_path() / ("plyr-" + tag + ".log");
  ready_path_ = data_dir_.parent_path() / ("plyr-" + tag + ".ready");
}

PlyrProcess::~PlyrProcess() {
  if (pid_ > 0) Kill();
}

pid_t Spawn(const std::vector<std::string>& args, const fs::path& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -rc;  // posix_spawn's error, negated
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool PlyrProcess::StartServe(const std::vector<std::string>& extra, std::chrono::milliseconds timeout) {
  std::error_code ec;
  fs::remove(ready_path_, ec);
  std::vector<std::string> args = {BinaryPath(), "serve", "--data", data_dir_.string(), "--ready-file",
                                   ready_path_.string(), "--streamer-listen", "127.0.0.1:0",
                                   "--labeler-listen", "127.0.0.1:0", "--transcoder-listen", "127.0.0.1:0",
                                   "--fingerprint-listen", "127.0.0.1:0"};
  args.insert(args.end(), extra.begin(), extra.end());
  log_offset_ = fs::exists(log_path_, ec) ? fs::file_size(log_path_, ec) : 0;
  last_end_.clear();
  pid_ = Spawn(args, log_path_);
  if (pid_ <= 0) {
    last_end_ = "posix_spawn failed: " + std::string(std::strerror(-pid_));
    pid_ = -1;
    return false;
  }
  if (file_size_limit_ > 0) {
    const rlimit limit{file_size_limit_, file_size_limit_};
    if (::prlimit(pid_, RLIMIT_FSIZE, &limit, nullptr) != 0) {
      Kill();
      return false;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(ready_path_)) {
      boost::system::error_code jec;
      auto doc = boost::json::parse(ReadAll(ready_path_), jec);
      if (!jec && doc.is_object()) {
        for (const auto& [k, v] : doc.as_object()) ports_[std::string(k)] = static_cast<unsigned short>(v.to_number<int>());
        return true;
      }
    }
    if (!Running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool PlyrProcess::LimitFileSizeNow(std::uint64_t bytes) {
  // Only the soft limit moves, so that lifting it again needs no privilege.
  rlimit limit{};
  if (pid_ <= 0 || ::prlimit(pid_, RLIMIT_FSIZE, nullptr, &limit) != 0) return false;
  limit.rlim_cur = bytes > 0 ? std::min<rlim_t>(bytes, limit.rlim_max) : limit.rlim_max;
  return ::prlimit(pid_, RLIMIT_FSIZE, &limit, nullptr) == 0;
}

bool PlyrProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    last_end_ = WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                  : "signal " + std::to_string(WTERMSIG(status));
    return false;
  }
  return true;
}

std::string PlyrProcess::log_since_start() const {
  const std::string all = ReadAll(log_path_);
  return log_offset_ < all.size() ? all.substr(log_offset_) : std::string();
}

int PlyrProcess::Stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return -1;
}

void PlyrProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

unsigned short PlyrProcess::port(const std::string& service) const {
  auto it = ports_.find(service);
  return it == ports_.end() ? 0 : it->second;
}

std::string PlyrProcess::log() const { return ReadAll(log_path_); }

std::string PlyrProcess::admin_token() const {
  std::string token = ReadAll(data_dir_ / "admin-token");
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
  return token;
}

int PlyrProcess::RunToCompletion(const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> full = {BinaryPath()};
  full.insert(full.end(), args.begin(), args.end());
  return RunCommand(full, output);
}

int PlyrProcess::RunCommand(const std::vector<std::string>& argv, std::string* output,
                            std::chrono::milliseconds timeout) {
  TempDir tmp;
  const auto log = tmp.path() / "out.log";
  pid_t pid = Spawn(argv, log);
  if (pid <= 0) return -1;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  if (output) *output = ReadAll(log);
  return exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace plyr::testing

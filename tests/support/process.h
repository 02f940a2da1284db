// PlyrProcess: starts the real plyr-core binary for integration tests and stops it.
//
// The binary comes from $PLYR_CORE_BIN (ctest sets it). Each process gets a fresh data folder
// (unless one is given), listens on OS-chosen loopback ports and reports them through
// --ready-file; Start() waits (bounded) for that file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace plyr::testing {

// A fresh temporary folder, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Starts argv[0] (a path) with stdout and stderr appended to `log_path` and stdin from
// /dev/null; returns its pid, or posix_spawn's error negated.
pid_t Spawn(const std::vector<std::string>& args, const std::filesystem::path& log_path);
// The whole file (empty if it cannot be read).
std::string ReadAll(const std::filesystem::path& path);

class PlyrProcess {
 public:
  // `args` follow "plyr-core"; e.g. {"serve", "streamer", "--supporter-url", url}.
  explicit PlyrProcess(std::filesystem::path data_dir);
  ~PlyrProcess();

  // Starts `plyr-core serve ...extra` with --data, --ready-file and loopback port-0 listeners
  // (streamer, labeler, transcoder, fingerprint), and waits up to `timeout` for readiness. Returns false (with
  // the log in `log()`) on failure.
  bool StartServe(const std::vector<std::string>& extra,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Limits the size of every file the next started process writes (RLIMIT_FSIZE, applied to the
  // child right after it starts; 0: no limit). plyr-core ignores SIGXFSZ, so a write past the
  // limit fails with EFBIG, which stands in for a full disk.
  void set_file_size_limit(std::uint64_t bytes) { file_size_limit_ = bytes; }
  // The same limit on the running process, now (0: none): its disk fills up, or frees, under it.
  bool LimitFileSizeNow(std::uint64_t bytes);
  // SIGTERM and wait; returns the exit status (or -1).
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // SIGKILL and reap.
  void Kill();
  bool Running();
  pid_t pid() const { return pid_; }
  // How the last process ended once reaped ("exit 1", "signal 9"), and what it wrote since its
  // start: for telling why a start failed.
  const std::string& last_end() const { return last_end_; }
  std::string log_since_start() const;

  unsigned short port(const std::string& service) const;
  const std::filesystem::path& data_dir() const { return data_dir_; }
  std::string log() const;
  std::string admin_token() const;

  // Runs plyr-core with `args` to completion; returns the exit status and fills `output`.
  static int RunToCompletion(const std::vector<std::string>& args, std::string* output);
  // Runs any program (argv[0] is its path) to completion, killing it after `timeout`; returns
  // the exit status (-1 if killed) and fills `output` with stdout and stderr.
  static int RunCommand(const std::vector<std::string>& argv, std::string* output,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));
  static std::string BinaryPath();

 private:
  std::filesystem::path data_dir_;
  std::filesystem::path log_path_;
  std::filesystem::path ready_path_;
  pid_t pid_ = -1;
  std::string last_end_;
  std::uintmax_t log_offset_ = 0;  // the log's size when the current process started
  std::uint64_t file_size_limit_ = 0;
  std::map<std::string, unsigned short> ports_;
};

}  // namespace plyr::testing

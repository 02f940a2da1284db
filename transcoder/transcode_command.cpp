#include "transcoder/transcode_command.h"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include <boost/json/serialize.hpp>

#include "transcoder/transcode.h"
#include "transcoder/transcode_json.h"

namespace plyr::transcoder {

namespace {

struct TranscodeArgs {
  std::string input;
  std::string out_dir;
  std::string renditions = "mp3-320,mp3-128,aac-256,opus-128,opus-64";
  unsigned workers = 0;
  bool analyze = true;
};

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int Run(const TranscodeArgs& args) {
  auto ladder = ParseLadder(args.renditions);
  if (!ladder.ok()) {
    std::cerr << "transcode: " << ladder.status().message() << "\n";
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(args.out_dir, ec);
  if (ec) {
    std::cerr << "transcode: cannot create " << args.out_dir << ": " << ec.message() << "\n";
    return 1;
  }
  const unsigned workers = args.workers ? args.workers : std::max(1u, std::thread::hardware_concurrency());
  boost::asio::thread_pool pool(workers);
  TranscodeRequest request;
  request.input = args.input;
  request.output_dir = args.out_dir;
  request.renditions = std::move(*ladder);
  request.analyze = args.analyze;
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ProcessCpuSeconds();
  auto result = TranscodeAndWait(pool, std::move(request));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = ProcessCpuSeconds() - cpu_start;
  pool.join();
  if (!result.ok()) {
    std::cerr << "transcode: " << result.status().ToString() << "\n";
    return 1;
  }
  boost::json::array renditions;
  for (const auto& r : result->renditions) {
    auto item = RenditionJson(r);
    item["path"] = r.path.string();
    item["encode_cpu_s"] = r.encode_cpu_seconds;
    renditions.push_back(std::move(item));
  }
  const auto& f = result->facts;
  boost::json::object out{
      {"input",
       {{"codec", f.codec}, {"sample_rate", f.sample_rate}, {"channels", f.channels}, {"duration_ms", f.duration_ms}}},
      {"facts", FactsJson(f)},
      {"renditions", std::move(renditions)},
      {"wall_s", wall},
      {"cpu_s", cpu}};
  std::cout << boost::json::serialize(out) << "\n";
  return 0;
}

}  // namespace

void AddTranscodeCommand(CLI::App& root, const SettingsFile&, std::function<int()>& action) {
  auto args = std::make_shared<TranscodeArgs>();
  CLI::App* cmd = root.add_subcommand(
      "transcode", "Decode FILE once and write every rendition to --out, printing the facts as JSON");
  cmd->add_option("file", args->input, "Audio file (any format the transcoder takes)")->required();
  cmd->add_option("--out", args->out_dir, "Folder for the renditions (<name>.<ext>)")->required();
  cmd->add_option("--renditions", args->renditions, "Comma-separated ladder, e.g. mp3-320,aac-256,opus-64,wav")
      ->capture_default_str();
  cmd->add_option("--workers", args->workers, "Encoder threads (0: one per core)")->capture_default_str();
  cmd->add_flag("!--no-analysis", args->analyze, "Skip loudness and waveform");
  cmd->callback([args, &action] { action = [args] { return Run(*args); }; });
}

}  // namespace plyr::transcoder

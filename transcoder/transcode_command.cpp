#include "transcoder/transcode_command.h"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "common/admin_token.h"
#include "common/file_util.h"
#include "common/http_client.h"
#include "common/json_text.h"
#include "common/media/chromaprint.h"
#include "common/service_env.h"

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
  std::string fingerprint_speeds;  // empty: no fingerprint
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
  const unsigned workers = WorkerThreads(args.workers);
  boost::asio::thread_pool pool(workers);
  TranscodeRequest request;
  request.input = args.input;
  request.output_dir = args.out_dir;
  request.renditions = std::move(*ladder);
  request.analyze = args.analyze;
  if (!args.fingerprint_speeds.empty()) {
    auto speeds = media::ParseSpeedList(args.fingerprint_speeds);
    if (!speeds.ok()) {
      std::cerr << "transcode: " << speeds.status().message() << "\n";
      return 2;
    }
    request.fingerprint_speeds = std::move(*speeds);
  }
  const std::vector<double> speeds = request.fingerprint_speeds;
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
      {"cpu_s", cpu},
      {"actors_cpu_s", result->cpu_seconds}};
  if (!speeds.empty()) {
    boost::json::array prints;
    for (std::size_t i = 0; i < speeds.size() && i < result->fingerprints.size(); ++i) {
      prints.push_back({{"speed", speeds[i]},
                        {"items", result->fingerprints[i].size()},
                        {"fingerprint", media::EncodeFingerprint(result->fingerprints[i])}});
    }
    out["fingerprints"] = std::move(prints);
    out["fingerprint_cpu_s"] = result->fingerprint_cpu_seconds;
  }
  std::cout << ToJsonText(out) << "\n";
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
  cmd->add_option("--fingerprint-speeds", args->fingerprint_speeds,
                  "Also print Chromaprint fingerprints (fpcalc's compressed form) at these speeds, e.g. 1,0.98,1.02");
  cmd->callback([args, &action] { action = [args] { return Run(*args); }; });
}

}  // namespace plyr::transcoder

// ---------------------------------------------------------------------------------------------
// plyr-core job submit

namespace plyr::transcoder {

namespace {

struct SubmitArgs {
  std::string file;
  std::string url = "http://127.0.0.1:8430";
  std::string token;
  std::string data_dir = "./data";
  std::string owner_did;
  std::string renditions;
  std::string gate;
  std::string track_uri;
  std::string callback_url;
  bool copyright_check = true;
  bool wait = false;
  std::int64_t timeout_s = 3600;
};

std::string QueryEscape(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// One line of progress: a bar on a terminal (redrawn in place), plain lines otherwise.
class ProgressPrinter {
 public:
  ProgressPrinter() : terminal_(::isatty(STDERR_FILENO) == 1) {}
  void Show(const std::string& id, std::string_view state, double progress) {
    const int percent = static_cast<int>(progress * 100);
    if (terminal_) {
      const int filled = percent * 30 / 100;
      std::cerr << "\r" << id << " [" << std::string(filled, '#') << std::string(30 - filled, '-') << "] "
                << fmt::format("{:3d}% {:<9}", percent, state) << std::flush;
    } else if (state != last_state_ || percent / 10 != last_percent_ / 10) {
      std::cerr << "job " << id << " " << state << " " << percent << "%\n";
    }
    last_state_ = std::string(state);
    last_percent_ = percent;
  }
  void Done() {
    if (terminal_) std::cerr << "\n";
  }

 private:
  bool terminal_;
  std::string last_state_;
  int last_percent_ = -100;
};

asio::awaitable<int> Submit(const SubmitArgs& args, std::string token) {
  auto executor = co_await asio::this_coro::executor;
  HttpClient client;
  std::string base = args.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string target = base + "/v1/jobs?owner_did=" + QueryEscape(args.owner_did);
  if (!args.renditions.empty()) target += "&renditions=" + QueryEscape(args.renditions);
  if (!args.gate.empty()) target += "&gate=" + QueryEscape(args.gate);
  if (!args.track_uri.empty()) target += "&track_uri=" + QueryEscape(args.track_uri);
  if (!args.callback_url.empty()) target += "&callback_url=" + QueryEscape(args.callback_url);
  if (!args.copyright_check) target += "&copyright_check=false";

  HttpClientRequest post;
  post.method = http::verb::post;
  post.url = target;
  post.headers = {{"Authorization", "Bearer " + token}, {"Content-Type", "application/octet-stream"}};
  post.body_file = args.file;
  post.timeout = std::chrono::seconds(args.timeout_s);
  auto submitted = co_await client.Send(executor, post);
  if (!submitted) {
    std::cerr << "job submit: cannot reach " << base << ": " << submitted.status().message() << "\n";
    co_return 3;
  }
  boost::system::error_code ec;
  json::value answer = json::parse(submitted->body, ec);
  if (submitted->status != 202 || ec || !answer.is_object() || !answer.as_object().contains("id")) {
    std::cerr << "job submit: refused (" << submitted->status << "): " << submitted->body << "\n";
    co_return 1;
  }
  const std::string id(answer.at("id").as_string());
  if (!args.wait) {
    std::cout << ToJsonText(answer) << "\n";
    co_return 0;
  }

  ProgressPrinter printer;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(args.timeout_s);
  asio::steady_timer timer(executor);
  for (;;) {
    HttpClientRequest get;
    get.url = base + "/v1/jobs/" + id;
    get.headers = {{"Authorization", "Bearer " + token}};
    get.timeout = std::chrono::seconds(30);
    get.body_limit = 8 << 20;
    auto polled = co_await client.Send(executor, get);
    if (polled && polled->status == 200) {
      json::value job = json::parse(polled->body, ec);
      if (!ec && job.is_object()) {
        const std::string state(job.at("state").as_string());
        printer.Show(id, state, job.at("progress").to_number<double>());
        if (state == "done" || state == "failed" || state == "cancelled") {
          printer.Done();
          std::cout << ToJsonText(job) << "\n";
          co_return state == "done" ? 0 : 1;
        }
      }
    } else if (!polled) {
      std::cerr << "\njob submit: lost " << base << ": " << polled.status().message() << " (retrying)\n";
    }
    if (std::chrono::steady_clock::now() > deadline) {
      printer.Done();
      std::cerr << "job submit: gave up waiting for job " << id << "\n";
      co_return 1;
    }
    timer.expires_after(std::chrono::milliseconds(500));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace

void AddJobCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action) {
  auto args = std::make_shared<SubmitArgs>();
  CLI::App* job = root.add_subcommand("job", "Transcode jobs on a running transcoder");
  job->require_subcommand(1);
  CLI::App* submit = job->add_subcommand("submit", "Upload FILE as a new job; with --wait, follow it to the end");
  submit->add_option("file", args->file, "Audio file")->required()->check(CLI::ExistingFile);
  submit->add_option("--url", args->url, "The transcoder's base URL")->capture_default_str();
  submit->add_option("--token", args->token, "Admin token (default: $PLYR_ADMIN_TOKEN, else <data>/admin-token)")
      ->envname("PLYR_ADMIN_TOKEN");
  file.Bind(*submit, "data", args->data_dir, "Data folder holding admin-token");
  submit->add_option("--owner", args->owner_did, "The track owner's DID")->required();
  submit->add_option("--renditions", args->renditions, "Ladder, e.g. mp3-320,opus-64 (default: the service's)");
  submit->add_option("--gate", args->gate, "none, any or copyright");
  submit->add_option("--track-uri", args->track_uri, "The track's at:// URI");
  submit->add_option("--callback-url", args->callback_url, "Where the service reports the job's end");
  submit->add_flag("!--no-copyright-check", args->copyright_check,
                   "Skip the copyright check for this job (when the transcoder has one)");
  submit->add_flag("--wait", args->wait, "Follow the job and print its final JSON (exit 0 only if done)");
  submit->add_option("--timeout-s", args->timeout_s, "Give up after this long")->capture_default_str();
  submit->callback([args, &action] {
    action = [args] {
      auto resolved = ClientAdminToken(args->token, args->data_dir);
      if (!resolved.ok()) {
        std::cerr << "job submit: " << resolved.status().message() << "\n";
        return 2;
      }
      const std::string token = *resolved;
      asio::io_context context;
      auto result = asio::co_spawn(context, Submit(*args, token), asio::use_future);
      context.run();
      return result.get();
    };
  });
}

}  // namespace plyr::transcoder

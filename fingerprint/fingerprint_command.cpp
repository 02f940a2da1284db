#include "fingerprint/fingerprint_command.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include "common/admin_token.h"
#include "common/http_client.h"
#include "common/json_text.h"
#include "common/media/chromaprint.h"
#include "common/service_env.h"
#include "fingerprint/audio_fingerprint.h"

namespace plyr::fingerprint {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

struct PrintArgs {
  std::vector<std::string> files;
  bool json = false;
  bool raw = false;
  double length_s = 0;
};

// fpcalc's output: FILE=, DURATION= (whole seconds), FINGERPRINT= (or the raw items, signed).
int RunPrint(const PrintArgs& args) {
  int failures = 0;
  AudioFingerprintOptions options;
  options.max_fingerprint_ms = static_cast<std::int64_t>(args.length_s * 1000);
  for (const auto& file : args.files) {
    auto fp = FingerprintFile(file, options);
    if (!fp.ok()) {
      std::cerr << "ERROR: " << file << ": " << fp.status().message() << "\n";
      ++failures;
      continue;
    }
    const auto& items = fp->by_speed[0];
    if (items.empty()) {
      std::cerr << "ERROR: " << file << ": the audio is too short to fingerprint (about 3 s are needed)\n";
      ++failures;
      continue;
    }
    if (args.json) {
      json::object o{{"duration", std::round(fp->duration_s * 100) / 100}};
      if (args.raw) {
        json::array a;
        for (auto item : items) a.push_back(static_cast<std::int32_t>(item));
        o["fingerprint"] = std::move(a);
      } else {
        o["fingerprint"] = media::EncodeFingerprint(items);
      }
      std::cout << ToJsonText(o) << "\n";
    } else {
      if (args.files.size() > 1) std::cout << "FILE=" << file << "\n";
      std::cout << "DURATION=" << static_cast<long>(fp->duration_s) << "\nFINGERPRINT=";
      if (args.raw) {
        for (std::size_t i = 0; i < items.size(); ++i) std::cout << (i ? "," : "") << static_cast<std::int32_t>(items[i]);
      } else {
        std::cout << media::EncodeFingerprint(items);
      }
      std::cout << "\n";
      if (args.files.size() > 1) std::cout << "\n";
    }
  }
  return failures == 0 ? 0 : 1;
}

struct ImportArgs {
  std::string dir;
  std::string url = "http://127.0.0.1:8440";
  std::string token;
  std::string data_dir = "./data";
  unsigned jobs = 0;
  std::string owner_did;
};

bool IsAudioName(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {".mp3", ".flac", ".ogg", ".oga", ".opus", ".wav", ".m4a", ".aac", ".aif", ".aiff", ".wma",
                            ".webm", ".mka", ".alac"}) {
    if (ext == known) return true;
  }
  return false;
}

// Fingerprints files on `jobs` threads and registers each with the service as it is ready; the
// service commits a reference before it answers, so what was reported added survives a crash of
// either side, and a second run skips what the first registered (409).
int RunImport(const ImportArgs& args, const std::string& token) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(args.dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && IsAudioName(it->path())) files.push_back(it->path());
  }
  if (ec) {
    std::cerr << "fingerprint import: cannot read " << args.dir << ": " << ec.message() << "\n";
    return 2;
  }
  std::sort(files.begin(), files.end());
  std::cerr << "fingerprint import: " << files.size() << " audio files under " << args.dir << "\n";

  std::atomic<std::size_t> next{0}, added{0}, existing{0}, failed{0};
  std::mutex out_mutex;
  auto report = [&](const fs::path& file, std::string_view what) {
    std::lock_guard lock(out_mutex);
    std::cout << what << "\t" << fs::relative(file, args.dir).string() << "\n" << std::flush;
  };
  auto worker = [&] {
    asio::io_context context;
    HttpClient client;
    AudioFingerprintOptions options;
    while (true) {
      const std::size_t i = next++;
      if (i >= files.size()) return;
      const fs::path& file = files[i];
      auto fp = FingerprintFile(file, options);
      if (!fp.ok() || fp->by_speed[0].empty()) {
        report(file, "error: " + (fp.ok() ? std::string("too short") : fp.status().message()));
        ++failed;
        continue;
      }
      json::object body{{"fingerprint", media::EncodeFingerprint(fp->by_speed[0])},
                        {"duration_s", fp->duration_s},
                        {"title", fp->title.empty() ? file.stem().string() : fp->title},
                        {"artist", fp->artist},
                        {"external_ids", json::object{{"path", fs::relative(file, args.dir).string()}}}};
      if (!args.owner_did.empty()) body["owner_did"] = args.owner_did;
      HttpClientRequest post;
      post.method = http::verb::post;
      post.url = args.url + "/v1/references";
      post.headers = {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
      post.body = json::serialize(body);
      std::optional<StatusOr<HttpClientResponse>> slot;
      asio::co_spawn(
          context,
          [&]() -> asio::awaitable<void> {
            const asio::any_io_executor executor = context.get_executor();
            slot.emplace(co_await client.Send(executor, post));
          },
          asio::detached);
      context.restart();
      context.run();
      if (!slot) slot.emplace(Status(StatusCode::kInternal, "the request did not run"));
      auto& answer = *slot;
      if (!answer.ok()) {
        report(file, "error: cannot reach " + args.url + ": " + answer.status().message());
        ++failed;
        continue;
      }
      boost::system::error_code jec;
      json::value parsed = json::parse(answer->body, jec);
      const json::object* o = jec ? nullptr : parsed.if_object();
      auto member = [&](std::string_view key) -> std::string {
        const json::value* v = o ? o->if_contains(key) : nullptr;
        return v && v->is_string() ? std::string(v->as_string()) : std::string();
      };
      if (answer->status == 201) {
        report(file, "added " + member("id"));
        ++added;
      } else if (answer->status == 409) {
        report(file, "exists " + member("reference_id"));
        ++existing;
      } else {
        report(file, "error: " + std::to_string(answer->status) + " " + member("message"));
        ++failed;
      }
    }
  };
  const unsigned jobs = WorkerThreads(args.jobs);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < jobs; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  std::cerr << "fingerprint import: " << added << " added, " << existing << " already registered, " << failed
            << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

void AddFingerprintCommand(CLI::App& root, const SettingsFile& file, std::function<int()>& action) {
  auto print = std::make_shared<PrintArgs>();
  CLI::App* cmd = root.add_subcommand("fingerprint", "Chromaprint fingerprints of audio files (like fpcalc)");
  cmd->add_option("files", print->files, "Audio files (any format FFmpeg reads)");
  cmd->add_flag("--json", print->json, "Print JSON, one object per file");
  cmd->add_flag("--raw", print->raw, "Print the raw items (signed integers) instead of the compressed form");
  cmd->add_option("--length", print->length_s, "Fingerprint at most this many seconds (0: all)")->capture_default_str();

  auto import = std::make_shared<ImportArgs>();
  CLI::App* imp = cmd->add_subcommand("import", "Register every audio file under DIR as a reference work");
  imp->add_option("dir", import->dir, "Folder to walk")->required()->check(CLI::ExistingDirectory);
  imp->add_option("--url", import->url, "The fingerprint service's base URL")->capture_default_str();
  imp->add_option("--token", import->token, "Admin token (default: $PLYR_ADMIN_TOKEN, else <data>/admin-token)")
      ->envname("PLYR_ADMIN_TOKEN");
  file.Bind(*imp, "data", import->data_dir, "Data folder holding admin-token");
  imp->add_option("--owner", import->owner_did, "DID of the works' owner, when one artist owns them all");
  imp->add_option("--jobs", import->jobs, "Files fingerprinted at once (0: one per core)")->capture_default_str();

  imp->callback([import, &action] {
    action = [import] {
      auto token = ClientAdminToken(import->token, import->data_dir);
      if (!token.ok()) {
        std::cerr << "fingerprint import: " << token.status().message() << "\n";
        return 2;
      }
      return RunImport(*import, *token);
    };
  });
  cmd->callback([cmd, imp, print, &action] {
    if (imp->parsed()) return;
    action = [cmd, print] {
      if (print->files.empty()) {
        std::cerr << cmd->help();
        return 2;
      }
      return RunPrint(*print);
    };
  });
}

}  // namespace plyr::fingerprint

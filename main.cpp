// plyr-core: one binary, one subcommand per job.
//
//   plyr-core serve [SERVICE...]   run services (all built ones by default), each on its listener
//   plyr-core ticket keygen|mint   stream tickets for gated audio
//   plyr-core labeler keygen|did   the labeler's signing key and identity
//   plyr-core transcode FILE       the transcoder's engine alone; plyr-core job submit: a job
//   plyr-core fingerprint FILE     Chromaprint fingerprints (like fpcalc); fingerprint import DIR
//
// Settings come from flags, PLYR_* variables and an optional TOML file (see common/settings.h and
// docs/configuration.md).
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>

#include "common/admin_token.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/migrations.h"
#include "common/object_store_settings.h"
#include "common/pg_db.h"
#include "common/service_env.h"
#include "common/settings.h"
#include "migrate_command.h"
#include "fingerprint/fingerprint_command.h"
#include "fingerprint/fingerprint_service.h"
#include "fingerprint/reference_store.h"
#include "labeler/labeler_command.h"
#include "labeler/label_store.h"
#include "labeler/labeler_service.h"
#include "streamer/streamer_command.h"
#include "streamer/catalog.h"
#include "streamer/streamer_service.h"
#include "transcoder/transcode_command.h"
#include "transcoder/job_store.h"
#include "transcoder/transcoder_service.h"

namespace {

using namespace plyr;

struct ServeSettings {
  std::string data_dir = "./data";
  std::string admin_token;
  std::string log_level = "info";
  std::string log_format = "text";
  unsigned threads = 0;
  std::string thread_model = "per-core";
  bool access_log = true;
  std::string ready_file;
  std::size_t header_limit = 16 * 1024;
  std::int64_t header_timeout_ms = 10'000;
  std::int64_t idle_timeout_ms = 60'000;
  std::int64_t io_timeout_ms = 30'000;
  std::uint64_t min_rate_bytes_per_s = 1024;
  std::int64_t min_rate_grace_ms = 10'000;
  std::size_t max_connections = 10'000;
  std::int64_t drain_timeout_ms = 10'000;
  std::string trusted_proxies;
  std::string database_url;
  int database_connections = 4;
  ObjectStoreSettings object_store;
  std::vector<std::string> services;
};

// In the order they start: a service that calls another over HTTP starts after it, so it can be
// pointed at the local one.
const std::vector<std::string> kAllServices = {"streamer", "labeler", "fingerprint", "transcoder"};

// "streamer, labeler": the services this build has, for help and errors.
std::string ServiceNames() {
  std::string names;
  for (const auto& name : kAllServices) names += (names.empty() ? "" : ", ") + name;
  return names;
}

void AddServeSettings(CLI::App& serve, const SettingsFile& file, ServeSettings& s) {
  file.Bind(serve, "data", s.data_dir, "Folder holding everything the process persists");
  file.BindSecret(serve, "admin_token", s.admin_token,
            "Bearer token for admin and job APIs (default: generated into <data>/admin-token)");
  file.Bind(serve, "log_level", s.log_level, "trace, debug, info, warn or error");
  file.Bind(serve, "log_format", s.log_format, "text (one line of key=value pairs) or json (one object a line)")
      ->check(CLI::IsMember({"text", "json"}));
  file.Bind(serve, "threads", s.threads, "I/O threads (0: one per CPU core)");
  file.Bind(serve, "thread_model", s.thread_model,
            "per-core (one io_context per thread, SO_REUSEPORT) or shared (one io_context, all threads)")
      ->check(CLI::IsMember({"per-core", "shared"}));
  file.Bind(serve, "access_log", s.access_log, "One log line per request");
  file.Bind(serve, "ready_file", s.ready_file,
            "Write {\"service\": port, ...} here once every listener accepts (for scripts and tests)");
  file.Bind(serve, "http.header_limit", s.header_limit, "Largest request header in bytes (431 beyond)");
  file.Bind(serve, "http.header_timeout_ms", s.header_timeout_ms, "A request header must arrive within this");
  file.Bind(serve, "http.idle_timeout_ms", s.idle_timeout_ms, "Keep-alive connections idle longer are closed");
  file.Bind(serve, "http.io_timeout_ms", s.io_timeout_ms, "A body read or write with no progress this long fails");
  file.Bind(serve, "http.min_rate_bytes_per_s", s.min_rate_bytes_per_s,
            "A request body or response averaging less than this (after the grace) is cut; 0: no floor");
  file.Bind(serve, "http.min_rate_grace_ms", s.min_rate_grace_ms, "How long a transfer may run before its rate counts");
  file.Bind(serve, "http.max_connections", s.max_connections, "Open connections per listener (503 beyond)");
  file.Bind(serve, "http.drain_timeout_ms", s.drain_timeout_ms,
            "On SIGTERM/SIGINT, how long in-flight requests may finish");
  file.Bind(serve, "http.trusted_proxies", s.trusted_proxies,
            "Reverse proxies (addresses, networks) whose X-Forwarded-For names the client, e.g. 127.0.0.1,10.0.0.0/8");
  file.BindSecret(serve, "database.url", s.database_url,
                  "PostgreSQL URL (postgres://user:password@host:port/database) for the stores that run on it "
                  "(so far the fingerprint references); empty: SQLite in the data folder");
  file.Bind(serve, "database.connections", s.database_connections,
            "PostgreSQL connections each service keeps (1-64)");
  BindObjectStoreSettings(serve, file, s.object_store);
  // Checked after parsing (UnknownService), not by a validator: CLI11 validates before it reports
  // unknown options, so `--misspelt-flag value` would otherwise be blamed on "value".
  serve.add_option("services", s.services, "Services to run: " + ServiceNames() + " (default: all)");
}

// The first requested service this build does not have, if any.
std::optional<std::string> UnknownService(const ServeSettings& s) {
  for (const auto& name : s.services) {
    if (std::find(kAllServices.begin(), kAllServices.end(), name) == kAllServices.end()) return name;
  }
  return std::nullopt;
}

int RunServe(ServeSettings& s, const streamer::StreamerSettings& streamer_settings,
             const labeler::LabelerSettings& labeler_settings, transcoder::TranscoderSettings transcoder_settings,
             fingerprint::FingerprintSettings fingerprint_settings) {
  InitLogging(s.log_level, s.log_format);
  std::signal(SIGPIPE, SIG_IGN);  // a client that vanishes mid-write is an error code, not a signal
  std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit (ulimit -f) is a write error (EFBIG), not death
  // Each connection and each cached blob holds a descriptor: use every one the hard limit allows.
  if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }

  auto probe = ProbeIoUring();
  if (!probe.ok()) {
    spdlog::critical(
        "io_uring is not available: {}. This build runs all I/O on Asio's io_uring backend; allow io_uring "
        "(kernel.io_uring_disabled=0, a seccomp profile that permits io_uring_setup) or build with "
        "-DPLYR_IO_URING=OFF",
        probe.status().message());
    return 1;
  }

  std::error_code fec;
  std::filesystem::create_directories(s.data_dir, fec);
  if (fec) {
    spdlog::critical("cannot create data folder {}: {}", s.data_dir, fec.message());
    return 1;
  }
  if (!s.admin_token.empty() && s.admin_token.size() < kMinAdminTokenLength) {
    spdlog::critical("admin_token: a configured token must be at least {} characters (for example `openssl rand "
                     "-hex 32`); leave it unset to have one generated into <data>/admin-token",
                     kMinAdminTokenLength);
    return 2;
  }
  auto token = ResolveAdminToken(s.admin_token, s.data_dir);
  if (!token.ok()) {
    spdlog::critical("admin token: {}", token.status().message());
    return 1;
  }
  if (!token->generated_at.empty()) spdlog::info("admin token file={}", token->generated_at.string());

  RuntimeOptions runtime_options;
  runtime_options.threads = s.threads;
  runtime_options.model = s.thread_model == "shared" ? ThreadModel::kShared : ThreadModel::kPerCore;
  Runtime runtime(runtime_options);
  MetricsRegistry metrics;
  const char* task_run = std::string_view(IoBackendName()) != "io_uring" ? "-"
                         : probe->cooperative_task_run                   ? "cooperative"
                                                                         : "interrupt";
  metrics.SetRuntimeInfo(IoBackendName(), task_run, s.thread_model, runtime.thread_count());
  HttpClient http_client;
  spdlog::info("runtime backend={} task_run={} threads={} thread_model={}", IoBackendName(), task_run,
               runtime.thread_count(), s.thread_model);

  HttpServerOptions defaults;
  defaults.header_limit = s.header_limit;
  defaults.header_timeout = std::chrono::milliseconds(s.header_timeout_ms);
  defaults.idle_timeout = std::chrono::milliseconds(s.idle_timeout_ms);
  defaults.io_timeout = std::chrono::milliseconds(s.io_timeout_ms);
  defaults.min_rate_bytes_per_s = s.min_rate_bytes_per_s;
  defaults.min_rate_grace = std::chrono::milliseconds(s.min_rate_grace_ms);
  defaults.max_connections = s.max_connections;
  defaults.access_log = s.access_log;
  if (auto proxies = TrustedProxies::Parse(s.trusted_proxies); proxies.ok()) {
    defaults.trusted_proxies = std::move(*proxies);
  } else {
    spdlog::critical("http.trusted_proxies: {}", proxies.status().message());
    return 2;
  }
  if (s.database_connections < 1 || s.database_connections > 64) {
    spdlog::critical("database.connections: must be 1 to 64, not {}", s.database_connections);
    return 2;
  }
  ServiceEnv env{runtime, metrics, http_client, s.data_dir, token->value, defaults};
  env.database_url = s.database_url;
  env.database_connections = s.database_connections;
  auto object_store = CheckObjectStoreSettings(s.object_store, http_client);
  if (!object_store.ok()) {
    spdlog::critical("{}", object_store.status().message());
    return 2;
  }
  env.object_store = std::move(*object_store);
  env.object_prefix = s.object_store.prefix;

  const auto& wanted = s.services.empty() ? kAllServices : s.services;
  std::vector<std::unique_ptr<Service>> services;
  for (const auto& name : kAllServices) {
    if (std::find(wanted.begin(), wanted.end(), name) == wanted.end()) continue;
    if (name == "streamer") {
      auto service = streamer::StreamerService::Create(env, streamer_settings);
      if (!service.ok()) {
        spdlog::critical("streamer: {}", service.status().message());
        return service.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      services.push_back(std::move(*service));
    } else if (name == "labeler") {
      auto service = labeler::LabelerService::Create(env, labeler_settings);
      if (!service.ok()) {
        spdlog::critical("labeler: {}", service.status().message());
        return service.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      services.push_back(std::move(*service));
    } else if (name == "transcoder") {
      // In one process the transcoder hands its renditions to the streamer beside it, and checks
      // and labels them with the fingerprint service and the labeler beside it, over HTTP.
      for (auto& other : services) {
        const std::string local = "http://127.0.0.1:" + std::to_string(other->server().port());
        if (other->name() == "streamer" && transcoder_settings.streamer_url.empty()) {
          transcoder_settings.streamer_url = local;
        }
        if (other->name() == "fingerprint" && transcoder_settings.fingerprint_url.empty()) {
          transcoder_settings.fingerprint_url = local;
        }
        if (other->name() == "labeler" && transcoder_settings.labeler_url.empty()) {
          transcoder_settings.labeler_url = local;
        }
      }
      auto service = transcoder::TranscoderService::Create(env, transcoder_settings);
      if (!service.ok()) {
        spdlog::critical("transcoder: {}", service.status().message());
        return service.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      services.push_back(std::move(*service));
    } else if (name == "fingerprint") {
      // In one process the fingerprint service fetches {"file_id"} files from the streamer beside it.
      if (fingerprint_settings.streamer_url.empty()) {
        for (auto& other : services) {
          if (other->name() == "streamer") {
            fingerprint_settings.streamer_url = "http://127.0.0.1:" + std::to_string(other->server().port());
          }
        }
      }
      auto service = fingerprint::FingerprintService::Create(env, fingerprint_settings);
      if (!service.ok()) {
        spdlog::critical("fingerprint: {}", service.status().message());
        return service.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
      }
      services.push_back(std::move(*service));
    }
  }

  json::object ports;
  for (auto& service : services) {
    service->server().Start();
    ports[service->name()] = service->server().port();
    spdlog::info("listening service={} port={}", service->name(), service->server().port());
  }
  if (!s.ready_file.empty()) {
    if (Status written = WriteFileAtomically(s.ready_file, json::serialize(ports) + "\n", 0644); !written.ok()) {
      spdlog::critical("ready file: {}", written.message());
      return 1;
    }
  }

  // Graceful shutdown: stop accepting, let requests in flight finish, stop after the deadline.
  asio::signal_set signals(runtime.main_context(), SIGINT, SIGTERM);
  asio::steady_timer drain_timer(runtime.main_context());
  std::chrono::steady_clock::time_point drain_deadline;
  bool closing = false;  // past the drain deadline: the rest were told to close
  std::function<void()> poll_drain = [&] {
    std::size_t open = 0, accepting = 0;
    for (auto& service : services) {
      open += service->server().open_connections();
      accepting += service->server().accept_loops();
    }
    const auto now = std::chrono::steady_clock::now();
    if (open > 0 && now >= drain_deadline && !closing) {
      // Close what is left and let those sessions unwind (a second at most) while the services
      // they point into still exist, rather than destroying them half-way with the contexts.
      spdlog::warn("drain deadline passed with {} connections open; closing them", open);
      for (auto& service : services) service->server().CloseAll();
      closing = true;
      drain_deadline = now + std::chrono::seconds(1);
    } else if ((open == 0 && accepting == 0) || now >= drain_deadline) {
      if (open) spdlog::warn("{} connections did not close in time", open);
      runtime.Stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([&](sys::error_code) { poll_drain(); });
  };
  signals.async_wait([&](sys::error_code ec, int signal) {
    if (ec) return;
    spdlog::info("shutting down signal={}", signal);
    for (auto& service : services) service->server().BeginShutdown();
    drain_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(s.drain_timeout_ms);
    poll_drain();
  });

  runtime.Run();
  services.clear();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto file = plyr::SettingsFile::Load(argc, argv);
  if (!file.ok()) {
    std::cerr << "plyr-core: " << file.status().message() << "\n";
    return 2;
  }

  CLI::App app{"plyr-core: media and labeler services for plyr.fm on the AT Protocol"};
  app.set_version_flag("--version", std::string("plyr-core ") + PLYR_CORE_VERSION);
  app.require_subcommand(1);
  std::string config_path;
  app.add_option("--config", config_path, "TOML config file (also PLYR_CONFIG)");
  std::function<int()> action;

  ServeSettings serve_settings;
  plyr::streamer::StreamerSettings streamer_settings;
  CLI::App* serve = app.add_subcommand("serve", "Run services (all by default), each on its own listener");
  AddServeSettings(*serve, *file, serve_settings);
  plyr::labeler::LabelerSettings labeler_settings;
  plyr::streamer::AddStreamerSettings(*serve, *file, streamer_settings);
  plyr::labeler::AddLabelerSettings(*serve, *file, labeler_settings);
  plyr::transcoder::TranscoderSettings transcoder_settings;
  plyr::transcoder::AddTranscoderSettings(*serve, *file, transcoder_settings);
  plyr::fingerprint::FingerprintSettings fingerprint_settings;
  plyr::fingerprint::AddFingerprintSettings(*serve, *file, fingerprint_settings);
  serve->callback([&] {
    action = [&] {
      if (auto unknown = UnknownService(serve_settings)) {
        app.exit(CLI::ValidationError("services", "'" + *unknown + "' is not a service (" + ServiceNames() + ")"));
        return 2;
      }
      return RunServe(serve_settings, streamer_settings, labeler_settings, transcoder_settings, fingerprint_settings);
    };
  });

  AddMigrateCommand(app, *file, action);

  plyr::streamer::AddTicketCommand(app, *file, action);
  plyr::labeler::AddLabelerCommand(app, *file, action);
  plyr::transcoder::AddTranscodeCommand(app, *file, action);
  plyr::transcoder::AddJobCommand(app, *file, action);
  plyr::fingerprint::AddFingerprintCommand(app, *file, action);

  // Every bad setting is one line and exit status 2: the file's (checked while binding), then the
  // flags' and variables' (CLI11's parse). --help and --version exit 0.
  for (const auto& key : file->UnknownKeys()) {
    std::cerr << "plyr-core: warning: config file " << file->path().string() << ": unknown key '" << key
              << "' (ignored)\n";
  }
  if (!file->errors().empty()) {
    for (const auto& e : file->errors()) std::cerr << "plyr-core: " << e << "\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return action ? action() : 0;
}

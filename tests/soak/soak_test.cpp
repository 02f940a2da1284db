// The soak: every service at once, each in its own plyr-core process (one data folder, as `serve`
// split over processes on one host), each behind a CuttingProxy that the test's clients and the
// other services reach it through. Drivers upload, stream and delete files, emit labels, follow
// subscribeLabels, submit transcoder jobs (which publish to the streamer, match against the
// fingerprint service and label flagged uploads through the labeler), and register, match and
// delete references. Meanwhile a fault thread, at random: kills a service with SIGKILL and
// restarts it; fills the disk under one (a file size limit set on the running process: every write
// past it fails with EFBIG, as on a full disk) and later frees it, without a restart; resets every
// connection through a proxy.
//
// Phases: warm-up (no faults; each service's baseline of memory and sockets is taken at its end),
// faults, calm (load, no faults), then the checks:
//   - no acknowledged label lost, no seq given twice, every subscriber saw every seq once, in order;
//   - every acknowledged job present and finished (done or failed with a reason, never stuck);
//   - every acknowledged reference present (and matched while it was), every acknowledged delete
//     gone;
//   - every acknowledged file holds exactly its bytes, under the id its SHA-256 names, and every
//     streamed range held the right bytes;
//   - no service exited on its own; all answering; sockets and open files back to their baseline
//     (the streamer may keep up to 256 more blobs open, by design), and resident memory within
//     1.5x + 64 MiB of it; each stops cleanly on SIGTERM, which under AddressSanitizer also
//     means no leak.
//
// PLYR_SOAK_SECONDS sets the length (default 60, what the suite runs); scripts/soak.sh runs a
// longer one on the release build. Every wait is bounded; loopback only.
#include <openssl/evp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cbor.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "common/blob_store.h"
#include "tests/support/cutting_proxy.h"
#include "tests/support/media_test_util.h"
#include "tests/support/process.h"
#include "tests/support/test_http_client.h"
#include "tests/support/test_ws_client.h"

namespace plyr::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

int SoakSeconds() {
  const char* text = std::getenv("PLYR_SOAK_SECONDS");
  const int seconds = text ? std::atoi(text) : 0;
  return seconds >= 20 ? seconds : 60;
}

std::string Sha256Id(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 8; ++i) {
    id += kHex[digest[i] >> 4];
    id += kHex[digest[i] & 15];
  }
  return id;
}

// ---------------------------------------------------------------------------------------------
// What /proc says of a process: resident memory and open sockets.

struct Resources {
  long rss_kib = 0;
  int sockets = 0;
  int fds = 0;
};

Resources Measure(pid_t pid) {
  Resources r;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) r.rss_kib = std::atol(line.c_str() + 6);
  }
  std::error_code ec;
  for (const auto& entry : tfs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    ++r.fds;
    std::error_code link_ec;
    if (tfs::read_symlink(entry.path(), link_ec).string().rfind("socket:", 0) == 0) ++r.sockets;
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// subscribeLabels frames: a CBOR header ({op, t}) and a body ({seq, labels: [{uri, val, ...}]}).

struct LabelFrame {
  std::int64_t op = 0;
  std::string type;               // "#labels", "#info"; the error name for op -1
  std::int64_t seq = -1;
  std::vector<std::string> labels;  // "uri val" per label
};

using CborPtr = std::unique_ptr<cbor_item_t, void (*)(cbor_item_t*)>;

CborPtr LoadCbor(const std::string& bytes, std::size_t* offset) {
  cbor_load_result result{};
  cbor_item_t* item = cbor_load(reinterpret_cast<const unsigned char*>(bytes.data()) + *offset,
                                bytes.size() - *offset, &result);
  if (item && result.error.code == CBOR_ERR_NONE) *offset += result.read;
  return CborPtr(item, [](cbor_item_t* p) {
    if (p) cbor_decref(&p);
  });
}

const cbor_item_t* MapGet(const cbor_item_t* map, std::string_view key) {
  if (!map || !cbor_isa_map(map)) return nullptr;
  const cbor_pair* pairs = cbor_map_handle(map);
  for (std::size_t i = 0; i < cbor_map_size(map); ++i) {
    const cbor_item_t* k = pairs[i].key;
    if (cbor_isa_string(k) && cbor_string_is_definite(k) &&
        std::string_view(reinterpret_cast<const char*>(cbor_string_handle(k)), cbor_string_length(k)) == key) {
      return pairs[i].value;
    }
  }
  return nullptr;
}

std::string CborText(const cbor_item_t* item) {
  if (!item || !cbor_isa_string(item) || !cbor_string_is_definite(item)) return "";
  return std::string(reinterpret_cast<const char*>(cbor_string_handle(item)), cbor_string_length(item));
}

std::int64_t CborInt(const cbor_item_t* item, std::int64_t absent) {
  if (!item) return absent;
  if (cbor_isa_uint(item)) return static_cast<std::int64_t>(cbor_get_int(item));
  if (cbor_isa_negint(item)) return -1 - static_cast<std::int64_t>(cbor_get_int(item));
  return absent;
}

bool ParseLabelFrame(const std::string& bytes, LabelFrame* frame) {
  std::size_t offset = 0;
  CborPtr header = LoadCbor(bytes, &offset);
  if (!header || !cbor_isa_map(header.get())) return false;
  CborPtr body = LoadCbor(bytes, &offset);
  if (!body || !cbor_isa_map(body.get()) || offset != bytes.size()) return false;
  frame->op = CborInt(MapGet(header.get(), "op"), 0);
  frame->type = frame->op == -1 ? CborText(MapGet(body.get(), "error")) : CborText(MapGet(header.get(), "t"));
  frame->seq = CborInt(MapGet(body.get(), "seq"), -1);
  const cbor_item_t* labels = MapGet(body.get(), "labels");
  if (labels && cbor_isa_array(labels)) {
    for (std::size_t i = 0; i < cbor_array_size(labels); ++i) {
      const cbor_item_t* label = cbor_array_handle(labels)[i];
      frame->labels.push_back(CborText(MapGet(label, "uri")) + " " + CborText(MapGet(label, "val")));
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The services, each a process behind its proxy.

struct Service {
  std::string name;
  std::vector<std::string> args;
  std::unique_ptr<PlyrProcess> process;
  std::unique_ptr<CuttingProxy> proxy;
  bool disk_full = false;
  int kills = 0;
  Resources baseline;
  bool measured = false;
};

// What the drivers were told was stored, and what went wrong. Guarded by `mutex`.
struct Ledger {
  std::mutex mutex;
  std::map<std::string, std::string> files;           // file_id -> bytes, acknowledged uploads
  std::vector<std::string> tracks;                     // file_ids acknowledged as public tracks, oldest first
  std::vector<std::string> deleted_files;              // tracks deleted with their files, acknowledged
  std::map<std::string, std::string> uncertain_files;  // a delete whose answer was lost: gone, or whole
  std::map<std::int64_t, std::string> labels;          // seq -> "uri val", acknowledged emits
  std::vector<std::string> jobs;                       // acknowledged job ids
  std::map<std::string, int> job_states;               // final state -> count
  std::map<std::string, int> references;               // id -> work, acknowledged registrations
  std::set<std::string> deleted_references;            // acknowledged deletes
  std::set<std::string> uncertain_references;          // deletes whose answer was lost
  std::map<std::string, std::int64_t> counts;          // "<op> <outcome>" -> count
  std::vector<std::string> violations;

  // Counts the answer; after a failed connection (a service down, a cut) waits a moment, as a
  // client would before retrying.
  void Count(const std::string& op, const HttpResult& r) {
    {
      std::lock_guard lock(mutex);
      ++counts[op + " " + (r.transport_ok ? std::to_string(r.status) : std::string("cut"))];
    }
    if (!r.transport_ok) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  void Violation(const std::string& what) {
    std::lock_guard lock(mutex);
    if (violations.size() < 50) violations.push_back(what);
  }
};

class Soak {
 public:
  Soak() : rng_(20261203) {}

  void Run() {
    const int total = SoakSeconds();
    const auto warm = std::chrono::seconds(std::max(5, total / 10));
    const auto faults = std::chrono::seconds(total * 7 / 10);
    const auto calm = std::chrono::seconds(total) - warm - faults;
    MakeInputs();
    StartServices();
    if (::testing::Test::HasFatalFailure()) return;

    std::vector<std::thread> drivers, subscribers;
    drivers.emplace_back([this] { StreamerDriver(); });
    drivers.emplace_back([this] { LabelerDriver(); });
    drivers.emplace_back([this] { TranscoderDriver(); });
    drivers.emplace_back([this] { FingerprintDriver(); });
    subscribers.emplace_back([this] { SubscriberDriver(0); });
    subscribers.emplace_back([this] { SubscriberDriver(1); });

    std::this_thread::sleep_for(warm);
    for (auto& s : services_) {
      s.baseline = Measure(s.process->pid());
      s.measured = true;
    }
    const auto faults_end = Clock::now() + faults;
    while (Clock::now() < faults_end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(1500, 4000)(rng_)));
      CheckAlive();
      InjectFault();
    }
    for (auto& s : services_) {
      if (s.disk_full) SetDiskFull(s, false);
    }
    const auto calm_end = Clock::now() + calm;
    while (Clock::now() < calm_end) {
      std::this_thread::sleep_for(500ms);
      CheckAlive();
    }
    stop_load_ = true;
    for (auto& t : drivers) t.join();
    // Subscribers end once they have seen the newest acknowledged label (within 30 s).
    subscribers_target_ = NewestAcknowledgedSeq();
    drain_deadline_ = Clock::now() + 30s;
    stop_subscribers_ = true;
    for (auto& t : subscribers) t.join();
    WaitForJobs();
    Check();
    Report();
  }

 private:
  // ------------------------------------------------------------------ set-up
  void MakeInputs() {
    for (int k = 0; k < kWorks; ++k) {
      works_.push_back(ReadBytes(MakeMelody(300 + k, 24, "work-" + std::to_string(k) + ".flac")));
      excerpts_.push_back(ReadBytes(MakeMedia("excerpt-" + std::to_string(k) + ".mp3",
                                              {"-ss", "6", "-t", "11", "-i", (InputDir() / ("work-" + std::to_string(k) + ".flac")).string(),
                                               "-c:a", "libmp3lame", "-b:a", "64k"})));
    }
  }

  Service& ByName(const std::string& name) {
    for (auto& s : services_) {
      if (s.name == name) return s;
    }
    throw std::logic_error("no service " + name);
  }
  std::string ProxyUrl(const std::string& name) { return "http://127.0.0.1:" + std::to_string(ByName(name).proxy->port()); }
  unsigned short Port(const std::string& name) { return ByName(name).proxy->port(); }

  void StartServices() {
    // The streamer first: it writes the admin token the others read.
    const std::vector<std::string> common = {"--http-drain-timeout-ms", "1000", "--threads", "1"};
    auto add = [&](const std::string& name, std::vector<std::string> args) {
      Service s;
      s.name = name;
      s.args = {name};
      s.args.insert(s.args.end(), common.begin(), common.end());
      s.args.insert(s.args.end(), args.begin(), args.end());
      s.process = std::make_unique<PlyrProcess>(dir_.path() / "data");
      ASSERT_TRUE(s.process->StartServe(s.args)) << s.process->log();
      s.proxy = std::make_unique<CuttingProxy>(s.process->port(name));
      services_.push_back(std::move(s));
    };
    add("streamer", {});
    add("labeler", {});
    add("fingerprint", {"--fingerprint-workers", "1", "--fingerprint-streamer-url", ProxyUrl("streamer")});
    add("transcoder", {"--transcoder-workers", "1", "--transcoder-max-running-jobs", "1", "--transcoder-renditions",
                       "mp3-64,opus-32", "--transcoder-streamer-url", ProxyUrl("streamer"),
                       "--transcoder-fingerprint-url", ProxyUrl("fingerprint"), "--transcoder-labeler-url",
                       ProxyUrl("labeler"), "--transcoder-label-flagged", "true", "--transcoder-streamer-timeout-ms",
                       "10000"});
    token_ = services_.front().process->admin_token();
  }

  Headers Auth(const std::string& content_type = "application/json") const {
    return {{"Authorization", "Bearer " + token_}, {"Content-Type", content_type}};
  }

  // ------------------------------------------------------------------ faults
  // Kills `s` and starts it again on the same data.
  void Restart(Service& s) {
    s.process->Kill();
    s.disk_full = false;
    if (!s.process->StartServe(s.args)) {
      const bool hung = s.process->Running();
      ledger_.Violation(s.name + " does not start again (" + (hung ? "no ready file in time" : s.process->last_end()) +
                        "): " + Tail(s.process->log_since_start()));
      if (hung) s.process->Kill();
      if (!s.process->StartServe(s.args)) return;
      s.proxy->SetUpstream(s.process->port(s.name));
      return;
    }
    s.proxy->SetUpstream(s.process->port(s.name));
  }

  // The disk fills under a running service (no file of it may grow past kFullDiskFileLimit), or
  // is freed again; the service is not restarted either way.
  void SetDiskFull(Service& s, bool full) {
    if (!s.process->LimitFileSizeNow(full ? kFullDiskFileLimit : 0)) {
      ledger_.Violation("cannot set the file size limit of " + s.name);
    }
    s.disk_full = full;
  }

  void InjectFault() {
    Service& s = services_[std::uniform_int_distribution<std::size_t>(0, services_.size() - 1)(rng_)];
    if (s.disk_full) {
      SetDiskFull(s, false);
      ++fault_counts_["disk freed under " + s.name];
      return;
    }
    const int dice = std::uniform_int_distribution<int>(0, 9)(rng_);
    if (dice < 5) {
      ++s.kills;
      Restart(s);
      ++fault_counts_["kill -9 and restart " + s.name];
    } else if (dice < 8) {
      fault_counts_["connections cut"] += s.proxy->Cut();
      ++fault_counts_["cuts of " + s.name];
    } else {
      SetDiskFull(s, true);
      ++fault_counts_["disk full under " + s.name];
    }
  }

  void CheckAlive() {
    for (auto& s : services_) {
      if (!s.process->Running()) {
        ledger_.Violation(s.name + " exited on its own (" + s.process->last_end() +
                          "): " + Tail(s.process->log_since_start()));
        Restart(s);
      }
    }
  }

  static std::string LastLine(std::string log) {
    while (!log.empty() && log.back() == '\n') log.pop_back();
    return log.substr(log.rfind('\n') == std::string::npos ? 0 : log.rfind('\n') + 1);
  }
  static std::string Tail(const std::string& log) { return log.size() > 2000 ? log.substr(log.size() - 2000) : log; }

  // ------------------------------------------------------------------ drivers
  void StreamerDriver() {
    std::mt19937_64 rng(1);
    int uploads = 0;
    while (!stop_load_) {
      std::vector<std::string> tracks;
      {
        std::lock_guard lock(ledger_.mutex);
        tracks = ledger_.tracks;
      }
      if (tracks.size() >= kMaxTracks && rng() % 10 == 0) {
        // Churn: the oldest track goes, with its file, so uploads go on within bounded memory.
        const std::string id = tracks.front();
        const auto r = Fetch(Port("streamer"), "DELETE", "/v1/tracks/" + id + "?files=1", Auth(), {}, 10s);
        ledger_.Count("delete track", r);
        // 200: gone, unless listed in files_not_removed (a full disk after the track's removal):
        // then, as after a lost answer, gone or not is unknown; no longer streamed, and at the end
        // either gone or whole. A 5xx (a full disk) removed nothing: the track stays and is tried
        // again.
        if (r.status == 200 || !r.transport_ok) {
          std::lock_guard lock(ledger_.mutex);
          if (r.status == 200 && r.body.find("files_not_removed") == std::string::npos) {
            ledger_.deleted_files.push_back(id);
          } else {
            ledger_.uncertain_files[id] = ledger_.files[id];
          }
          ledger_.files.erase(id);
          ledger_.tracks.erase(ledger_.tracks.begin());
        } else if (r.status == 404) {
          ledger_.Violation("acknowledged track " + id + " was gone before its delete");
          std::lock_guard lock(ledger_.mutex);
          ledger_.files.erase(id);
          ledger_.tracks.erase(ledger_.tracks.begin());
        }
        continue;
      }
      if (tracks.size() < 3 || rng() % 10 == 0) {
        std::string bytes = "soak upload " + std::to_string(++uploads) + "\n";
        bytes.resize(4096 + rng() % (512 * 1024));
        for (std::size_t i = 64; i < bytes.size(); i += 8) bytes[i] = static_cast<char>(rng());
        const auto put = Fetch(Port("streamer"), "PUT", "/v1/files", Auth("audio/mpeg"), bytes, 10s);
        ledger_.Count("upload", put);
        if (put.status != 200 && put.status != 201) continue;
        const std::string id = JsonStr(ParseJson(put.body), {"file_id"});
        if (id != Sha256Id(bytes)) ledger_.Violation("upload acknowledged under id " + id + ", not " + Sha256Id(bytes));
        {
          std::lock_guard lock(ledger_.mutex);
          ledger_.files[id] = bytes;
        }
        const auto track = Fetch(Port("streamer"), "PUT", "/v1/tracks/" + id, Auth(),
                                 R"({"owner_did":"did:plc:soak","gate":"none"})", 10s);
        ledger_.Count("track", track);
        if (track.status == 200) {
          std::lock_guard lock(ledger_.mutex);
          ledger_.tracks.push_back(id);
        }
        continue;
      }
      const std::string id = tracks[rng() % tracks.size()];
      std::string bytes;
      {
        std::lock_guard lock(ledger_.mutex);
        bytes = ledger_.files[id];
      }
      const std::size_t first = rng() % bytes.size();
      const std::size_t last = std::min(bytes.size() - 1, first + rng() % (128 * 1024));
      const auto get = Fetch(Port("streamer"), "GET", "/audio/" + id,
                             {{"Range", "bytes=" + std::to_string(first) + "-" + std::to_string(last)}}, {}, 10s);
      ledger_.Count("stream", get);
      if (get.status == 206 && get.body != bytes.substr(first, last - first + 1)) {
        ledger_.Violation("wrong bytes for " + id + " range " + std::to_string(first) + "-" + std::to_string(last));
      } else if (get.status == 200 && get.body != bytes) {
        ledger_.Violation("wrong bytes for " + id);
      } else if (get.status == 404) {
        ledger_.Violation("acknowledged track " + id + " answered 404");
      }
    }
  }

  void LabelerDriver() {
    std::mt19937_64 rng(2);
    int next = 0;
    while (!stop_load_) {
      boost::json::array labels;
      const int count = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < count; ++i) {
        labels.push_back(boost::json::object{{"uri", "at://did:plc:soak/fm.plyr.track/" + std::to_string(++next)},
                                             {"val", rng() % 2 ? "spam" : "copyright-violation"}});
      }
      const auto r = Fetch(Port("labeler"), "POST", "/v1/labels", Auth(),
                           boost::json::serialize(boost::json::object{{"labels", labels}}), 10s);
      ledger_.Count("emit", r);
      if (r.status == 200) {
        const auto answer = ParseJson(r.body);
        const auto* stored = JsonAt(answer, {"labels"});
        if (!stored || !stored->is_array() || stored->as_array().size() != labels.size()) {
          ledger_.Violation("emit answered 200 without its labels: " + r.body.substr(0, 200));
          continue;
        }
        std::lock_guard lock(ledger_.mutex);
        for (const auto& entry : stored->as_array()) {
          const std::int64_t seq = entry.as_object().at("seq").to_number<std::int64_t>();
          const std::string label = JsonStr(entry, {"label", "uri"}) + " " + JsonStr(entry, {"label", "val"});
          if (!ledger_.labels.emplace(seq, label).second) {
            ledger_.violations.push_back("seq " + std::to_string(seq) + " given twice");
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 30));
    }
  }

  // Follows subscribeLabels from cursor 0, reconnecting from the last seq seen; every seq must
  // come once and in order, across reconnections. Ends once it has seen the newest acknowledged
  // seq after the load stopped (bounded).
  void SubscriberDriver(int index) {
    std::int64_t last = 0;
    std::map<std::int64_t, std::string> seen;
    const auto done = [&] {
      return stop_subscribers_ && (last >= subscribers_target_ || Clock::now() > drain_deadline_.load());
    };
    while (!done()) {
      std::string error;
      auto ws = WsClient::Connect(Port("labeler"),
                                  "/xrpc/com.atproto.label.subscribeLabels?cursor=" + std::to_string(last), &error);
      if (!ws) {
        std::this_thread::sleep_for(200ms);
        continue;
      }
      ++subscriber_connects_;
      WsMessage message;
      while (!done()) {
        const auto status = ws->Read(message, 500ms);
        if (status == WsClient::Status::kTimeout) continue;
        if (status == WsClient::Status::kClosed) break;
        if (message.opcode == 9) {
          ws->Send(10, message.payload);
          continue;
        }
        if (message.opcode != 2) continue;
        LabelFrame frame;
        if (!ParseLabelFrame(message.payload, &frame)) {
          ledger_.Violation("subscriber " + std::to_string(index) + ": a frame that is not CBOR");
          continue;
        }
        if (frame.op == -1) {
          ledger_.Violation("subscriber " + std::to_string(index) + " got error " + frame.type + " at cursor " +
                            std::to_string(last));
          break;
        }
        if (frame.type != "#labels") continue;
        if (frame.seq <= last) {
          ledger_.Violation("subscriber " + std::to_string(index) + " got seq " + std::to_string(frame.seq) +
                            " after " + std::to_string(last));
        }
        last = std::max(last, frame.seq);
        seen[frame.seq] = frame.labels.empty() ? "" : frame.labels.front();
        if (frame.labels.size() != 1) {
          ledger_.Violation("a #labels frame with " + std::to_string(frame.labels.size()) + " labels");
        }
      }
    }
    std::lock_guard lock(ledger_.mutex);
    subscriber_seen_[index] = std::move(seen);
  }

  void TranscoderDriver() {
    std::mt19937_64 rng(3);
    std::vector<std::string> in_flight;
    int submitted = 0;
    while (!stop_load_) {
      if (in_flight.size() < 2) {
        // Half the uploads are a registered work (flagged, labelled), half are not.
        const int work = static_cast<int>(rng() % kWorks);
        const std::string uri = "at://did:plc:soak/fm.plyr.track/job" + std::to_string(++submitted);
        const auto r = Fetch(Port("transcoder"), "POST",
                             "/v1/jobs?owner_did=did%3Aplc%3Asoak&track_uri=" + UrlEncode(uri), Auth("audio/flac"),
                             works_[work], 10s);
        ledger_.Count("job", r);
        if (r.status == 202) {
          const std::string id = JsonStr(ParseJson(r.body), {"id"});
          in_flight.push_back(id);
          std::lock_guard lock(ledger_.mutex);
          ledger_.jobs.push_back(id);
        }
      }
      for (auto it = in_flight.begin(); it != in_flight.end();) {
        const auto r = Fetch(Port("transcoder"), "GET", "/v1/jobs/" + *it, Auth(), {}, 5s);
        if (r.status == 404) ledger_.Violation("acknowledged job " + *it + " answered 404");
        const std::string state = r.status == 200 ? JsonStr(ParseJson(r.body), {"state"}) : "";
        it = (state == "done" || state == "failed" || state == "cancelled") ? in_flight.erase(it) : it + 1;
      }
      std::this_thread::sleep_for(300ms);
    }
  }

  void FingerprintDriver() {
    std::mt19937_64 rng(4);
    std::map<int, std::string> registered;  // work -> reference id, acknowledged and not deleted
    std::set<int> retired;                  // works whose reference was deleted
    while (!stop_load_) {
      const int work = static_cast<int>(rng() % kWorks);
      const int dice = static_cast<int>(rng() % 10);
      if (!registered.count(work) && !retired.count(work)) {
        const auto r = Fetch(Port("fingerprint"), "POST",
                             "/v1/references?title=soak-" + std::to_string(work) + "&artist=soak", Auth("audio/flac"),
                             works_[work], 20s);
        ledger_.Count("reference", r);
        // 409: an earlier registration committed although its answer was lost.
        const std::string id = r.status == 201   ? JsonStr(ParseJson(r.body), {"id"})
                               : r.status == 409 ? JsonStr(ParseJson(r.body), {"reference_id"})
                                                 : "";
        if (!id.empty() && id != "<missing>") {
          registered[work] = id;
          std::lock_guard lock(ledger_.mutex);
          ledger_.references[id] = work;
        }
      } else if (registered.count(work) && dice == 0 && retired.size() < 2) {
        const std::string id = registered[work];
        const auto r = Fetch(Port("fingerprint"), "DELETE", "/v1/references/" + id, Auth(), {}, 10s);
        ledger_.Count("delete", r);
        if (r.status == 200 || r.status == 204 || !r.transport_ok) {
          // A lost answer leaves it gone or not: no longer matched for, and either is right at the end.
          registered.erase(work);
          retired.insert(work);
          std::lock_guard lock(ledger_.mutex);
          (r.transport_ok ? ledger_.deleted_references : ledger_.uncertain_references).insert(id);
        }
      } else if (registered.count(work)) {
        const auto r = Fetch(Port("fingerprint"), "POST", "/v1/match", Auth("audio/mpeg"), excerpts_[work], 20s);
        ledger_.Count("match", r);
        if (r.status == 200 && r.body.find(registered[work]) == std::string::npos) {
          ledger_.Violation("acknowledged reference " + registered[work] + " not found by a match: " +
                            r.body.substr(0, 300));
        }
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  // ------------------------------------------------------------------ the end
  std::int64_t NewestAcknowledgedSeq() {
    std::lock_guard lock(ledger_.mutex);
    return ledger_.labels.empty() ? 0 : ledger_.labels.rbegin()->first;
  }

  void WaitForJobs() {
    std::vector<std::string> jobs;
    {
      std::lock_guard lock(ledger_.mutex);
      jobs = ledger_.jobs;
    }
    const auto deadline = Clock::now() + 120s;
    for (const auto& id : jobs) {
      std::string state;
      while (Clock::now() < deadline) {
        const auto r = Fetch(Port("transcoder"), "GET", "/v1/jobs/" + id, Auth(), {}, 5s);
        if (r.status == 404) {
          ledger_.Violation("acknowledged job " + id + " lost");
          break;
        }
        state = r.status == 200 ? JsonStr(ParseJson(r.body), {"state"}) : "";
        if (state == "failed") state += " (" + JsonStr(ParseJson(r.body), {"error", "error"}) + ")";
        if (state == "done" || state.rfind("failed", 0) == 0 || state == "cancelled") break;
        std::this_thread::sleep_for(200ms);
      }
      std::lock_guard lock(ledger_.mutex);
      ++ledger_.job_states[state.empty() ? "unfinished" : state];
      if (state != "done" && state.rfind("failed", 0) != 0 && state != "cancelled") {
        ledger_.violations.push_back("job " + id + " never finished (" + state + ")");
      }
    }
  }

  void Check() {
    std::lock_guard lock(ledger_.mutex);
    // Labels: every acknowledged seq, with its label, seen by every subscriber (each started from
    // cursor 0 and resumed from its last seq after every cut or restart).
    for (const auto& [index, seen] : subscriber_seen_) {
      for (const auto& [seq, label] : ledger_.labels) {
        auto it = seen.find(seq);
        if (it == seen.end()) {
          ledger_.violations.push_back("subscriber " + std::to_string(index) + " never saw seq " + std::to_string(seq));
          break;
        }
        if (it->second != label) {
          ledger_.violations.push_back("seq " + std::to_string(seq) + " is " + it->second + ", acknowledged as " + label);
          break;
        }
      }
    }
    // Files: each acknowledged upload holds its bytes, under its id.
    for (const auto& [id, bytes] : ledger_.files) {
      const auto r = Fetch(Port("streamer"), "GET", "/v1/files/" + id, Auth(), {}, 10s);
      if (r.status != 200 || r.body != bytes) {
        ledger_.violations.push_back("file " + id + ": " + std::to_string(r.status) + ", " +
                                     std::to_string(r.body.size()) + " bytes of " + std::to_string(bytes.size()));
      }
    }
    for (const auto& [id, bytes] : ledger_.uncertain_files) {
      const auto r = Fetch(Port("streamer"), "GET", "/v1/files/" + id, Auth(), {}, 10s);
      if (r.status != 404 && !(r.status == 200 && r.body == bytes)) {
        ledger_.violations.push_back("file " + id + " (delete unanswered) is neither gone nor whole: " +
                                     std::to_string(r.status));
      }
    }
    for (const auto& id : ledger_.deleted_files) {
      const auto r = Fetch(Port("streamer"), "GET", "/v1/files/" + id, Auth(), {}, 10s);
      if (r.status != 404) ledger_.violations.push_back("deleted file " + id + " answered " + std::to_string(r.status));
    }
    // References: acknowledged ones present, acknowledged deletes gone.
    for (const auto& [id, work] : ledger_.references) {
      if (ledger_.uncertain_references.count(id)) continue;
      const auto r = Fetch(Port("fingerprint"), "GET", "/v1/references/" + id, Auth(), {}, 10s);
      const int want = ledger_.deleted_references.count(id) ? 404 : 200;
      if (r.status != want) {
        ledger_.violations.push_back("reference " + id + " answered " + std::to_string(r.status) + ", not " +
                                     std::to_string(want));
      }
    }
    // Every service answers, and holds no more than its baseline.
    std::this_thread::sleep_for(1s);
    for (auto& s : services_) {
      const auto health = Fetch(s.proxy->port(), "GET", "/health", {}, {}, 5s);
      if (health.status != 200) ledger_.violations.push_back(s.name + " does not answer /health");
      const Resources now = Measure(s.process->pid());
      final_[s.name] = now;
      if (now.sockets > s.baseline.sockets + 2) {
        ledger_.violations.push_back(s.name + " holds " + std::to_string(now.sockets) + " sockets, baseline " +
                                     std::to_string(s.baseline.sockets));
      }
      // Open files too: none leaked. The streamer keeps up to BlobStore::kOpenCacheEntries blobs
      // open by design, so its bound allows that many more than its baseline.
      const int cached_blobs = s.name == "streamer" ? static_cast<int>(BlobStore::kOpenCacheEntries) : 0;
      if (now.fds > s.baseline.fds + cached_blobs + 4) {
        ledger_.violations.push_back(s.name + " holds " + std::to_string(now.fds) + " open files, baseline " +
                                     std::to_string(s.baseline.fds));
      }
      // Under AddressSanitizer resident memory measures its quarantine and shadow, not us; there
      // the leak check at the clean exit below stands in.
      if (!kSanitized && now.rss_kib > s.baseline.rss_kib * 3 / 2 + 64 * 1024) {
        ledger_.violations.push_back(s.name + " uses " + std::to_string(now.rss_kib) + " KiB, baseline " +
                                     std::to_string(s.baseline.rss_kib));
      }
    }
    // Each stops cleanly on SIGTERM (under AddressSanitizer, also with no leak).
    for (auto& s : services_) {
      const int status = s.process->Stop();
      final_exit_[s.name] = status;
      if (status != 0) {
        ledger_.violations.push_back(s.name + " exited with " + std::to_string(status) + " on SIGTERM: " +
                                     Tail(s.process->log()));
      }
    }
  }

  void Report() {
    std::ostringstream out;
    out << "soak: " << SoakSeconds() << " s\n";
    for (const auto& [what, n] : fault_counts_) out << "  fault  " << what << ": " << n << "\n";
    for (const auto& [what, n] : ledger_.counts) out << "  answer " << what << ": " << n << "\n";
    out << "  acknowledged: " << ledger_.files.size() << " files (" << ledger_.deleted_files.size() << " more deleted), " << ledger_.labels.size() << " labels, "
        << ledger_.jobs.size() << " jobs, " << ledger_.references.size() << " references ("
        << ledger_.deleted_references.size() << " deleted)\n";
    for (const auto& [state, n] : ledger_.job_states) out << "  jobs " << state << ": " << n << "\n";
    out << "  subscriber connections: " << subscriber_connects_ << "\n";
    for (const auto& note : notes_) out << "  note: " << note << "\n";
    for (auto& s : services_) {
      const Resources& now = final_[s.name];
      out << "  " << s.name << ": killed " << s.kills << "x; rss " << s.baseline.rss_kib / 1024 << " -> "
          << now.rss_kib / 1024 << " MiB; sockets " << s.baseline.sockets << " -> " << now.sockets << "; fds "
          << s.baseline.fds << " -> " << now.fds << "; exit on SIGTERM " << final_exit_[s.name] << "\n";
    }
    std::cout << out.str();
    for (const auto& v : ledger_.violations) ADD_FAILURE() << v;
  }

  static constexpr int kWorks = 8;
  static constexpr std::size_t kMaxTracks = 200;
  // No file may grow past this while the disk is "full": larger uploads, and the databases'
  // appends once they are this big, fail with EFBIG as on a full disk.
  static constexpr std::uint64_t kFullDiskFileLimit = 256 * 1024;
  TempDir dir_;
  std::mt19937 rng_;
  std::vector<Service> services_;
  std::string token_;
  std::vector<std::string> works_;
  std::vector<std::string> excerpts_;
  Ledger ledger_;
  std::map<std::string, int> fault_counts_;  // fault thread only
  std::vector<std::string> notes_;           // fault thread only
  std::atomic<bool> stop_load_{false};
  std::atomic<bool> stop_subscribers_{false};
  std::atomic<std::int64_t> subscribers_target_{0};
  std::atomic<Clock::time_point> drain_deadline_{Clock::time_point::max()};
  std::atomic<int> subscriber_connects_{0};
  std::map<int, std::map<std::int64_t, std::string>> subscriber_seen_;  // guarded by ledger_.mutex
  std::map<std::string, Resources> final_;
  std::map<std::string, int> final_exit_;
};

TEST(Soak, EveryServiceAtOnceUnderKillsFullDisksAndCutConnections) {
  Soak soak;
  soak.Run();
}

}  // namespace
}  // namespace plyr::testing

// fingerprint_scale_bench: the reference index at 10 000 and 100 000 references.
//
//   fingerprint_scale_bench --manifest DIR/manifest.json --queries DIR/seedN/queries.tsv
//                           [--sizes 10000,100000] [--bin build/release/plyr-core] [--db-dir D]
//
// The index holds the real references of the evaluation plus generated fill up to each size. A
// fill reference is a real one rotated in time and XOR-ed with a random 16-bit-weight mask: its
// items keep the structure of music (an XOR with a constant only relabels keys) while sitting at
// a bit error rate of 0.5 from everything real, like an unrelated work. For each size it reports
// the index memory (the index's own count and the process's resident growth), the latency of the
// 10-s queries (p50, p99; matching only: the fingerprints are computed beforehand), their recall
// and false positives, and, with --bin, the start-up of `plyr-core serve fingerprint` on a
// database holding that many references (load time, resident memory).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "bench/fingerprint/eval_set.h"
#include "common/random.h"
#include "fingerprint/audio_fingerprint.h"
#include "fingerprint/matcher.h"
#include "fingerprint/reference_index.h"
#include "fingerprint/reference_store.h"

namespace fs = std::filesystem;
using namespace plyr;
using namespace plyr::fingerprint;
using plyr::bench::Percentile;
using plyr::bench::SplitOn;

namespace {

double ResidentMb(pid_t pid = 0) {
  std::ifstream status(pid ? "/proc/" + std::to_string(pid) + "/status" : "/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  }
  return 0;
}

media::FingerprintItems Fill(const media::FingerprintItems& base, std::mt19937_64& rng) {
  std::uint32_t mask = 0;
  while (std::popcount(mask) < 16) mask |= 1u << (rng() % 32);
  const std::size_t shift = rng() % base.size();
  media::FingerprintItems out(base.size());
  for (std::size_t j = 0; j < base.size(); ++j) out[j] = base[(j + shift) % base.size()] ^ mask;
  return out;
}

struct Query {
  std::string truth, kind, distortion;
  std::vector<media::FingerprintItems> prints;
};

// Starts plyr-core on `data`, waits for its ready file; returns seconds to ready and resident MB.
std::pair<double, double> MeasureStartup(const std::string& bin, const fs::path& data, int key_bits) {
  const fs::path ready = data / "ready.json";
  fs::remove(ready);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string log = (data / "serve.log").string();
    std::freopen(log.c_str(), "w", stderr);
    std::freopen(log.c_str(), "a", stdout);
    const std::string bits = std::to_string(key_bits);
    execl(bin.c_str(), bin.c_str(), "serve", "fingerprint", "--data", data.c_str(), "--fingerprint-listen",
          "127.0.0.1:0", "--ready-file", ready.c_str(), "--fingerprint-key-bits", bits.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  double seconds = -1, rss = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::minutes(5)) {
    if (fs::exists(ready)) {
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rss = ResidentMb(pid);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return {seconds, rss};
}

}  // namespace

int main(int argc, char** argv) {
  std::string manifest_path, queries_path, bin, db_dir = "bench/out/fingerprint/scale";
  std::vector<std::size_t> sizes = {10000, 100000};
  std::vector<double> speeds = {1.0, 0.98, 1.02};
  int key_bits = 22;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--manifest") manifest_path = argv[i + 1];
    else if (a == "--queries") queries_path = argv[i + 1];
    else if (a == "--bin") bin = argv[i + 1];
    else if (a == "--db-dir") db_dir = argv[i + 1];
    else if (a == "--key-bits") key_bits = std::stoi(argv[i + 1]);
    else if (a == "--sizes") {
      sizes.clear();
      for (const auto& s : SplitOn(argv[i + 1], ',')) sizes.push_back(std::stoul(s));
    }
  }
  if (manifest_path.empty() || queries_path.empty()) {
    std::cerr << "usage: fingerprint_scale_bench --manifest M --queries Q [--sizes 10000,100000] [--bin plyr-core]\n";
    return 2;
  }
  const bench::EvalSet eval = bench::LoadEvalSet(manifest_path);
  std::vector<std::string> ref_ids;
  std::vector<media::FingerprintItems> real;
  std::cerr << "fingerprinting the references\n";
  for (const auto& r : eval.references) {
    auto fp = FingerprintFile(r.path, {});
    if (!fp.ok() || fp->by_speed[0].size() < 100) continue;
    ref_ids.push_back(r.id);
    real.push_back(std::move(fp->by_speed[0]));
  }
  auto same_work = [&](const std::string& a, const std::string& b) { return eval.SameWork(a, b); };

  std::vector<Query> queries;
  {
    AudioFingerprintOptions options;
    options.speeds = speeds;
    std::cerr << "fingerprinting the 10-s queries\n";
    for (const auto& q : bench::LoadEvalQueries(queries_path)) {
      if (q.length != 10) continue;
      if (q.distortion != "clean" && q.distortion != "mp3_64k" && q.distortion != "snr10") continue;
      auto fp = FingerprintFile(q.path, options);
      if (!fp.ok()) continue;
      queries.push_back({q.truth, q.kind, q.distortion, std::move(fp->by_speed)});
    }
  }
  double real_hours = 0;
  for (const auto& r : real) real_hours += r.size() * media::kItemSeconds / 3600;
  std::printf("real references: %zu (%.2f h); 10-s queries: %zu (clean, mp3_64k, snr10; positives and negatives)\n",
              real.size(), real_hours, queries.size());
  std::printf("\n| references | hours | index MB (own count) | RSS growth MB | MB per hour | p50 ms | p99 ms | recall | FP | "
              "start-up s | service RSS MB |\n|---|---|---|---|---|---|---|---|---|---|---|\n");

  for (std::size_t size : sizes) {
    std::mt19937_64 rng(size);
    const double rss_before = ResidentMb();
    ReferenceIndexOptions index_options;
    index_options.key_bits = key_bits;
    auto index = std::make_unique<ReferenceIndex>(index_options);
    std::vector<ReferenceIndex::Entry> batch;
    std::size_t items = 0;
    for (std::size_t i = 0; i < size; ++i) {
      batch.push_back({i, i < real.size() ? real[i] : Fill(real[i % real.size()], rng)});
      items += batch.back().items.size();
      if (batch.size() == 8192) {
        index->Load(batch);
        batch.clear();
      }
    }
    index->Load(batch);
    batch.clear();
    index->Compact();
    const double rss_growth = ResidentMb() - rss_before;
    const auto stats = index->stats();
    const double hours = static_cast<double>(items) * media::kItemSeconds / 3600;

    MatchOptions options;
    std::vector<double> latency;
    int positives = 0, hits = 0, fp = 0;
    for (int round = 0; round < 3; ++round) {
      for (const auto& q : queries) {
        std::vector<QueryVariant> variants;
        for (std::size_t v = 0; v < q.prints.size(); ++v) variants.push_back({speeds[v], q.prints[v]});
        const auto t0 = std::chrono::steady_clock::now();
        auto result = FindMatches(*index, variants, options);
        latency.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        if (round > 0) continue;
        bool hit = false, wrong = false;
        for (const auto& m : result.matches) {
          const bool right = m.ref < real.size() && q.kind == "positive" && same_work(ref_ids[m.ref], q.truth);
          (right ? hit : wrong) = true;
        }
        if (q.kind == "positive") {
          ++positives;
          hits += hit;
        }
        fp += wrong;
      }
    }
    double startup = -1, service_rss = 0;
    if (!bin.empty()) {
      const fs::path data = fs::path(db_dir) / std::to_string(size);
      const fs::path db_path = data / "fingerprint" / "references.db";
      std::error_code ec;
      if (!fs::exists(db_path)) {
        fs::create_directories(data / "fingerprint", ec);
        auto db = SqliteDb::Open(db_path);
        auto store = db.ok() ? OpenSqliteReferenceStore(std::move(*db))
                             : StatusOr<std::unique_ptr<ReferenceStore>>(db.status());
        if (!store.ok()) {
          std::cerr << "cannot create " << db_path << ": " << store.status().message() << "\n";
          return 1;
        }
        std::mt19937_64 fill_rng(size);  // the same fill as the index above
        std::vector<ReferenceRecord> records;
        for (std::size_t i = 0; i < size; ++i) {
          ReferenceRecord r;
          r.id = RandomHex(8);
          r.title = i < real.size() ? ref_ids[i] : "fill " + std::to_string(i);
          r.items = i < real.size() ? real[i] : Fill(real[i % real.size()], fill_rng);
          r.duration_s = r.items.size() * media::kItemSeconds + 2.6;
          records.push_back(std::move(r));
          if (records.size() == 4096 || i + 1 == size) {
            if (Status s = (*store)->InsertMany(records); !s.ok()) {
              std::cerr << s.message() << "\n";
              return 1;
            }
            records.clear();
          }
        }
      }
      std::tie(startup, service_rss) = MeasureStartup(bin, data, key_bits);
    }
    std::printf("| %zu | %.0f | %.1f | %.1f | %.3f | %.2f | %.2f | %d/%d | %d/%zu | %.2f | %.0f |\n", size, hours,
                stats.memory_bytes / 1e6, rss_growth, stats.memory_bytes / 1e6 / hours, Percentile(latency, 0.5),
                Percentile(latency, 0.99), hits, positives, fp, queries.size() - positives, startup, service_rss);
    std::fflush(stdout);
  }
  return 0;
}

// fingerprint_tune: the matcher in-process over an evaluation made by make_queries.py, for
// choosing its parameters quickly. The benchmark of record (bench/fingerprint/run.sh) goes through
// the service's HTTP path instead.
//
//   fingerprint_tune --manifest DIR/manifest.json --queries DIR/seedN/queries.tsv
//                    [--speeds 1,0.98,1.02] [--set "max_ber=0.2 probe_bits=20"]...
//
// Fingerprints are cached next to the queries (fingerprints.<speeds>.bin). For every --set (a
// space-separated list of MatchOptions fields) it prints, per length and distortion: recall
// (right work accepted), wrong works accepted, false positives on negatives, offset accuracy,
// latency, and the lowest BER a negative reached (the impostor floor a threshold must stay under).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "bench/fingerprint/eval_set.h"
#include "fingerprint/audio_fingerprint.h"
#include "fingerprint/matcher.h"
#include "fingerprint/reference_index.h"

namespace fs = std::filesystem;
using namespace plyr;
using namespace plyr::fingerprint;
using plyr::bench::EvalQuery;
using plyr::bench::Percentile;
using plyr::bench::SplitOn;

namespace {

struct Print {
  double duration = 0;
  std::vector<media::FingerprintItems> by_speed;
};

// Fingerprints every path (two threads), with a cache file.
std::map<std::string, Print> FingerprintAll(const std::vector<std::string>& paths, const std::vector<double>& speeds,
                                            const fs::path& cache_file) {
  std::map<std::string, Print> prints;
  if (std::ifstream in(cache_file, std::ios::binary); in) {
    std::uint32_t count = 0;
    in.read(reinterpret_cast<char*>(&count), 4);
    for (std::uint32_t i = 0; i < count && in; ++i) {
      std::uint32_t len = 0;
      in.read(reinterpret_cast<char*>(&len), 4);
      std::string path(len, '\0');
      in.read(path.data(), len);
      Print p;
      in.read(reinterpret_cast<char*>(&p.duration), 8);
      std::uint32_t variants = 0;
      in.read(reinterpret_cast<char*>(&variants), 4);
      for (std::uint32_t v = 0; v < variants; ++v) {
        std::uint32_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 4);
        media::FingerprintItems items(n);
        in.read(reinterpret_cast<char*>(items.data()), n * 4);
        p.by_speed.push_back(std::move(items));
      }
      prints[path] = std::move(p);
    }
  }
  std::vector<std::string> todo;
  for (const auto& path : paths) {
    if (!prints.count(path)) todo.push_back(path);
  }
  if (todo.empty()) return prints;
  std::cerr << "fingerprinting " << todo.size() << " files\n";
  std::mutex mu;
  std::size_t next = 0;
  auto work = [&] {
    AudioFingerprintOptions options;
    options.speeds = speeds;
    while (true) {
      std::string path;
      {
        std::lock_guard lock(mu);
        if (next >= todo.size()) return;
        path = todo[next++];
        if (next % 200 == 0) std::cerr << "  " << next << "/" << todo.size() << "\n";
      }
      auto fp = FingerprintFile(path, options);
      Print p;
      if (fp.ok()) {
        p.duration = fp->duration_s;
        p.by_speed = std::move(fp->by_speed);
      } else {
        std::cerr << path << ": " << fp.status().message() << "\n";
      }
      std::lock_guard lock(mu);
      prints[path] = std::move(p);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  std::ofstream out(cache_file, std::ios::binary | std::ios::trunc);
  const auto count = static_cast<std::uint32_t>(prints.size());
  out.write(reinterpret_cast<const char*>(&count), 4);
  for (const auto& [path, p] : prints) {
    const auto len = static_cast<std::uint32_t>(path.size());
    out.write(reinterpret_cast<const char*>(&len), 4);
    out.write(path.data(), len);
    out.write(reinterpret_cast<const char*>(&p.duration), 8);
    const auto variants = static_cast<std::uint32_t>(p.by_speed.size());
    out.write(reinterpret_cast<const char*>(&variants), 4);
    for (const auto& items : p.by_speed) {
      const auto n = static_cast<std::uint32_t>(items.size());
      out.write(reinterpret_cast<const char*>(&n), 4);
      out.write(reinterpret_cast<const char*>(items.data()), n * 4);
    }
  }
  return prints;
}

bool Apply(MatchOptions& o, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos) return false;
  const std::string k = assignment.substr(0, eq);
  const double v = std::stod(assignment.substr(eq + 1));
  if (k == "window_items") o.window_items = static_cast<int>(v);
  else if (k == "window_hop") o.window_hop = static_cast<int>(v);
  else if (k == "max_single_window") o.max_single_window = static_cast<int>(v);
  else if (k == "probe_bits") o.probe_bits = static_cast<int>(v);
  else if (k == "max_postings") o.max_postings = static_cast<std::size_t>(v);
  else if (k == "vote_bin_items") o.vote_bin_items = static_cast<int>(v);
  else if (k == "min_votes") o.min_votes = static_cast<int>(v);
  else if (k == "max_candidates") o.max_candidates = static_cast<int>(v);
  else if (k == "block_items") o.block_items = static_cast<int>(v);
  else if (k == "max_ber") o.max_ber = v;
  else if (k == "min_contrast") o.min_contrast = v;
  else if (k == "min_activity") o.min_activity = v;
  else if (k == "strong_ber") o.strong_ber = v;
  else if (k == "min_distinct") o.min_distinct = v;
  else if (k == "max_silence") o.max_silence = v;
  else return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string manifest_path, queries_path;
  std::vector<double> speeds = {1.0};
  std::vector<std::string> sets;
  int key_bits = 22;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--manifest") manifest_path = argv[i + 1];
    else if (a == "--queries") queries_path = argv[i + 1];
    else if (a == "--set") sets.push_back(argv[i + 1]);
    else if (a == "--key-bits") key_bits = std::stoi(argv[i + 1]);
    else if (a == "--speeds") {
      speeds.clear();
      for (const auto& s : SplitOn(argv[i + 1], ',')) speeds.push_back(std::stod(s));
    }
  }
  if (manifest_path.empty() || queries_path.empty()) {
    std::cerr << "usage: fingerprint_tune --manifest M --queries Q [--speeds 1,0.98,1.02] [--set \"k=v ...\"]...\n";
    return 2;
  }
  if (sets.empty()) sets.push_back("");

  const bench::EvalSet eval = bench::LoadEvalSet(manifest_path);
  std::vector<std::pair<std::string, std::string>> refs;  // id, path
  for (const auto& r : eval.references) refs.emplace_back(r.id, r.path);
  auto same_work = [&](const std::string& a, const std::string& b) { return eval.SameWork(a, b); };
  const std::vector<std::string>& negative_paths = eval.negative_paths;
  const std::vector<EvalQuery> queries = bench::LoadEvalQueries(queries_path);

  std::string speed_tag;
  for (double s : speeds) speed_tag += (speed_tag.empty() ? "" : "_") + std::to_string(static_cast<int>(std::lround(s * 1000)));
  std::vector<std::string> ref_paths, query_paths;
  for (const auto& [id, path] : refs) ref_paths.push_back(path);
  for (const auto& q : queries) query_paths.push_back(q.path);
  const fs::path dir = fs::path(queries_path).parent_path();
  auto ref_prints = FingerprintAll(ref_paths, {1.0}, fs::path(manifest_path).parent_path() / "references.bin");
  auto query_prints = FingerprintAll(query_paths, speeds, dir / ("fingerprints." + speed_tag + ".bin"));
  // Whole never-indexed tracks: an upload-sized trial of false positives (many windows each).
  auto negative_prints = FingerprintAll(negative_paths, speeds,
                                        fs::path(manifest_path).parent_path() / ("negatives." + speed_tag + ".bin"));

  ReferenceIndexOptions index_options;
  index_options.key_bits = key_bits;
  ReferenceIndex index(index_options);
  std::vector<ReferenceIndex::Entry> entries;
  double hours = 0;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const auto& p = ref_prints[refs[i].second];
    if (p.by_speed.empty()) continue;
    entries.push_back({i, p.by_speed[0]});
    hours += p.duration / 3600;
  }
  index.AddMany(entries);
  index.Compact();
  auto stats = index.stats();
  std::printf("index: %zu references, %.2f h, %zu items, %.1f MB\n", stats.references, hours, stats.items,
              stats.memory_bytes / 1e6);

  for (const auto& set : sets) {
    MatchOptions options;
    options.keep_rejected = true;
    for (const auto& a : SplitOn(set, ' ')) {
      if (!a.empty() && !Apply(options, a)) {
        std::cerr << "unknown setting " << a << "\n";
        return 2;
      }
    }
    std::printf("\n== %s (max_ber %.3f)\n", set.empty() ? "defaults" : set.c_str(), options.max_ber);
    struct Row {
      int n = 0, negatives = 0, hit = 0, wrong = 0, fp = 0, offset_ok = 0, guarded = 0;
      std::vector<double> latency_ms, true_ber, true_contrast, true_activity;
      double min_neg_ber = 1;
      std::string min_neg_what;
    };
    std::map<std::pair<int, std::string>, Row> rows;
    for (const auto& q : queries) {
      const auto& p = query_prints[q.path];
      Row& row = rows[{q.length, q.distortion}];
      ++(q.kind == "positive" ? row.n : row.negatives);
      if (p.by_speed.empty()) continue;
      std::vector<QueryVariant> variants;
      for (std::size_t v = 0; v < speeds.size() && v < p.by_speed.size(); ++v) variants.push_back({speeds[v], p.by_speed[v]});
      const auto t0 = std::chrono::steady_clock::now();
      auto result = FindMatches(index, variants, options);
      row.latency_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (result.guarded_windows == result.window_count) ++row.guarded;
      bool hit = false, wrong = false, offset_ok = false;
      double best_true = 1, best_contrast = 0, best_activity = 0;
      for (const auto& w : result.windows) {
        const std::string& id = refs[w.ref].first;
        const bool right = q.kind == "positive" && same_work(id, q.truth);
        if (right && w.ber < best_true) {
          best_true = w.ber;
          best_contrast = w.background_ber - w.ber;
          best_activity = std::min(w.query_activity, w.ref_activity);
        }
        if (q.kind == "negative" || !right) {
          if (w.ber < row.min_neg_ber && q.kind == "negative") {
            row.min_neg_ber = w.ber;
            row.min_neg_what = q.qid + " vs " + id;
          }
        }
        if (!w.accepted) continue;
        if (!right && getenv("TUNE_VERBOSE")) {
          std::printf("  %s %s %ds/%s vs %s@%.1fs: ber %.3f background %.3f activity q %.3f r %.3f speed %.2f\n",
                      q.kind == "negative" ? "FP" : "WRONG", q.qid.c_str(), q.length, q.distortion.c_str(), id.c_str(),
                      w.ref_s, w.ber, w.background_ber, w.query_activity, w.ref_activity, w.speed);
        }
        if (right) {
          hit = true;
          if (std::abs(w.ref_s - q.offset) <= 1.0) offset_ok = true;
        } else {
          wrong = true;
        }
      }
      if (q.kind == "positive") {
        row.true_ber.push_back(best_true);
        row.true_contrast.push_back(best_contrast);
        row.true_activity.push_back(best_activity);
        row.hit += hit;
        row.offset_ok += offset_ok;
        row.wrong += wrong;
      } else {
        row.fp += wrong;
      }
    }
    {
      int flagged_tracks = 0, windows = 0, matched_windows = 0;
      double min_ber = 1;
      std::string min_what;
      for (const auto& path : negative_paths) {
        const auto& p = negative_prints[path];
        if (p.by_speed.empty()) continue;
        std::vector<QueryVariant> variants;
        for (std::size_t v = 0; v < speeds.size() && v < p.by_speed.size(); ++v) variants.push_back({speeds[v], p.by_speed[v]});
        auto result = FindMatches(index, variants, options);
        windows += result.window_count;
        bool any = false;
        for (const auto& w : result.windows) {
          if (w.ber < 0.24 && getenv("TUNE_VERBOSE")) {
            std::printf("  negative window %s@%.0fs vs %s@%.1fs: ber %.3f background %.3f activity q %.3f r %.3f speed %.2f%s\n",
                        fs::path(path).filename().string().c_str(), w.query_s, refs[w.ref].first.c_str(), w.ref_s, w.ber,
                        w.background_ber, w.query_activity, w.ref_activity, w.speed, w.accepted ? " ACCEPTED" : "");
          }
          if (w.ber < min_ber) {
            min_ber = w.ber;
            min_what = fs::path(path).filename().string() + "@" + std::to_string(static_cast<int>(w.query_s)) + "s vs " +
                       refs[w.ref].first;
          }
          if (w.accepted) {
            ++matched_windows;
            any = true;
          }
        }
        flagged_tracks += any;
      }
      std::printf("whole negative tracks: %zu tracks, %d windows: %d tracks with a match, %d matched windows; "
                  "lowest BER %.3f (%s)\n",
                  negative_paths.size(), windows, flagged_tracks, matched_windows, min_ber, min_what.c_str());
    }
    std::printf("%-4s %-20s %5s %7s %6s %9s %7s %8s %8s %8s %8s %8s %7s\n", "len", "distortion", "n", "recall", "wrong",
                "FP/neg", "offset", "p50ber", "p5contr", "p5activ", "p50 ms", "p99 ms", "negmin");
    for (auto& [key, row] : rows) {
      const bool neg = row.true_ber.empty();
      std::printf("%-4d %-20s %5d %7.3f %6d %5d/%-3d %7.3f %8.3f %8.3f %8.3f %8.2f %8.2f %7.3f %s\n", key.first,
                  key.second.c_str(), row.n, neg ? 0.0 : static_cast<double>(row.hit) / row.n, row.wrong, row.fp,
                  row.negatives, row.hit ? static_cast<double>(row.offset_ok) / row.hit : 0.0,
                  Percentile(row.true_ber, 0.5), Percentile(row.true_contrast, 0.05), Percentile(row.true_activity, 0.05),
                  Percentile(row.latency_ms, 0.5), Percentile(row.latency_ms, 0.99), row.min_neg_ber,
                  row.min_neg_ber < 1 ? row.min_neg_what.c_str() : "");
    }
  }
  return 0;
}

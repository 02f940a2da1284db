// The evaluation set bench/fingerprint/make_queries.py writes (manifest.json, seedN/queries.tsv),
// as the in-process fingerprint benchmarks read it. Bench tools only: a malformed file ends the
// program with Boost.JSON's or the standard library's exception.
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>

namespace plyr::bench {

struct EvalReference {
  std::string id, path;
};

// One line of queries.tsv: an excerpt of `truth` (a reference id, or a negative's) at `offset`
// seconds, `length` seconds long, under `distortion`; `kind` is "positive" or "negative".
struct EvalQuery {
  std::string qid, distortion, path, kind, truth;
  int length = 0;
  double offset = 0;
};

struct EvalSet {
  std::vector<EvalReference> references;
  std::vector<std::string> negative_paths;
  std::map<std::string, int> work_class;  // reference id → group of the same work (manifest "equivalent")

  // True for the same reference or two references of one work (the corpus holds a few twice).
  bool SameWork(const std::string& a, const std::string& b) const {
    if (a == b) return true;
    auto ia = work_class.find(a), ib = work_class.find(b);
    return ia != work_class.end() && ib != work_class.end() && ia->second == ib->second;
  }
};

inline std::vector<std::string> SplitOn(const std::string& s, char separator) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, separator)) out.push_back(part);
  return out;
}

inline EvalSet LoadEvalSet(const std::string& manifest_path) {
  std::ifstream file(manifest_path);
  std::stringstream text;
  text << file.rdbuf();
  const auto manifest = boost::json::parse(text.str()).as_object();
  EvalSet set;
  for (const auto& r : manifest.at("references").as_array()) {
    set.references.push_back({std::string(r.at("id").as_string()), std::string(r.at("path").as_string())});
  }
  for (const auto& r : manifest.at("negatives").as_array()) set.negative_paths.emplace_back(r.at("path").as_string());
  if (const auto* groups = manifest.if_contains("equivalent")) {
    int next = 0;
    for (const auto& group : groups->as_array()) {
      for (const auto& id : group.as_array()) set.work_class[std::string(id.as_string())] = next;
      ++next;
    }
  }
  return set;
}

inline std::vector<EvalQuery> LoadEvalQueries(const std::string& queries_path) {
  std::vector<EvalQuery> queries;
  std::ifstream file(queries_path);
  std::string line;
  std::getline(file, line);  // header
  while (std::getline(file, line)) {
    auto f = SplitOn(line, '\t');
    if (f.size() < 7) continue;
    EvalQuery q;
    q.qid = f[0];
    q.length = std::stoi(f[1]);
    q.distortion = f[2];
    q.path = f[3];
    q.kind = f[4];
    q.truth = f[5];
    q.offset = std::stod(f[6]);
    queries.push_back(std::move(q));
  }
  return queries;
}

// The value at fraction `p` (0-1) of the sorted values; 0 for none.
inline double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size())))];
}

}  // namespace plyr::bench

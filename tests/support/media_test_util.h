// Helpers for tests that run media through the real binary: files, programs on $PATH, JSON
// answers, inputs made with the ffmpeg CLI and checked with ffprobe, hand-made WAV bytes.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace plyr::testing {

namespace tfs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Files, programs and JSON

inline std::string ReadBytes(const tfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteBytes(const tfs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The full path of a program on $PATH (posix_spawn does not search), or the bare name.
inline std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const tfs::path candidate = tfs::path(dir) / name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return name;
}

// Walks objects by key; null when any step is missing or not an object.
inline const boost::json::value* JsonAt(const boost::json::value& root, std::initializer_list<std::string_view> path) {
  const boost::json::value* v = &root;
  for (std::string_view key : path) {
    if (!v->is_object()) return nullptr;
    v = v->as_object().if_contains(key);
    if (!v) return nullptr;
  }
  return v;
}

// A number at `path`, or NaN (which fails every comparison) when absent.
inline double JsonNum(const boost::json::value& root, std::initializer_list<std::string_view> path) {
  const boost::json::value* v = JsonAt(root, path);
  if (!v) return std::numeric_limits<double>::quiet_NaN();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_double()) return v->as_double();
  return std::numeric_limits<double>::quiet_NaN();
}

// A string at `path`, or "<missing>".
inline std::string JsonStr(const boost::json::value& root, std::initializer_list<std::string_view> path) {
  const boost::json::value* v = JsonAt(root, path);
  return v && v->is_string() ? std::string(v->as_string()) : std::string("<missing>");
}

inline boost::json::value ParseJson(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  return ec ? boost::json::value(nullptr) : v;
}

inline bool IsLowerHex(std::string_view s, std::size_t size) {
  if (s.size() != size) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Percent-encodes a query parameter value.
inline std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ffmpeg and ffprobe

// Inputs are made once per test binary run and shared by the tests (ctest runs each test in its
// own process, where the cache simply starts empty).
inline const tfs::path& InputDir() {
  static TempDir dir;
  return dir.path();
}

// Runs `ffmpeg -nostdin -loglevel error -y <args> <output>`; fails the test if ffmpeg does.
inline tfs::path MakeMedia(const std::string& name, const std::vector<std::string>& args) {
  const tfs::path out = InputDir() / name;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (tfs::exists(out) && tfs::file_size(out) > 0) return out;
  std::vector<std::string> argv = {FindProgram("ffmpeg"), "-nostdin", "-loglevel", "error", "-y"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(out.string());
  std::string output;
  const int rc = PlyrProcess::RunCommand(argv, &output, std::chrono::seconds(60));
  EXPECT_EQ(rc, 0) << "ffmpeg failed making " << name << ": " << output;
  return out;
}

// A sine of `seconds` at 440 Hz through ffmpeg's lavfi source, encoded with `codec_args`.
inline tfs::path MakeSine(const std::string& name, double seconds, int rate, int channels,
                          const std::vector<std::string>& codec_args) {
  std::vector<std::string> args = {"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=" + std::to_string(rate) +
                                                            ":duration=" + std::to_string(seconds),
                                   "-ac", std::to_string(channels), "-ar", std::to_string(rate)};
  args.insert(args.end(), codec_args.begin(), codec_args.end());
  return MakeMedia(name, args);
}

// A work of `seconds` for `seed`: a two-voice melody, each seed a different piece of music (for
// fingerprint tests: distinct works that are neither silence nor a drone), as FLAC or what
// `codec_args` make.
inline tfs::path MakeMelody(int seed, double seconds, const std::string& name,
                            const std::vector<std::string>& codec_args = {}) {
  const std::string k = std::to_string(seed);
  const std::string expr =
      "aevalsrc=0.4*sin(2*PI*t*220*pow(2\\,floor(mod(abs(sin(floor(t*3.3)*12.9898+" + k +
      "*78.233))*43758.5453\\,24))/12))+0.2*sin(2*PI*t*110*pow(2\\,floor(mod(abs(sin(floor(t*1.7)*4.1414+" + k +
      "*17.17))*9631.77\\,12))/12)):s=44100:d=" + std::to_string(seconds);
  std::vector<std::string> args = {"-f", "lavfi", "-i", expr, "-ac", "2"};
  args.insert(args.end(), codec_args.begin(), codec_args.end());
  return MakeMedia(name, args);
}

struct Probe {
  bool ok = false;
  std::string codec;
  int sample_rate = 0;
  int channels = 0;
  double duration_s = 0;
  std::string raw;  // ffprobe's output, for failure messages
};

// The first audio stream of `file` as ffprobe sees it.
inline Probe ProbeFile(const tfs::path& file) {
  Probe p;
  std::vector<std::string> argv = {FindProgram("ffprobe"), "-v", "error", "-select_streams", "a:0",
                                   "-show_entries", "stream=codec_name,sample_rate,channels:format=duration",
                                   "-of", "json", file.string()};
  const int rc = PlyrProcess::RunCommand(argv, &p.raw, std::chrono::seconds(30));
  const boost::json::value doc = ParseJson(p.raw);
  const boost::json::value* streams = JsonAt(doc, {"streams"});
  if (rc != 0 || !streams || !streams->is_array() || streams->as_array().empty()) return p;
  const boost::json::value& s = streams->as_array()[0];
  p.codec = JsonStr(s, {"codec_name"});
  p.sample_rate = std::atoi(JsonStr(s, {"sample_rate"}).c_str());
  p.channels = static_cast<int>(JsonNum(s, {"channels"}));
  p.duration_s = std::atof(JsonStr(doc, {"format", "duration"}).c_str());
  p.ok = true;
  return p;
}

// What `ffmpeg -v error -i file -f null -` prints: empty for a clean decode.
inline std::string DecodeErrors(const tfs::path& file) {
  std::string output;
  const int rc = PlyrProcess::RunCommand({FindProgram("ffmpeg"), "-nostdin", "-v", "error", "-i", file.string(),
                                          "-f", "null", "-"},
                                         &output, std::chrono::seconds(60));
  if (rc != 0 && output.empty()) output = "ffmpeg exited with " + std::to_string(rc);
  return output;
}

struct Loudness {
  double integrated_lufs = std::numeric_limits<double>::quiet_NaN();
  double true_peak_dbtp = std::numeric_limits<double>::quiet_NaN();
};

// The reference measure: FFmpeg's own ebur128 filter, read from its summary.
inline Loudness ReferenceLoudness(const tfs::path& file) {
  std::string output;
  PlyrProcess::RunCommand({FindProgram("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-i", file.string(), "-af",
                           "ebur128=peak=true", "-f", "null", "-"},
                          &output, std::chrono::seconds(60));
  Loudness l;
  const auto summary = output.rfind("Summary:");
  if (summary == std::string::npos) return l;
  std::istringstream lines(output.substr(summary));
  std::string line;
  while (std::getline(lines, line)) {
    const auto start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    std::string_view t(line.c_str() + start);
    if (t.starts_with("I:")) l.integrated_lufs = std::atof(line.c_str() + start + 2);
    if (t.starts_with("Peak:")) l.true_peak_dbtp = std::atof(line.c_str() + start + 5);
  }
  return l;
}

// A canonical 44-byte WAV header (PCM unless `format` says otherwise) followed by `samples`;
// `declared_data_size` is what the header claims, whatever follows.
inline std::string WavFile(std::uint32_t declared_data_size, const std::string& samples, std::uint16_t format = 1,
                           std::uint16_t channels = 2, std::uint32_t rate = 44100, std::uint16_t bits = 16) {
  std::string out;
  auto u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  auto u16 = [&](std::uint16_t v) {
    out += static_cast<char>(v & 0xff);
    out += static_cast<char>(v >> 8);
  };
  out += "RIFF";
  u32(declared_data_size > 0xffffffffu - 36 ? 0xffffffffu : declared_data_size + 36);
  out += "WAVEfmt ";
  u32(16);
  u16(format);
  u16(channels);
  u32(rate);
  u32(rate * channels * bits / 8);
  u16(static_cast<std::uint16_t>(channels * bits / 8));
  u16(bits);
  out += "data";
  u32(declared_data_size);
  return out + samples;
}

// `seconds` of a 440 Hz sine as interleaved s16le stereo at 44.1 kHz.
inline std::string SineSamples(double seconds) {
  std::string out;
  const int frames = static_cast<int>(seconds * 44100);
  for (int i = 0; i < frames; ++i) {
    const auto v = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 440 * i / 44100.0));
    for (int c = 0; c < 2; ++c) {
      out += static_cast<char>(v & 0xff);
      out += static_cast<char>((v >> 8) & 0xff);
    }
  }
  return out;
}

}  // namespace plyr::testing

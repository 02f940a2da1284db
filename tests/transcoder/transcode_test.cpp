// The transcode engine on real encoders: inputs made by the ffmpeg CLI, outputs checked with
// ffprobe and against the ffmpeg CLI's own loudness meter.
#include "transcoder/transcode.h"

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>

#include <dlfcn.h>

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

extern "C" {
#include <libavfilter/version.h>
#include <libavutil/macros.h>
}

#include "common/media/chromaprint.h"
#include "tests/support/process.h"
#include "transcoder/transcode_json.h"

namespace plyr::transcoder {
namespace {

namespace fs = std::filesystem;
using testing::PlyrProcess;
using testing::TempDir;

std::string Run(const std::vector<std::string>& argv) {
  std::string out;
  const int status = PlyrProcess::RunCommand(argv, &out, std::chrono::seconds(60));
  EXPECT_EQ(status, 0) << out;
  return out;
}

// Makes an input with the ffmpeg CLI from a lavfi source description and output options.
fs::path MakeInput(const fs::path& dir, const std::string& name, const std::string& source,
                   const std::vector<std::string>& options) {
  const fs::path path = dir / name;
  std::vector<std::string> argv = {"/usr/bin/ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                                   "-i", source};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(path.string());
  Run(argv);
  return path;
}

struct Probe {
  double duration = 0;
  std::string codec;
  int sample_rate = 0;
  int channels = 0;
};

Probe ProbeFile(const fs::path& path) {
  const std::string out = Run({"/usr/bin/ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                               "stream=codec_name,sample_rate,channels:format=duration", "-of",
                               "default=noprint_wrappers=1", path.string()});
  Probe p;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "codec_name") p.codec = value;
    if (key == "sample_rate") p.sample_rate = std::atoi(value.c_str());
    if (key == "channels") p.channels = std::atoi(value.c_str());
    if (key == "duration") p.duration = std::atof(value.c_str());
  }
  return p;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class TranscodeTest : public ::testing::Test {
 protected:
  StatusOr<TranscodeResult> Transcode(const fs::path& input, const std::string& ladder, TranscodeRequest extra = {}) {
    const fs::path out = dir_.path() / ("out-" + std::to_string(++runs_));
    fs::create_directories(out);
    extra.input = input;
    extra.output_dir = out;
    auto specs = ParseLadder(ladder);
    EXPECT_TRUE(specs.ok()) << specs.status().ToString();
    extra.renditions = *specs;
    return TranscodeAndWait(pool_, std::move(extra));
  }

  TempDir dir_;
  boost::asio::thread_pool pool_{2};
  int runs_ = 0;
};

TEST(Rendition, LadderParsesAndRefusesBadNames) {
  auto ladder = ParseLadder("mp3-320, aac-256,opus-64,wav");
  ASSERT_TRUE(ladder.ok()) << ladder.status().ToString();
  ASSERT_EQ(ladder->size(), 4u);
  EXPECT_EQ((*ladder)[0].encoder, "libmp3lame");
  EXPECT_EQ((*ladder)[0].bitrate, 320000);
  EXPECT_EQ((*ladder)[1].muxer, "ipod");
  EXPECT_EQ((*ladder)[2].sample_rate, 48000);
  EXPECT_EQ((*ladder)[3].encoder, "pcm_s16le");
  EXPECT_EQ(LadderText(*ladder), "mp3-320,aac-256,opus-64,wav");
  EXPECT_EQ(LadderText(DefaultLadder()), "mp3-320,mp3-128,aac-256,opus-128,opus-64");
  for (const char* bad : {"", "mp3", "mp3-", "mp3-0320", "mp3-999", "opus-5", "flac-500", "mp3-128,mp3-128",
                          "mp3-x", "../etc", "mp3-128,aac-128,opus-64,opus-96,mp3-96,aac-96,opus-32,mp3-64,aac-64"}) {
    EXPECT_FALSE(ParseLadder(bad).ok()) << bad;
  }
}

TEST_F(TranscodeTest, DefaultLadderFromFlacMatchesTheInput) {
  const fs::path input = MakeInput(dir_.path(), "in.flac", "sine=frequency=440:duration=6", {"-ac", "2", "-ar", "44100"});
  std::vector<double> progress;
  std::mutex progress_mutex;
  TranscodeRequest extra;
  extra.on_progress = [&](double p) {
    std::lock_guard lock(progress_mutex);
    progress.push_back(p);
  };
  auto result = Transcode(input, "mp3-320,mp3-128,aac-256,opus-128,opus-64", extra);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->facts.duration_ms, 6000);
  EXPECT_EQ(result->facts.codec, "flac");
  EXPECT_EQ(result->facts.sample_rate, 44100);
  EXPECT_EQ(result->facts.channels, 2);
  EXPECT_EQ(result->facts.decode_errors, 0);
  ASSERT_EQ(result->renditions.size(), 5u);
  const std::map<std::string, std::pair<std::string, int>> expected = {{"mp3-320", {"mp3", 44100}},
                                                                      {"mp3-128", {"mp3", 44100}},
                                                                      {"aac-256", {"aac", 44100}},
                                                                      {"opus-128", {"opus", 48000}},
                                                                      {"opus-64", {"opus", 48000}}};
  for (const auto& r : result->renditions) {
    SCOPED_TRACE(r.spec.name);
    Probe p = ProbeFile(r.path);
    EXPECT_EQ(p.codec, expected.at(r.spec.name).first);
    EXPECT_EQ(p.sample_rate, expected.at(r.spec.name).second);
    EXPECT_EQ(p.channels, 2);
    EXPECT_NEAR(p.duration, 6.0, 0.05);
    EXPECT_EQ(r.size, fs::file_size(r.path));
    EXPECT_GT(r.encode_cpu_seconds, 0);
    std::string errors;
    PlyrProcess::RunCommand({"/usr/bin/ffmpeg", "-v", "error", "-i", r.path.string(), "-f", "null", "-"}, &errors);
    EXPECT_EQ(errors, "");
  }
  // MP3: a LAME "Info" frame (CBR's Xing header) first, so players can seek and know the length.
  EXPECT_NE(ReadFile(result->renditions[0].path).substr(0, 4096).find("Info"), std::string::npos);
  // M4A: the index (moov) before the audio (mdat), so playback starts before the download ends.
  const std::string m4a = ReadFile(result->renditions[2].path);
  ASSERT_NE(m4a.find("moov"), std::string::npos);
  EXPECT_LT(m4a.find("moov"), m4a.find("mdat"));
  // CBR bitrates as asked.
  const double mp3_kbps = result->renditions[0].size * 8.0 / 6.0 / 1000;
  EXPECT_NEAR(mp3_kbps, 320, 16);
  std::lock_guard lock(progress_mutex);
  ASSERT_FALSE(progress.empty());
  EXPECT_GE(*std::max_element(progress.begin(), progress.end()), 0.75);
}

TEST_F(TranscodeTest, LoudnessAgreesWithTheFfmpegMeter) {
  const fs::path input = MakeInput(dir_.path(), "music.wav",
                                   "sine=frequency=220:duration=8,volume=6dB,aformat=channel_layouts=stereo",
                                   {"-ar", "48000"});
  auto result = Transcode(input, "opus-64");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  std::string meter;
  PlyrProcess::RunCommand({"/usr/bin/ffmpeg", "-nostdin", "-hide_banner", "-i", input.string(), "-af",
                           "ebur128=peak=true", "-f", "null", "-"},
                          &meter);
  ASSERT_NE(meter.find("Summary:"), std::string::npos) << meter;
  meter = meter.substr(meter.find("Summary:"));  // the per-block lines before it carry running figures
  std::smatch m;
  ASSERT_TRUE(std::regex_search(meter, m, std::regex(R"(I:\s+(-?[0-9.]+) LUFS)"))) << meter;
  const double integrated = std::stod(m[1]);
  ASSERT_TRUE(std::regex_search(meter, m, std::regex(R"(Peak:\s+(-?[0-9.]+) dBFS)"))) << meter;
  const double peak = std::stod(m[1]);
  ASSERT_TRUE(result->facts.integrated_lufs.has_value());
  ASSERT_TRUE(result->facts.true_peak_dbtp.has_value());
  EXPECT_NEAR(*result->facts.integrated_lufs, integrated, 0.15);
  EXPECT_NEAR(*result->facts.true_peak_dbtp, peak, 0.15);
  ASSERT_TRUE(result->facts.loudness_range_lu.has_value());
  EXPECT_LT(*result->facts.loudness_range_lu, 1.0);  // a steady tone has no range
  // 1 000 waveform points over 8 s, each a symmetric swing of the tone's amplitude.
  ASSERT_EQ(result->facts.peaks.size(), 800u);  // 10 ms slices: fewer than 1 000 exist
  const float amplitude = std::pow(10.0f, static_cast<float>(peak) / 20.0f);
  EXPECT_NEAR(result->facts.peaks[400].second, amplitude, 0.02);
  EXPECT_NEAR(result->facts.peaks[400].first, -amplitude, 0.02);
}

TEST_F(TranscodeTest, WaveformIsReducedToTheRequestedPoints) {
  const fs::path input = MakeInput(dir_.path(), "long.flac", "sine=frequency=330:duration=12", {});
  TranscodeRequest extra;
  extra.waveform_points = 100;
  auto result = Transcode(input, "opus-64", extra);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->facts.peaks.size(), 100u);
}

TEST_F(TranscodeTest, SurroundIsDownmixedAndMonoStaysMono) {
  const fs::path surround = MakeInput(dir_.path(), "surround.wav", "sine=frequency=500:duration=3",
                                      {"-af", "aformat=channel_layouts=5.1", "-ar", "48000"});
  auto five = Transcode(surround, "mp3-128,aac-256,opus-64,wav");
  ASSERT_TRUE(five.ok()) << five.status().ToString();
  EXPECT_EQ(five->facts.channels, 6);
  EXPECT_EQ(five->facts.channel_layout, "5.1");
  for (const auto& r : five->renditions) {
    SCOPED_TRACE(r.spec.name);
    EXPECT_EQ(ProbeFile(r.path).channels, r.spec.name == "wav" ? 6 : 2);
  }
  const fs::path mono = MakeInput(dir_.path(), "mono.aiff", "sine=frequency=500:duration=3", {"-ac", "1"});
  auto one = Transcode(mono, "mp3-128,opus-64");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  for (const auto& r : one->renditions) EXPECT_EQ(ProbeFile(r.path).channels, 1) << r.spec.name;
}

TEST_F(TranscodeTest, SampleRatesFrom8To192KilohertzAreResampled) {
  for (int rate : {8000, 22050, 96000, 192000}) {
    SCOPED_TRACE(rate);
    // (Built with append: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.)
    const fs::path input = MakeInput(dir_.path(), std::string("r").append(std::to_string(rate)).append(".flac"),
                                     "sine=frequency=300:duration=2", {"-ar", std::to_string(rate)});
    auto result = Transcode(input, "mp3-128,opus-64,wav");
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->facts.sample_rate, rate);
    EXPECT_EQ(ProbeFile(result->renditions[0].path).sample_rate, 44100);
    EXPECT_EQ(ProbeFile(result->renditions[1].path).sample_rate, 48000);
    EXPECT_EQ(ProbeFile(result->renditions[2].path).sample_rate, rate);  // PCM keeps the source rate
    EXPECT_NEAR(ProbeFile(result->renditions[0].path).duration, 2.0, 0.06);
  }
}

TEST_F(TranscodeTest, SilenceHasNoLoudnessAndAFlatWaveform) {
  const fs::path input = MakeInput(dir_.path(), "silence.wav", "anullsrc=r=44100:cl=stereo", {"-t", "2"});
  auto result = Transcode(input, "mp3-128");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_FALSE(result->facts.integrated_lufs.has_value());
  EXPECT_FALSE(result->facts.true_peak_dbtp.has_value());
  for (const auto& [lo, hi] : result->facts.peaks) {
    EXPECT_EQ(lo, 0.0f);
    EXPECT_EQ(hi, 0.0f);
  }
}

TEST_F(TranscodeTest, NonAudioAndEmptyInputsAreRefusedClearly) {
  const fs::path text = dir_.path() / "notes.txt";
  std::ofstream(text) << "this is not audio, just some words in a text file\n";
  auto r1 = Transcode(text, "mp3-128");
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kInvalidArgument) << r1.status().ToString();

  const fs::path empty = dir_.path() / "empty";
  std::ofstream(empty).flush();
  auto r2 = Transcode(empty, "mp3-128");
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), StatusCode::kInvalidArgument);

  const fs::path video = MakeInput(dir_.path(), "video.mp4", "testsrc=size=64x64:rate=10:duration=1",
                                   {"-pix_fmt", "yuv420p"});
  auto r3 = Transcode(video, "mp3-128");
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.status().message().find("no audio"), std::string::npos) << r3.status().ToString();

  const fs::path zero = MakeInput(dir_.path(), "zero.wav", "anullsrc=r=44100:cl=stereo", {"-t", "0"});
  auto r4 = Transcode(zero, "mp3-128");
  ASSERT_FALSE(r4.ok());
  EXPECT_EQ(r4.status().code(), StatusCode::kInvalidArgument) << r4.status().ToString();
}

TEST_F(TranscodeTest, LimitsCancelAndDeadlineStopTheJob) {
  const fs::path input = MakeInput(dir_.path(), "five.flac", "sine=frequency=440:duration=5", {});
  TranscodeRequest limited;
  limited.max_duration_ms = 2000;
  auto too_long = Transcode(input, "mp3-128", limited);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(too_long.status().message().find("limit"), std::string::npos);

  TranscodeRequest cancelled;
  cancelled.cancel = std::make_shared<std::atomic<bool>>(true);
  auto stopped = Transcode(input, "mp3-128,opus-64", cancelled);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), StatusCode::kCancelled);

  TranscodeRequest late;
  late.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto expired = Transcode(input, "mp3-128", late);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(TranscodeTest, OneWorkerThreadRunsSeveralTranscodesWithoutDeadlock) {
  const fs::path input = MakeInput(dir_.path(), "in.mp3", "sine=frequency=440:duration=4", {"-b:a", "192k"});
  boost::asio::thread_pool single(1);
  std::vector<std::future<StatusOr<TranscodeResult>>> running;
  for (int i = 0; i < 3; ++i) {
    const fs::path out = dir_.path() / ("single-" + std::to_string(i));
    fs::create_directories(out);
    TranscodeRequest request;
    request.input = input;
    request.output_dir = out;
    request.renditions = DefaultLadder();
    auto promise = std::make_shared<std::promise<StatusOr<TranscodeResult>>>();
    running.push_back(promise->get_future());
    StartTranscode(single, std::move(request), [promise](StatusOr<TranscodeResult> r) { promise->set_value(std::move(r)); });
  }
  for (auto& f : running) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready);
    auto result = f.get();
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->renditions.size(), 5u);
    EXPECT_NEAR(result->facts.duration_ms, 4000, 60);
  }
}

// ---------------------------------------------------------------------------------------------
// Fingerprints

// `seconds` of stereo 44.1 kHz "music": three voices stepping through different note patterns (so the
// chroma changes every fraction of a second and repeats only after 12 s) over a little noise.
fs::path MakeMelody(const fs::path& dir, const std::string& name, int seconds) {
  const std::string voice_a = "0.3*sin(2*PI*t*220*pow(2,mod(floor(t*3)*7,12)/12))";
  const std::string voice_b = "0.2*sin(2*PI*t*330*pow(2,mod(floor(t*5)*5,12)/12))";
  const std::string voice_c = "0.15*sin(2*PI*t*495*pow(2,mod(floor(t*2)*3,12)/12))";
  const std::string noise = "0.05*(random(0)*2-1)";
  return MakeInput(dir, name,
                   "aevalsrc=exprs='" + voice_a + "+" + voice_b + "+" + noise + "|" + voice_a + "+" + voice_c +
                       "':s=44100:d=" + std::to_string(seconds),
                   {"-c:a", "flac"});
}

// Share of differing bits between two prints, over the items both have.
double BitErrorRate(const media::FingerprintItems& a, const media::FingerprintItems& b) {
  const std::size_t n = std::min(a.size(), b.size());
  if (n == 0) return 1.0;
  std::size_t differing = 0;
  for (std::size_t i = 0; i < n; ++i) differing += static_cast<std::size_t>(std::popcount(a[i] ^ b[i]));
  return static_cast<double>(differing) / (32.0 * static_cast<double>(n));
}

// The audio decoded apart from the engine (the ffmpeg CLI, to 11025 Hz mono s16) and fed straight
// to Chromaprint.
media::FingerprintItems ReferencePrint(const fs::path& input, const fs::path& raw) {
  Run({"/usr/bin/ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", input.string(), "-ac", "1", "-ar",
       std::to_string(media::kChromaprintRate), "-f", "s16le", raw.string()});
  const std::string bytes = ReadFile(raw);
  std::vector<std::int16_t> samples(bytes.size() / 2);
  std::memcpy(samples.data(), bytes.data(), samples.size() * 2);
  media::Fingerprinter fingerprinter({1.0});
  EXPECT_TRUE(fingerprinter.Start(media::kChromaprintRate, 1).ok());
  EXPECT_TRUE(fingerprinter.Feed(samples).ok());
  auto prints = fingerprinter.Finish();
  EXPECT_TRUE(prints.ok());
  return prints.ok() ? (*prints)[0] : media::FingerprintItems{};
}

TEST_F(TranscodeTest, FingerprintsComeFromTheSharedDecode) {
  constexpr int kSeconds = 30;
  const fs::path input = MakeMelody(dir_.path(), "melody.flac", kSeconds);
  TranscodeRequest extra;
  extra.fingerprint_speeds = {1.0, 1.02};
  auto result = Transcode(input, "mp3-128,opus-64", extra);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->renditions.size(), 2u);
  ASSERT_EQ(result->fingerprints.size(), 2u);
  const media::FingerprintItems& as_is = result->fingerprints[0];
  const media::FingerprintItems& undone = result->fingerprints[1];

  // About 8.08 items per second of audio; Chromaprint's first item needs about 2.6 s of context,
  // so a print falls short of duration x rate by about 20 items.
  const double expected = kSeconds / media::kItemSeconds;
  EXPECT_GT(static_cast<double>(as_is.size()), expected - 30) << as_is.size();
  EXPECT_LE(static_cast<double>(as_is.size()), expected);
  // Speed 1.02 undoes a 2 % speed-up: Chromaprint hears the audio 2 % slower, so the print
  // covers 2 % more items (the start-up shortfall is the same for both).
  EXPECT_GT(undone.size(), as_is.size());
  EXPECT_NEAR(static_cast<double>(undone.size()) - static_cast<double>(as_is.size()), 0.02 * expected, 1.5)
      << as_is.size() << " vs " << undone.size();
  EXPECT_GT(BitErrorRate(as_is, undone), 0.1) << "the variant must be a different print";

  // The same print as the audio decoded apart and fed to Chromaprint directly.
  const media::FingerprintItems reference = ReferencePrint(input, dir_.path() / "melody.raw");
  EXPECT_NEAR(static_cast<double>(as_is.size()), static_cast<double>(reference.size()), 1.0);
  EXPECT_LT(BitErrorRate(as_is, reference), 0.02);
  EXPECT_FALSE(media::EncodeFingerprint(as_is).empty());

  // Its CPU is measured and is part of the whole.
  EXPECT_GT(result->fingerprint_cpu_seconds, 0);
  EXPECT_LT(result->fingerprint_cpu_seconds, result->cpu_seconds);
}

TEST_F(TranscodeTest, LibavfilterIsLoadedOnlyWhenAJobMeasuresLoudness) {
  // Each test runs in a process of its own (ctest), so nothing has loaded it before.
  const std::string soname = "libavfilter.so." AV_STRINGIFY(LIBAVFILTER_VERSION_MAJOR);
  const auto loaded = [&] {
    void* handle = dlopen(soname.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (handle) dlclose(handle);  // drops only the reference RTLD_NOLOAD took
    return handle != nullptr;
  };
  const fs::path input = MakeMelody(dir_.path(), "melody.flac", 5);
  TranscodeRequest without;
  without.analyze = false;
  ASSERT_TRUE(Transcode(input, "wav", without).ok());
  EXPECT_FALSE(loaded()) << "a job without the loudness meter loaded " << soname;
  auto measured = Transcode(input, "wav");
  ASSERT_TRUE(measured.ok()) << measured.status().ToString();
  EXPECT_TRUE(loaded());
  ASSERT_TRUE(measured->facts.integrated_lufs.has_value());
  EXPECT_LT(*measured->facts.integrated_lufs, 0);
}

TEST_F(TranscodeTest, WithoutFingerprintSpeedsNothingChanges) {
  const fs::path input = MakeMelody(dir_.path(), "short-melody.flac", 8);
  auto plain = Transcode(input, "mp3-128,wav");
  TranscodeRequest extra;
  extra.fingerprint_speeds = {1.0};
  auto printed = Transcode(input, "mp3-128,wav", extra);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  ASSERT_TRUE(printed.ok()) << printed.status().ToString();
  EXPECT_TRUE(plain->fingerprints.empty());
  EXPECT_EQ(plain->fingerprint_cpu_seconds, 0);
  ASSERT_EQ(printed->fingerprints.size(), 1u);
  EXPECT_FALSE(printed->fingerprints[0].empty());
  // The facts and every rendition are the same, byte for byte.
  EXPECT_EQ(boost::json::serialize(FactsJson(plain->facts)), boost::json::serialize(FactsJson(printed->facts)));
  ASSERT_EQ(plain->renditions.size(), printed->renditions.size());
  for (std::size_t i = 0; i < plain->renditions.size(); ++i) {
    SCOPED_TRACE(plain->renditions[i].spec.name);
    EXPECT_EQ(boost::json::serialize(RenditionJson(plain->renditions[i])),
              boost::json::serialize(RenditionJson(printed->renditions[i])));
    EXPECT_TRUE(ReadFile(plain->renditions[i].path) == ReadFile(printed->renditions[i].path));
  }
}

TEST_F(TranscodeTest, AFingerprintAloneNeedsNoRenditionAndSpeedsAreChecked) {
  const fs::path input = MakeMelody(dir_.path(), "alone.flac", 6);
  const fs::path out = dir_.path() / "alone-out";
  fs::create_directories(out);
  TranscodeRequest request;
  request.input = input;
  request.output_dir = out;
  request.analyze = false;
  request.fingerprint_speeds = {1.0};
  auto alone = TranscodeAndWait(pool_, request);
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_TRUE(alone->renditions.empty());
  ASSERT_EQ(alone->fingerprints.size(), 1u);
  EXPECT_FALSE(alone->fingerprints[0].empty());
  EXPECT_TRUE(fs::is_empty(out));

  for (double bad : {0.0, 3.0, std::nan("")}) {
    request.fingerprint_speeds = {1.0, bad};
    auto refused = TranscodeAndWait(pool_, request);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace plyr::transcoder

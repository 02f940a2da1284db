// The transcoder job's fingerprint stage in parts, on one file decoded once into memory: the
// conversion to Chromaprint's input (ChromaprintInput), the items at speed 1 (Fingerprinter, and
// libchromaprint's own pass for comparison) and at the three speeds a job uses by default, and the
// stage as a whole; also the decode alone and with the stage on each frame as it is decoded. The stage's figure of record is
// `fingerprint_cpu_s` of `plyr-core transcode` (bench/fingerprint/run.sh); this separates its parts.
//
// In a job each decoded frame reaches the stage while it is still in cache, so the frames are
// walked as the first two seconds of the file over and over, for as long as the whole file:
// the same amount of work, on frames in cache (the whole file in memory would measure memory).
//
//   build/release/bench/fingerprint_stage_bench FILE [--benchmark_repetitions=5 ...]
#include <benchmark/benchmark.h>
#include <chromaprint.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/media/chromaprint.h"
#include "common/media/ffmpeg_util.h"
#include "transcoder/chromaprint_input.h"

namespace {

using plyr::media::FramePtr;

struct Decoded {
  std::vector<FramePtr> frames;
  int rate = 0;
  int channels = 0;
  AVSampleFormat format = AV_SAMPLE_FMT_NONE;
};

Decoded& Audio() {
  static Decoded decoded;
  return decoded;
}

std::string& Path() {
  static std::string path;
  return path;
}

// Decodes the file, calling fn(frame) for each decoded frame as it comes out of the decoder;
// false when the file cannot be opened or has no audio.
template <typename Fn>
bool DecodeEach(Fn fn) {
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, Path().c_str(), nullptr, nullptr) < 0) return false;
  plyr::media::InputFormatPtr input(raw);
  if (avformat_find_stream_info(raw, nullptr) < 0) return false;
  const AVCodec* codec = nullptr;
  const int stream = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
  if (stream < 0 || !codec) return false;
  plyr::media::CodecContextPtr decoder(avcodec_alloc_context3(codec));
  avcodec_parameters_to_context(decoder.get(), raw->streams[stream]->codecpar);
  if (avcodec_open2(decoder.get(), codec, nullptr) < 0) return false;
  plyr::media::PacketPtr packet(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  auto drain = [&] {
    while (avcodec_receive_frame(decoder.get(), frame.get()) >= 0) {
      fn(*frame);
      av_frame_unref(frame.get());
    }
  };
  while (av_read_frame(raw, packet.get()) >= 0) {
    if (packet->stream_index == stream) avcodec_send_packet(decoder.get(), packet.get());
    av_packet_unref(packet.get());
    drain();
  }
  avcodec_send_packet(decoder.get(), nullptr);
  drain();
  return true;
}

// Decodes the file into Audio().
bool Decode() {
  Decoded& out = Audio();
  const bool opened = DecodeEach([&](const AVFrame& frame) {
    out.rate = frame.sample_rate;
    out.channels = frame.ch_layout.nb_channels;
    out.format = static_cast<AVSampleFormat>(frame.format);
    out.frames.emplace_back(av_frame_clone(&frame));
  });
  return opened && !out.frames.empty();
}

std::int64_t AudioSamples() {
  std::int64_t samples = 0;
  for (const auto& frame : Audio().frames) samples += frame->nb_samples;
  return samples;
}

double AudioSeconds() { return static_cast<double>(AudioSamples()) / Audio().rate; }

// Calls fn(frame) for the first two seconds' frames in turn, as many times as make the file's length.
template <typename Fn>
void ForEachFrame(Fn fn) {
  const auto& frames = Audio().frames;
  std::size_t hot = 0;
  for (std::int64_t samples = 0; hot < frames.size() && samples < 2 * Audio().rate; ++hot) {
    samples += frames[hot]->nb_samples;
  }
  const std::int64_t total = AudioSamples();
  for (std::int64_t done = 0, i = 0; done < total; ++i) {
    const AVFrame& frame = *frames[static_cast<std::size_t>(i) % hot];
    fn(frame);
    done += frame.nb_samples;
  }
}

std::vector<std::int16_t> Convert() {
  const Decoded& audio = Audio();
  auto input = plyr::transcoder::ChromaprintInput::Create(audio.rate, audio.format, audio.channels);
  std::vector<std::int16_t> out;
  ForEachFrame([&](const AVFrame& frame) { input->Convert(frame, &out); });
  input->Finish(&out);
  return out;
}

void BM_Conversion(benchmark::State& state) {
  for (auto _ : state) {
    const Decoded& audio = Audio();
    auto input = plyr::transcoder::ChromaprintInput::Create(audio.rate, audio.format, audio.channels);
    std::vector<std::int16_t> out;
    ForEachFrame([&](const AVFrame& frame) {
      out.clear();
      input->Convert(frame, &out);
    });
    input->Finish(&out);
    benchmark::DoNotOptimize(out);
  }
  state.counters["audio_s"] = AudioSeconds();
}
BENCHMARK(BM_Conversion)->Unit(benchmark::kMillisecond);

void BM_ChromaprintPass(benchmark::State& state) {
  const std::vector<std::int16_t> samples = Convert();
  plyr::media::Fingerprinter fingerprinter;
  for (auto _ : state) {
    (void)fingerprinter.Start(plyr::media::kChromaprintRate, 1);
    (void)fingerprinter.Feed(samples);
    benchmark::DoNotOptimize(fingerprinter.Finish());
  }
}
BENCHMARK(BM_ChromaprintPass)->Unit(benchmark::kMillisecond);

// The three speeds a job fingerprints by default (1, 0.98, 1.02): each variant is resampled from
// the 11025 Hz samples, then given its own pass.
void BM_ThreeSpeeds(benchmark::State& state) {
  const std::vector<std::int16_t> samples = Convert();
  plyr::media::Fingerprinter fingerprinter({1.0, 0.98, 1.02});
  for (auto _ : state) {
    (void)fingerprinter.Start(plyr::media::kChromaprintRate, 1);
    (void)fingerprinter.Feed(samples);
    benchmark::DoNotOptimize(fingerprinter.Finish());
  }
}
BENCHMARK(BM_ThreeSpeeds)->Unit(benchmark::kMillisecond);

// libchromaprint's own pass over the same samples (the anchor for Test2Calculator).
void BM_LibchromaprintPass(benchmark::State& state) {
  const std::vector<std::int16_t> samples = Convert();
  ChromaprintContext* context = chromaprint_new(CHROMAPRINT_ALGORITHM_TEST2);
  for (auto _ : state) {
    chromaprint_start(context, plyr::media::kChromaprintRate, 1);
    chromaprint_feed(context, samples.data(), static_cast<int>(samples.size()));
    chromaprint_finish(context);
  }
  chromaprint_free(context);
}
BENCHMARK(BM_LibchromaprintPass)->Unit(benchmark::kMillisecond);

// The stage as a job runs it, on the frames `for_each_frame` hands out: each converted, then fed.
template <typename ForEachFrameFn>
void RunStage(benchmark::State& state, ForEachFrameFn for_each_frame) {
  const Decoded& audio = Audio();
  plyr::media::Fingerprinter fingerprinter;
  std::vector<std::int16_t> samples;
  for (auto _ : state) {
    auto input = plyr::transcoder::ChromaprintInput::Create(audio.rate, audio.format, audio.channels);
    (void)fingerprinter.Start(plyr::media::kChromaprintRate, 1);
    for_each_frame([&](const AVFrame& frame) {
      samples.clear();
      input->Convert(frame, &samples);
      (void)fingerprinter.Feed(samples);
    });
    samples.clear();
    input->Finish(&samples);
    (void)fingerprinter.Feed(samples);
    benchmark::DoNotOptimize(fingerprinter.Finish());
  }
}

void BM_Stage(benchmark::State& state) {
  RunStage(state, [](auto fn) { ForEachFrame(fn); });
}
BENCHMARK(BM_Stage)->Unit(benchmark::kMillisecond);

// The decode alone, and the decode with the stage run on each frame as it is decoded: their
// difference is the stage's cost on frames fresh from the decoder.
void BM_DecodeOnly(benchmark::State& state) {
  for (auto _ : state) DecodeEach([](const AVFrame& frame) { benchmark::DoNotOptimize(frame.nb_samples); });
}
BENCHMARK(BM_DecodeOnly)->Unit(benchmark::kMillisecond);

void BM_DecodeWithStage(benchmark::State& state) {
  RunStage(state, [](auto fn) { DecodeEach(fn); });
}
BENCHMARK(BM_DecodeWithStage)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s AUDIO_FILE [--benchmark_...]\n", argv[0]);
    return 2;
  }
  Path() = argv[1];
  if (!Decode()) {
    std::fprintf(stderr, "cannot decode %s\n", argv[1]);
    return 1;
  }
  std::fprintf(stderr, "%s: %.1f s at %d Hz, %d channels, %zu frames\n", argv[1], AudioSeconds(), Audio().rate,
               Audio().channels, Audio().frames.size());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

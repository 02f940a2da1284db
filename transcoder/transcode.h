// Transcode: decode an audio file once and encode every rendition in parallel, measuring the
// facts a player shows (duration, EBU R128 loudness, a waveform) in the same pass.
//
//   demux+decode ──► per output format: one resampler ──► shared frames ──► encoder+muxer (each)
//               ├──► analysis: float at 48 kHz, source channels ──► ebur128 (libavfilter), peaks
//               └──► fingerprint (when asked): s16 at 11025 Hz mono ──► Chromaprint, each speed
//
// The fingerprint shares the one decode: Chromaprint gets its native rate and layout, so its own
// resampler and channel mix are skipped (media::Fingerprinter).
//
// The decoder, every encoder, the analysis and the fingerprinter are actors: each runs one chunk
// (about a second of audio) at a time as a task on the given thread pool and re-queues itself
// while it has input, so N renditions keep every pool thread busy without a thread each, and
// several transcodes share the pool fairly. The decoder runs at most a few chunks ahead of the
// slowest consumer, which bounds memory whatever the input's length.
//
// The input is found by probing its content (never by a file name). Outputs are written to
// <output_dir>/<name>.<extension>; on failure or cancellation the caller removes the folder.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "common/media/chromaprint.h"
#include "common/status.h"
#include "transcoder/rendition.h"

namespace plyr::transcoder {

struct MediaFacts {
  std::int64_t duration_ms = 0;  // decoded samples / rate
  std::string codec;             // the input's codec ("flac", "mp3", "alac", ...)
  std::string container;         // the demuxer that recognised it ("flac", "mov,mp4,m4a,3gp,3g2,mj2", ...)
  int sample_rate = 0;
  int channels = 0;
  std::string channel_layout;  // "stereo", "5.1", ...
  std::int64_t decode_errors = 0;  // packets the decoder refused and skipped (a damaged file)
  // EBU R128, measured on the source's channels (absent for silence or when analysis is off).
  std::optional<double> integrated_lufs;
  std::optional<double> loudness_range_lu;
  std::optional<double> true_peak_dbtp;
  // Waveform: min/max pairs (in [-1, 1]) over equal slices of the track, at most
  // `waveform_points` of them.
  std::vector<std::pair<float, float>> peaks;
};

struct RenditionOutput {
  RenditionSpec spec;
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::int64_t duration_ms = 0;  // samples encoded / output rate
  int sample_rate = 0;
  int channels = 0;
  double encode_cpu_seconds = 0;  // CPU spent in this rendition's encoder and muxer
};

struct TranscodeResult {
  MediaFacts facts;
  std::vector<RenditionOutput> renditions;
  double cpu_seconds = 0;  // every actor's CPU, decode, analysis and fingerprints included
  // One Chromaprint fingerprint per requested speed, in the request's order (empty when none
  // were asked for). A print is empty when the audio is too short to have one (under ~2.6 s).
  std::vector<media::FingerprintItems> fingerprints;
  // CPU of the fingerprinter (every speed) and of the resampling to its 11025 Hz mono input;
  // part of cpu_seconds. 0 when no fingerprint was asked for.
  double fingerprint_cpu_seconds = 0;
};

struct TranscodeRequest {
  std::filesystem::path input;
  std::filesystem::path output_dir;  // must exist
  std::vector<RenditionSpec> renditions;
  std::int64_t max_duration_ms = 0;  // longer audio fails with ResourceExhausted; 0: no limit
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::shared_ptr<const std::atomic<bool>> cancel;  // set to stop early (Cancelled); may be null
  // Called from pool threads with the share of the work done so far (0-1), at most once per chunk,
  // one call at a time, and never once `done` has been called.
  std::function<void(double)> on_progress;
  bool analyze = true;  // loudness and waveform
  std::size_t waveform_points = 1000;
  // Chromaprint speed variants to fingerprint (media::Fingerprinter: 1.0 is the audio as it is,
  // 1.02 undoes a 2 % speed-up); each in [0.5, 2]. Empty: no fingerprint.
  std::vector<double> fingerprint_speeds;
};

// Starts the transcode on `pool` and returns at once; `done` runs on a pool thread when every
// actor has finished. Errors: InvalidArgument for input that is not audio we can read (with
// what was wrong) or a fingerprint speed out of range, Unimplemented for a codec we cannot
// decode, ResourceExhausted past max_duration_ms or when the disk is full, DeadlineExceeded,
// Cancelled, Internal otherwise.
void StartTranscode(boost::asio::thread_pool& pool, TranscodeRequest request,
                    std::function<void(StatusOr<TranscodeResult>)> done);

// StartTranscode, waiting for the result. Never call it from a thread of `pool`.
StatusOr<TranscodeResult> TranscodeAndWait(boost::asio::thread_pool& pool, TranscodeRequest request);

}  // namespace plyr::transcoder

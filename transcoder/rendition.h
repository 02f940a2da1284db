// Renditions: the encodings the transcoder can produce, named so that an API caller can ask for
// them ("mp3-320,opus-64") and a player can pick one.
//
// A name is <format>-<kbps>: mp3 (libmp3lame CBR, 44.1 kHz, MP3 with a Xing/LAME "Info" header),
// aac (FFmpeg's native AAC encoder, 44.1 kHz, M4A with the index first), opus (libopus, 48 kHz,
// Ogg). "wav" (PCM s16le at the source's rate and channels) exists for the drop-in endpoint.
// Every encoded rendition has at most two channels: a 5.1 source is downmixed to stereo.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace plyr::transcoder {

struct RenditionSpec {
  std::string name;          // "mp3-320"
  std::string encoder;       // FFmpeg encoder name: "libmp3lame", "aac", "libopus", "pcm_s16le"
  std::string muxer;         // FFmpeg muxer name: "mp3", "ipod", "ogg", "wav"
  std::string extension;     // "mp3", "m4a", "opus", "wav"
  std::string content_type;  // "audio/mpeg", "audio/mp4", "audio/ogg", "audio/wav"
  std::string codec;         // what players call it: "mp3", "aac", "opus", "pcm_s16le"
  std::int64_t bitrate = 0;  // bits per second; 0 for PCM
  int sample_rate = 0;       // 0: the source's rate
  int max_channels = 2;      // 0: keep every channel
};

// The ladder used when a job names none: mp3-320, mp3-128, aac-256, opus-128, opus-64.
const std::vector<RenditionSpec>& DefaultLadder();
// "mp3-320,opus-64" -> specs, in the given order. Names are <format>-<kbps> with format mp3
// (32-320 kbps), aac (32-320) or opus (6-256), or "wav". InvalidArgument names the bad entry;
// duplicates and an empty list are refused; at most 8 renditions.
StatusOr<std::vector<RenditionSpec>> ParseLadder(std::string_view text);
// One rendition by name (see ParseLadder).
StatusOr<RenditionSpec> ParseRendition(std::string_view name);
// "mp3-320,mp3-128,...": the inverse of ParseLadder.
std::string LadderText(const std::vector<RenditionSpec>& ladder);

}  // namespace plyr::transcoder

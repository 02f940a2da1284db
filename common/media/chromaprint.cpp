#include "common/media/chromaprint.h"

#include <chromaprint.h>

extern "C" {
#include <libavutil/opt.h>
}

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "common/comma_list.h"

#include "common/media/ffmpeg_util.h"
#include "common/media/test2_calculator.h"

namespace plyr::media {

// The items come from our own Test2Calculator (the same items as libchromaprint's, at about half
// its CPU). Audio at another rate, with several channels or for a speed other than 1 reaches it
// through swresample, already at 11025 Hz mono: Chromaprint's built-in resampler costs about three
// times as much for the same items (measured in bench/RESULTS.md); the settings are the ones fpcalc
// gives swresample, so a speed variant's items are the same as when Chromaprint resamples (bit
// error rate under 0.001).
struct Fingerprinter::Context {
  Test2Calculator calculator;
  SwrPtr resampler;  // unless the audio is fed as it is
  std::vector<std::int16_t> resampled;

  // Resamples `samples` (null: flush) and feeds the result.
  Status FeedResampled(const std::int16_t* samples, int frames);
};

void ApplyChromaprintResamplerSettings(SwrContext* swr) {
  av_opt_set_int(swr, "filter_size", 16, 0);
  av_opt_set_int(swr, "phase_shift", 8, 0);
  av_opt_set_double(swr, "cutoff", 0.8, 0);
}

Status Fingerprinter::Context::FeedResampled(const std::int16_t* samples, int frames) {
  const int capacity = swr_get_out_samples(resampler.get(), frames);
  if (capacity < 0) return Status(StatusCode::kInternal, "swr_get_out_samples failed");
  resampled.resize(static_cast<std::size_t>(capacity) + 16);
  auto* out = reinterpret_cast<std::uint8_t*>(resampled.data());
  const auto* in = reinterpret_cast<const std::uint8_t*>(samples);
  const int made = swr_convert(resampler.get(), &out, capacity + 16, samples ? &in : nullptr, frames);
  if (made < 0) return Status(StatusCode::kInternal, "swr_convert failed");
  calculator.Feed({resampled.data(), static_cast<std::size_t>(made)});
  return OkStatus();
}

Fingerprinter::Fingerprinter(std::vector<double> speeds) : speeds_(std::move(speeds)) {
  if (speeds_.empty()) speeds_.push_back(1.0);
  for (double& s : speeds_) s = std::clamp(s, 0.5, 2.0);
  for (std::size_t i = 0; i < speeds_.size(); ++i) contexts_.push_back(std::make_unique<Context>());
}

Fingerprinter::~Fingerprinter() = default;

Status Fingerprinter::Start(int sample_rate, int channels) {
  if (sample_rate < 4000 || sample_rate > 400000 || channels < 1 || channels > 16) {
    return Status(StatusCode::kInvalidArgument, "cannot fingerprint audio at " + std::to_string(sample_rate) +
                                                    " Hz with " + std::to_string(channels) + " channels");
  }
  channels_ = 0;
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    Context& context = *contexts_[i];
    (void)context.calculator.Finish();  // drops what an unfinished run left
    context.resampler.reset();
    if (speeds_[i] == 1.0 && sample_rate == kChromaprintRate && channels == 1) continue;
    // Declaring the rate as R/s makes the resampler stretch the audio by s.
    const int declared = static_cast<int>(std::lround(sample_rate / speeds_[i]));
    AVChannelLayout in_layout, mono = AV_CHANNEL_LAYOUT_MONO;
    av_channel_layout_default(&in_layout, channels);
    SwrContext* swr = nullptr;
    int r = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_S16, kChromaprintRate, &in_layout, AV_SAMPLE_FMT_S16,
                                declared, 0, nullptr);
    av_channel_layout_uninit(&in_layout);
    context.resampler.reset(swr);
    if (r >= 0) ApplyChromaprintResamplerSettings(swr);
    if (r < 0 || swr_init(swr) < 0) return Status(StatusCode::kInternal, "cannot set up a resampler");
  }
  channels_ = channels;
  return OkStatus();
}

Status Fingerprinter::Feed(std::span<const std::int16_t> samples) {
  if (channels_ == 0) return Status(StatusCode::kFailedPrecondition, "Feed before Start");
  if (samples.size() % static_cast<std::size_t>(channels_) != 0) {
    return Status(StatusCode::kInvalidArgument, "a partial sample frame was fed");
  }
  for (auto& context : contexts_) {
    if (!context->resampler) {
      context->calculator.Feed(samples);
      continue;
    }
    // Pieces keep the resampler's output buffer small.
    const std::size_t piece_frames = 1 << 16;
    for (std::size_t frame = 0; frame * channels_ < samples.size(); frame += piece_frames) {
      const std::size_t frames = std::min(piece_frames, samples.size() / channels_ - frame);
      if (auto s = context->FeedResampled(samples.data() + frame * channels_, static_cast<int>(frames)); !s.ok()) {
        return s;
      }
    }
  }
  return OkStatus();
}

StatusOr<std::vector<FingerprintItems>> Fingerprinter::Finish() {
  if (channels_ == 0) return Status(StatusCode::kFailedPrecondition, "Finish before Start");
  channels_ = 0;
  std::vector<FingerprintItems> out;
  for (auto& context : contexts_) {
    if (context->resampler) {
      if (auto s = context->FeedResampled(nullptr, 0); !s.ok()) return s;
    }
    // Empty for audio shorter than about 2.6 s.
    out.push_back(context->calculator.Finish());
  }
  return out;
}

StatusOr<std::vector<double>> ParseSpeedList(std::string_view text) {
  constexpr double kSlowest = 0.8, kFastest = 1.25;
  constexpr std::size_t kMostSpeeds = 8;
  std::vector<double> speeds = {1.0};
  bool listed_one = false;
  for (std::string_view item : SplitCommaList(text)) {
    double speed = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), speed);
    if (ec != std::errc() || end != item.data() + item.size() || !(speed >= kSlowest && speed <= kFastest)) {
      return Status(StatusCode::kInvalidArgument, fmt::format("speed '{}' is not a number in [{}, {}]",
                                                              item.substr(0, 32), kSlowest, kFastest));
    }
    if (speed == 1.0 && !listed_one) {  // already first
      listed_one = true;
      continue;
    }
    if (std::find(speeds.begin(), speeds.end(), speed) != speeds.end()) {
      return Status(StatusCode::kInvalidArgument, fmt::format("speed {} is listed twice", speed));
    }
    speeds.push_back(speed);
  }
  if (speeds.size() > kMostSpeeds) {
    return Status(StatusCode::kInvalidArgument, fmt::format("at most {} speeds", kMostSpeeds));
  }
  return speeds;
}

std::string SpeedListText(const std::vector<double>& speeds) {
  std::string text;
  for (double speed : speeds) text += fmt::format("{}{}", text.empty() ? "" : ",", speed);
  return text;
}

std::string EncodeFingerprint(std::span<const std::uint32_t> items) {
  char* encoded = nullptr;
  int size = 0;
  if (!chromaprint_encode_fingerprint(items.data(), static_cast<int>(items.size()), CHROMAPRINT_ALGORITHM_TEST2,
                                      &encoded, &size, 1)) {
    return {};
  }
  std::string text(encoded, static_cast<std::size_t>(size));
  chromaprint_dealloc(encoded);
  return text;
}

namespace {

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

StatusOr<FingerprintItems> DecodeFingerprint(std::string_view text, std::size_t max_items) {
  auto invalid = [](std::string what) { return Status(StatusCode::kInvalidArgument, std::move(what)); };
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  // The 4-byte header and one 3-bit item code fill 6 characters (fpcalc prints one item in 7).
  if (text.size() < 6) return invalid("the fingerprint is too short to be one");
  for (char c : text) {
    if (Base64UrlValue(c) < 0) return invalid("the fingerprint is not URL-safe base64 (as fpcalc prints it)");
  }
  // The first 4 bytes (6 characters hold 36 bits) are the algorithm and the item count. Checking
  // them here keeps a hostile count from reaching Chromaprint's allocation.
  std::uint64_t bits = 0;
  for (int i = 0; i < 6; ++i) bits = (bits << 6) | static_cast<std::uint64_t>(Base64UrlValue(text[i]));
  const auto header = static_cast<std::uint32_t>(bits >> 4);
  const unsigned algorithm = header >> 24;
  const std::size_t count = header & 0xFFFFFF;
  if (algorithm != CHROMAPRINT_ALGORITHM_TEST2) {
    return invalid("the fingerprint was made with Chromaprint algorithm " + std::to_string(algorithm + 1) +
                   "; only the default (2, as fpcalc makes it) is supported");
  }
  if (count == 0) return invalid("the fingerprint has no items");
  if (count > max_items) {
    return invalid("the fingerprint has " + std::to_string(count) + " items; the limit is " +
                   std::to_string(max_items));
  }
  // Every item takes at least one 3-bit code after the 4-byte header.
  const std::size_t payload_bits = text.size() * 6;
  if (payload_bits < 32 + 3 * count) return invalid("the fingerprint is truncated");

  // Our own decoder rather than chromaprint_decode_fingerprint: libchromaprint 1.5.1 reads out of
  // bounds on some malformed inputs (fuzz/fingerprint_string_fuzz found one). The format, as
  // Chromaprint's FingerprintCompressor writes it after the 4-byte header: for each item, the bit
  // positions set in item XOR previous item, as gaps from the last position (1-based), ended by a
  // 0; each gap packed in 3 bits (7 meaning "7 or more"), little-endian, then for every 7 the rest
  // of the gap in 5 bits.
  std::string bytes;
  bytes.reserve(text.size() * 3 / 4);
  std::uint32_t accumulator = 0;
  int pending_bits = 0;
  for (char c : text) {
    accumulator = (accumulator << 6) | static_cast<std::uint32_t>(Base64UrlValue(c));
    pending_bits += 6;
    if (pending_bits >= 8) {
      pending_bits -= 8;
      bytes.push_back(static_cast<char>((accumulator >> pending_bits) & 0xFF));
    }
  }
  const auto bit_at = [&](std::size_t i) {
    return (static_cast<unsigned char>(bytes[i / 8]) >> (i % 8)) & 1u;
  };
  const auto read = [&](std::size_t first_bit, int width) {
    unsigned v = 0;
    for (int b = 0; b < width; ++b) v |= bit_at(first_bit + static_cast<std::size_t>(b)) << b;
    return v;
  };
  const std::size_t body_bits = (bytes.size() - 4) * 8;
  std::vector<unsigned> gaps;
  std::size_t zeros = 0, exceptional = 0;
  for (std::size_t at = 0; zeros < count; at += 3) {
    if (at + 3 > body_bits) return invalid("the fingerprint is truncated");
    const unsigned gap = read(32 + at, 3);
    gaps.push_back(gap);
    if (gap == 0) ++zeros;
    if (gap == 7) ++exceptional;
  }
  const std::size_t exceptional_start = 32 + (gaps.size() * 3 + 7) / 8 * 8;
  if (exceptional_start + exceptional * 5 > bytes.size() * 8) return invalid("the fingerprint is truncated");
  FingerprintItems items;
  items.reserve(count);
  std::size_t next_exceptional = exceptional_start;
  std::uint32_t value = 0, previous = 0;
  unsigned last_bit = 0;
  for (unsigned gap : gaps) {
    if (gap == 0) {
      previous ^= value;
      items.push_back(previous);
      value = 0;
      last_bit = 0;
      continue;
    }
    if (gap == 7) {
      gap += read(next_exceptional, 5);
      next_exceptional += 5;
    }
    last_bit += gap;
    if (last_bit > 32) return invalid("the fingerprint cannot be decoded (a bit past the 32 of an item)");
    value |= 1u << (last_bit - 1);
  }
  return items;
}

}  // namespace plyr::media

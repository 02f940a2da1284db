#include "transcoder/rendition.h"

#include <charconv>

#include "common/comma_list.h"

namespace plyr::transcoder {

namespace {

constexpr std::size_t kMaxRenditions = 8;

struct Format {
  std::string_view prefix;
  int min_kbps;
  int max_kbps;
  RenditionSpec base;
};

const Format kFormats[] = {
    {"mp3", 32, 320, {"", "libmp3lame", "mp3", "mp3", "audio/mpeg", "mp3", 0, 44100, 2}},
    {"aac", 32, 320, {"", "aac", "ipod", "m4a", "audio/mp4", "aac", 0, 44100, 2}},
    {"opus", 6, 256, {"", "libopus", "ogg", "opus", "audio/ogg", "opus", 0, 48000, 2}},
};

}  // namespace

StatusOr<RenditionSpec> ParseRendition(std::string_view name) {
  if (name == "wav") return RenditionSpec{"wav", "pcm_s16le", "wav", "wav", "audio/wav", "pcm_s16le", 0, 0, 0};
  auto invalid = [&] {
    return Status(StatusCode::kInvalidArgument,
                  "unknown rendition '" + std::string(name.substr(0, 40)) +
                      "': use mp3-<32..320>, aac-<32..320>, opus-<6..256> (kbps) or wav");
  };
  auto dash = name.find('-');
  if (dash == std::string_view::npos) return invalid();
  for (const auto& format : kFormats) {
    if (name.substr(0, dash) != format.prefix) continue;
    std::string_view digits = name.substr(dash + 1);
    int kbps = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), kbps);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || digits.front() == '0' ||
        kbps < format.min_kbps || kbps > format.max_kbps) {
      return invalid();
    }
    RenditionSpec spec = format.base;
    spec.name = std::string(name);
    spec.bitrate = static_cast<std::int64_t>(kbps) * 1000;
    return spec;
  }
  return invalid();
}

StatusOr<std::vector<RenditionSpec>> ParseLadder(std::string_view text) {
  std::vector<RenditionSpec> ladder;
  for (std::string_view item : SplitCommaList(text)) {
    auto spec = ParseRendition(item);
    if (!spec.ok()) return spec.status();
    for (const auto& existing : ladder) {
      if (existing.name == spec->name) {
        return Status(StatusCode::kInvalidArgument, "rendition '" + spec->name + "' is named twice");
      }
    }
    ladder.push_back(std::move(*spec));
    if (ladder.size() > kMaxRenditions) {
      return Status(StatusCode::kInvalidArgument, "at most " + std::to_string(kMaxRenditions) + " renditions");
    }
  }
  if (ladder.empty()) return Status(StatusCode::kInvalidArgument, "the rendition list is empty");
  return ladder;
}

const std::vector<RenditionSpec>& DefaultLadder() {
  static const std::vector<RenditionSpec> ladder = *ParseLadder("mp3-320,mp3-128,aac-256,opus-128,opus-64");
  return ladder;
}

std::string LadderText(const std::vector<RenditionSpec>& ladder) {
  std::string text;
  for (const auto& spec : ladder) text += (text.empty() ? "" : ",") + spec.name;
  return text;
}

}  // namespace plyr::transcoder

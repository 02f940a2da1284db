#include "common/media/chromaprint.h"

#include <chromaprint.h>

#include <algorithm>
#include <cmath>

namespace plyr::media {

struct Fingerprinter::Context {
  ChromaprintContext* handle = nullptr;
  ~Context() {
    if (handle) chromaprint_free(handle);
  }
};

Fingerprinter::Fingerprinter(std::vector<double> speeds) : speeds_(std::move(speeds)) {
  if (speeds_.empty()) speeds_.push_back(1.0);
  for (double& s : speeds_) s = std::clamp(s, 0.5, 2.0);
  for (std::size_t i = 0; i < speeds_.size(); ++i) {
    auto context = std::make_unique<Context>();
    context->handle = chromaprint_new(CHROMAPRINT_ALGORITHM_TEST2);
    contexts_.push_back(std::move(context));
  }
}

Fingerprinter::~Fingerprinter() = default;

Status Fingerprinter::Start(int sample_rate, int channels) {
  if (sample_rate < 4000 || sample_rate > 400000 || channels < 1 || channels > 16) {
    return Status(StatusCode::kInvalidArgument, "cannot fingerprint audio at " + std::to_string(sample_rate) +
                                                    " Hz with " + std::to_string(channels) + " channels");
  }
  channels_ = channels;
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    if (!contexts_[i]->handle) return Status(StatusCode::kResourceExhausted, "out of memory");
    const int declared = static_cast<int>(std::lround(sample_rate / speeds_[i]));
    if (!chromaprint_start(contexts_[i]->handle, declared, channels)) {
      return Status(StatusCode::kInternal, "chromaprint_start failed");
    }
  }
  return OkStatus();
}

Status Fingerprinter::Feed(std::span<const std::int16_t> samples) {
  if (channels_ == 0) return Status(StatusCode::kFailedPrecondition, "Feed before Start");
  while (!samples.empty()) {
    // chromaprint_feed takes an int count; feed in pieces well under INT_MAX.
    const std::size_t piece = std::min<std::size_t>(samples.size(), 1 << 20);
    for (auto& context : contexts_) {
      if (!chromaprint_feed(context->handle, samples.data(), static_cast<int>(piece))) {
        return Status(StatusCode::kInternal, "chromaprint_feed failed");
      }
    }
    samples = samples.subspan(piece);
  }
  return OkStatus();
}

StatusOr<std::vector<FingerprintItems>> Fingerprinter::Finish() {
  if (channels_ == 0) return Status(StatusCode::kFailedPrecondition, "Finish before Start");
  channels_ = 0;
  std::vector<FingerprintItems> out;
  for (auto& context : contexts_) {
    if (!chromaprint_finish(context->handle)) return Status(StatusCode::kInternal, "chromaprint_finish failed");
    std::uint32_t* raw = nullptr;
    int size = 0;
    if (!chromaprint_get_raw_fingerprint(context->handle, &raw, &size)) {
      // Chromaprint fails here when it produced no items (audio shorter than about 2.6 s).
      out.emplace_back();
      continue;
    }
    out.emplace_back(raw, raw + size);
    chromaprint_dealloc(raw);
  }
  return out;
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
  if (text.size() < 8) return invalid("the fingerprint is too short to be one");
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

  std::uint32_t* raw = nullptr;
  int size = 0;
  int decoded_algorithm = -1;
  if (!chromaprint_decode_fingerprint(text.data(), static_cast<int>(text.size()), &raw, &size, &decoded_algorithm,
                                      1) ||
      raw == nullptr) {
    return invalid("the fingerprint cannot be decoded");
  }
  FingerprintItems items(raw, raw + size);
  chromaprint_dealloc(raw);
  if (items.size() != count) return invalid("the fingerprint cannot be decoded");
  return items;
}

}  // namespace plyr::media

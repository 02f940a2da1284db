#include "fingerprint/audio_fingerprint.h"

#include "common/media/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace plyr::fingerprint {

namespace {

using namespace plyr::media;

Status Invalid(std::string what) { return Status(StatusCode::kInvalidArgument, std::move(what)); }

// The decode loop of FFmpeg's doc/examples, feeding resampled blocks to the fingerprinter.
class Decoder {
 public:
  Decoder(const AudioFingerprintOptions& options) : options_(options), fingerprinter_(options.speeds) {}

  StatusOr<AudioFingerprint> Run(const std::filesystem::path& path) {
    if (Status s = Open(path); !s.ok()) return s;
    FramePtr frame(av_frame_alloc());
    PacketPtr packet(av_packet_alloc());
    if (!frame || !packet) return Status(StatusCode::kResourceExhausted, "out of memory");
    bool input_done = false;
    while (true) {
      if (!input_done) {
        int r = av_read_frame(input_.get(), packet.get());
        if (r < 0) {
          input_done = true;
          avcodec_send_packet(decoder_.get(), nullptr);  // drain
        } else {
          if (packet->stream_index == stream_index_) {
            r = avcodec_send_packet(decoder_.get(), packet.get());
            if (r < 0 && r != AVERROR(EAGAIN)) ++result_.decode_errors;  // a damaged packet: skip it
          }
          av_packet_unref(packet.get());
        }
      }
      while (true) {
        int r = avcodec_receive_frame(decoder_.get(), frame.get());
        if (r == AVERROR_EOF || (r == AVERROR(EAGAIN) && input_done)) return Finish();
        if (r == AVERROR(EAGAIN)) break;
        if (r < 0) {
          ++result_.decode_errors;
          break;
        }
        Status s = Consume(*frame);
        av_frame_unref(frame.get());
        if (!s.ok()) return s;
      }
    }
  }

 private:
  Status Open(const std::filesystem::path& path) {
    AVFormatContext* raw = nullptr;
    int r = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
    if (r < 0) {
      if (r == AVERROR_INVALIDDATA) return Invalid("the audio is not a media file FFmpeg recognises");
      return Invalid("cannot read the audio: " + AvErrorText(r));
    }
    input_.reset(raw);
    if ((r = avformat_find_stream_info(raw, nullptr)) < 0) return Invalid("cannot read the audio's streams: " + AvErrorText(r));
    const AVCodec* codec = nullptr;
    r = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (r == AVERROR_STREAM_NOT_FOUND) return Invalid("the file has no audio track");
    if (r == AVERROR_DECODER_NOT_FOUND || (r >= 0 && !codec)) {
      return Status(StatusCode::kUnimplemented, "the audio codec is not supported");
    }
    if (r < 0) return Invalid("cannot find audio in the file: " + AvErrorText(r));
    stream_index_ = r;
    for (unsigned i = 0; i < raw->nb_streams; ++i) {
      if (static_cast<int>(i) != stream_index_) raw->streams[i]->discard = AVDISCARD_ALL;
    }
    decoder_.reset(avcodec_alloc_context3(codec));
    if (!decoder_) return Status(StatusCode::kResourceExhausted, "out of memory");
    avcodec_parameters_to_context(decoder_.get(), raw->streams[stream_index_]->codecpar);
    if ((r = avcodec_open2(decoder_.get(), codec, nullptr)) < 0) {
      return Invalid("cannot open the " + std::string(codec->name) + " decoder: " + AvErrorText(r));
    }
    if (decoder_->sample_rate < 4000 || decoder_->sample_rate > 384000 || decoder_->ch_layout.nb_channels < 1 ||
        decoder_->ch_layout.nb_channels > 16) {
      return Status(StatusCode::kUnimplemented, "audio at " + std::to_string(decoder_->sample_rate) + " Hz with " +
                                                    std::to_string(decoder_->ch_layout.nb_channels) +
                                                    " channels is not supported");
    }
    result_.codec = avcodec_get_name(codec->id);
    // Tags live on the container (MP3, MP4, FLAC) or on the stream (Ogg).
    for (AVDictionary* tags : {raw->metadata, raw->streams[stream_index_]->metadata}) {
      if (const AVDictionaryEntry* e = av_dict_get(tags, "title", nullptr, 0); e && result_.title.empty()) {
        result_.title = std::string(e->value).substr(0, 256);
      }
      if (const AVDictionaryEntry* e = av_dict_get(tags, "artist", nullptr, 0); e && result_.artist.empty()) {
        result_.artist = std::string(e->value).substr(0, 256);
      }
    }
    return fingerprinter_.Start(kChromaprintRate, 1);
  }

  // The first frame fixes the source format; a format change mid-stream is refused.
  Status Consume(const AVFrame& frame) {
    if (!swr_) {
      source_rate_ = frame.sample_rate;
      source_format_ = frame.format;
      source_channels_ = frame.ch_layout.nb_channels;
      AVChannelLayout in_layout{};
      if (frame.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        av_channel_layout_default(&in_layout, frame.ch_layout.nb_channels);
      } else {
        av_channel_layout_copy(&in_layout, &frame.ch_layout);
      }
      AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
      SwrContext* swr = nullptr;
      int r = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_S16, kChromaprintRate, &in_layout,
                                  static_cast<AVSampleFormat>(frame.format), frame.sample_rate, 0, nullptr);
      av_channel_layout_uninit(&in_layout);
      swr_.reset(swr);
      // fpcalc's filter: the same items as fpcalc prints.
      if (r >= 0) media::ApplyChromaprintResamplerSettings(swr);
      if (r < 0 || (r = swr_init(swr)) < 0) {
        return Status(StatusCode::kInternal, "cannot set up a resampler: " + AvErrorText(r));
      }
    }
    if (frame.sample_rate != source_rate_ || frame.format != source_format_ ||
        frame.ch_layout.nb_channels != source_channels_) {
      // A damaged stream can make the decoder lock onto a false frame header of another rate or
      // layout: such frames are skipped, as damaged packets are, rather than failing the file.
      ++result_.decode_errors;
      return OkStatus();
    }
    // Past what was asked for, decoding goes on only to learn the duration.
    const bool wanted =
        options_.max_fingerprint_ms <= 0 || decoded_samples_ * 1000 / source_rate_ < options_.max_fingerprint_ms;
    decoded_samples_ += frame.nb_samples;
    if (options_.max_duration_ms > 0 && decoded_samples_ * 1000 / source_rate_ > options_.max_duration_ms) {
      return Status(StatusCode::kResourceExhausted,
                    "the audio is longer than the limit of " + std::to_string(options_.max_duration_ms / 1000) + " s");
    }
    if (!wanted) return OkStatus();
    return Convert(const_cast<const std::uint8_t**>(frame.extended_data), frame.nb_samples);
  }

  Status Convert(const std::uint8_t** in, int count) {
    const int room = swr_get_out_samples(swr_.get(), count);
    if (room <= 0) return OkStatus();
    buffer_.resize(static_cast<std::size_t>(room));
    auto* out = reinterpret_cast<std::uint8_t*>(buffer_.data());
    const int n = swr_convert(swr_.get(), &out, room, in, count);
    if (n < 0) return Status(StatusCode::kInternal, "resampling failed: " + AvErrorText(n));
    return fingerprinter_.Feed(std::span(buffer_.data(), static_cast<std::size_t>(n)));
  }

  StatusOr<AudioFingerprint> Finish() {
    if (!swr_ || decoded_samples_ == 0) return Invalid("the audio track holds no samples");
    if (Status s = Convert(nullptr, 0); !s.ok()) return s;  // flush the resampler
    auto prints = fingerprinter_.Finish();
    if (!prints.ok()) return prints.status();
    result_.by_speed = std::move(*prints);
    result_.duration_s = static_cast<double>(decoded_samples_) / source_rate_;
    return std::move(result_);
  }

  const AudioFingerprintOptions& options_;
  Fingerprinter fingerprinter_;
  InputFormatPtr input_;
  CodecContextPtr decoder_;
  SwrPtr swr_;
  int stream_index_ = -1;
  int source_rate_ = 0;
  int source_format_ = -1;
  int source_channels_ = 0;
  std::int64_t decoded_samples_ = 0;
  std::vector<std::int16_t> buffer_;
  AudioFingerprint result_;
};

}  // namespace

StatusOr<AudioFingerprint> FingerprintFile(const std::filesystem::path& path, const AudioFingerprintOptions& options) {
  QuietFfmpegLogs();
  Decoder decoder(options);
  return decoder.Run(path);
}

}  // namespace plyr::fingerprint

#include "transcoder/transcode.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <future>
#include <limits>
#include <mutex>

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/comma_list.h"
#include "common/media/chromaprint.h"
#include "common/media/ffmpeg_util.h"
#include "transcoder/avfilter_library.h"
#include "transcoder/chromaprint_input.h"
#include "transcoder/true_peak.h"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
}

namespace plyr::transcoder {

namespace {
using namespace plyr::media;

namespace fs = std::filesystem;

// About a second of audio per actor step: long enough that scheduling costs nothing next to the
// encoding, short enough that the renditions finish close together.
constexpr double kChunkSeconds = 1.0;
// How many chunks the decoder may run ahead of the slowest consumer (bounds memory).
constexpr std::size_t kWindowChunks = 4;
// Frames handed to encoders without a fixed frame size (PCM).
constexpr int kVariableFrameSamples = 4096;
// The waveform is first collected in 10 ms slices, then reduced to the requested points.
constexpr int kPeakSlicesPerSecond = 100;
constexpr int kWorkerNice = 10;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Encoding is batch work: the pool's threads yield to the I/O threads, so a listener answers in
// milliseconds while every core encodes. Linux applies nice per thread.
void LowerThisThreadsPriority() {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kWorkerNice);
}

Status FfmpegFailure(std::string_view what, int error) {
  if (error == AVERROR(ENOSPC) || error == AVERROR(EDQUOT) || error == AVERROR(EFBIG)) {
    return Status(StatusCode::kResourceExhausted, std::string(what) + ": the disk is full");
  }
  if (error == AVERROR(ENOMEM)) return Status(StatusCode::kResourceExhausted, std::string(what) + ": out of memory");
  return Status(StatusCode::kInternal, std::string(what) + ": " + AvErrorText(error));
}

// The PCM layout of frames flowing to a group of consumers.
struct SampleFormat {
  int rate = 0;
  AVChannelLayout layout{};
  AVSampleFormat format = AV_SAMPLE_FMT_NONE;
  bool operator==(const SampleFormat& other) const {
    return rate == other.rate && format == other.format && av_channel_layout_compare(&layout, &other.layout) == 0;
  }
};

FramePtr AllocFrame(const SampleFormat& format, int samples) {
  FramePtr frame(av_frame_alloc());
  if (!frame) return nullptr;
  frame->format = format.format;
  frame->sample_rate = format.rate;
  frame->nb_samples = samples;
  if (av_channel_layout_copy(&frame->ch_layout, &format.layout) < 0) return nullptr;
  if (av_frame_get_buffer(frame.get(), 0) < 0) return nullptr;
  return frame;
}

// A run of converted frames, shared read-only by every consumer of one format.
struct Chunk {
  std::vector<FramePtr> frames;
  bool eof = false;
  double progress = 0;  // share of the input read when the chunk was made
};
using ChunkPtr = std::shared_ptr<const Chunk>;

// An encoder or the analysis: takes chunks in order, one step at a time.
class Consumer {
 public:
  virtual ~Consumer() = default;
  // Processes a chunk; the eof chunk finishes the output.
  virtual Status Consume(const Chunk& chunk) = 0;

  std::size_t branch = 0;  // which format it consumes
  // Consumed in the decoder's own step, right after each chunk is decoded, rather than as a step
  // of its own: for light work on the decoded frames themselves, which are then still in this
  // core's cache (the fingerprint stage takes about 8 % less CPU so; bench/RESULTS.md).
  bool with_decoder = false;
  // Scheduling state, guarded by the pipeline's mutex.
  std::deque<ChunkPtr> inbox;
  bool scheduled = false;
  bool finished = false;
  double progress = 0;
  double cpu_seconds = 0;  // touched only by the running step
};

// One rendition: FIFO re-framing, the encoder and the muxer writing a real (seekable) file, so
// the MP3 muxer can go back for its Xing/LAME header and the MP4 muxer can move its index first.
class Encoder final : public Consumer {
 public:
  static StatusOr<std::unique_ptr<Encoder>> Create(const RenditionSpec& spec, const fs::path& path,
                                                   const AVChannelLayout& source_layout, int source_rate) {
    std::unique_ptr<Encoder> e(new Encoder());
    e->output_.spec = spec;
    e->output_.path = path;
    const AVCodec* codec = avcodec_find_encoder_by_name(spec.encoder.c_str());
    if (!codec) return Status(StatusCode::kUnimplemented, "this build of FFmpeg has no " + spec.encoder + " encoder");
    e->codec_.reset(avcodec_alloc_context3(codec));
    if (!e->codec_) return Status(StatusCode::kResourceExhausted, "out of memory");
    AVCodecContext* c = e->codec_.get();

    // Sample format: planar float where the encoder takes it (LAME, AAC), else what it offers.
    AVSampleFormat format = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_S16;
    for (const AVSampleFormat* f = codec->sample_fmts; f && *f != AV_SAMPLE_FMT_NONE; ++f) {
      if (*f == AV_SAMPLE_FMT_FLTP || (*f == AV_SAMPLE_FMT_FLT && format != AV_SAMPLE_FMT_FLTP)) format = *f;
    }
    // Rate: the spec's, or the source's; an encoder that cannot take it gets the nearest
    // higher rate it supports (libopus takes only 8/12/16/24/48 kHz).
    int rate = spec.sample_rate > 0 ? spec.sample_rate : source_rate;
    if (codec->supported_samplerates) {
      int higher = 0, highest = 0;
      bool supported = false;
      for (const int* r = codec->supported_samplerates; *r; ++r) {
        supported = supported || *r == rate;
        if (*r > rate && (higher == 0 || *r < higher)) higher = *r;
        highest = std::max(highest, *r);
      }
      if (!supported) rate = higher ? higher : highest;
    }
    const int channels = spec.max_channels > 0 ? std::min(source_layout.nb_channels, spec.max_channels)
                                               : source_layout.nb_channels;
    // Encoded renditions are mono or stereo; PCM keeps the source's layout.
    if (spec.max_channels == 0) {
      av_channel_layout_copy(&c->ch_layout, &source_layout);
    } else {
      av_channel_layout_default(&c->ch_layout, channels);
    }
    c->sample_fmt = format;
    c->sample_rate = rate;
    c->bit_rate = spec.bitrate;
    c->time_base = AVRational{1, rate};

    AVFormatContext* raw_output = nullptr;
    int r = avformat_alloc_output_context2(&raw_output, nullptr, spec.muxer.c_str(), path.c_str());
    if (r < 0) return FfmpegFailure("cannot create the " + spec.muxer + " muxer", r);
    e->output_format_.reset(raw_output);
    if (raw_output->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    if ((r = avcodec_open2(c, codec, nullptr)) < 0) return FfmpegFailure("cannot open the " + spec.encoder + " encoder", r);
    e->frame_samples_ = (codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) || c->frame_size <= 0
                            ? kVariableFrameSamples
                            : c->frame_size;

    AVStream* stream = avformat_new_stream(raw_output, nullptr);
    if (!stream) return Status(StatusCode::kResourceExhausted, "out of memory");
    stream->time_base = c->time_base;
    if ((r = avcodec_parameters_from_context(stream->codecpar, c)) < 0) return FfmpegFailure("codec parameters", r);
    if ((r = avio_open(&raw_output->pb, path.c_str(), AVIO_FLAG_WRITE)) < 0) {
      return FfmpegFailure("cannot create " + path.filename().string(), r);
    }
    AVDictionary* options = nullptr;
    if (spec.muxer == "ipod" || spec.muxer == "mp4") av_dict_set(&options, "movflags", "+faststart", 0);
    r = avformat_write_header(raw_output, &options);
    av_dict_free(&options);
    if (r < 0) return FfmpegFailure("cannot write the " + spec.muxer + " header", r);

    e->format_.rate = rate;
    e->format_.format = format;
    av_channel_layout_copy(&e->format_.layout, &c->ch_layout);
    e->fifo_.reset(av_audio_fifo_alloc(format, channels, e->frame_samples_ * 2));
    e->packet_.reset(av_packet_alloc());
    if (!e->fifo_ || !e->packet_) return Status(StatusCode::kResourceExhausted, "out of memory");
    return e;
  }

  ~Encoder() override { av_channel_layout_uninit(&format_.layout); }

  // The PCM this encoder wants; encoders wanting the same share one resampler.
  const SampleFormat& format() const { return format_; }
  const RenditionOutput& output() const { return output_; }

  Status Consume(const Chunk& chunk) override {
    for (const auto& frame : chunk.frames) {
      if (av_audio_fifo_write(fifo_.get(), reinterpret_cast<void**>(frame->extended_data), frame->nb_samples) <
          frame->nb_samples) {
        return Status(StatusCode::kResourceExhausted, "out of memory");
      }
      while (av_audio_fifo_size(fifo_.get()) >= frame_samples_) {
        if (auto s = EncodeFromFifo(frame_samples_); !s.ok()) return s;
      }
    }
    if (!chunk.eof) return OkStatus();
    // Only the last frame may be short (the encoders declare AV_CODEC_CAP_SMALL_LAST_FRAME).
    if (int rest = av_audio_fifo_size(fifo_.get()); rest > 0) {
      if (auto s = EncodeFromFifo(rest); !s.ok()) return s;
    }
    if (auto s = Send(nullptr); !s.ok()) return s;
    AVFormatContext* out = output_format_.get();
    if (int r = av_write_trailer(out); r < 0) return FfmpegFailure("cannot finish " + output_.spec.name, r);
    if (int r = avio_closep(&out->pb); r < 0) return FfmpegFailure("cannot close " + output_.spec.name, r);
    struct stat st {};
    if (::stat(output_.path.c_str(), &st) != 0) return Status(StatusCode::kInternal, "output vanished");
    output_.size = static_cast<std::uint64_t>(st.st_size);
    output_.sample_rate = format_.rate;
    output_.channels = format_.layout.nb_channels;
    output_.duration_ms = samples_ * 1000 / format_.rate;
    output_.encode_cpu_seconds = cpu_seconds;
    return OkStatus();
  }

 private:
  Encoder() = default;

  Status EncodeFromFifo(int samples) {
    if (!frame_ || frame_->nb_samples != samples) {
      frame_ = AllocFrame(format_, samples);
      if (!frame_) return Status(StatusCode::kResourceExhausted, "out of memory");
    } else if (av_frame_make_writable(frame_.get()) < 0) {
      return Status(StatusCode::kResourceExhausted, "out of memory");
    }
    if (av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(frame_->extended_data), samples) < samples) {
      return Status(StatusCode::kInternal, "audio FIFO underrun");
    }
    frame_->pts = samples_;  // our own sample count: decoder timestamps do not survive resampling
    samples_ += samples;
    return Send(frame_.get());
  }

  // Sends a frame (nullptr: flush) and writes every packet the encoder has ready.
  Status Send(const AVFrame* frame) {
    int r = avcodec_send_frame(codec_.get(), frame);
    if (r < 0) return FfmpegFailure(output_.spec.encoder + " refused a frame", r);
    for (;;) {
      r = avcodec_receive_packet(codec_.get(), packet_.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return OkStatus();
      if (r < 0) return FfmpegFailure(output_.spec.encoder + " failed", r);
      AVStream* stream = output_format_->streams[0];
      av_packet_rescale_ts(packet_.get(), codec_->time_base, stream->time_base);
      packet_->stream_index = 0;
      if ((r = av_interleaved_write_frame(output_format_.get(), packet_.get())) < 0) {
        return FfmpegFailure("cannot write " + output_.spec.name, r);
      }
    }
  }

  RenditionOutput output_;
  SampleFormat format_;
  CodecContextPtr codec_;
  OutputFormatPtr output_format_;
  FifoPtr fifo_;
  PacketPtr packet_;
  FramePtr frame_;
  int frame_samples_ = 0;
  std::int64_t samples_ = 0;
};

// Loudness (EBU R128 through libavfilter's ebur128) and the waveform, from packed float samples
// at 48 kHz with the source's channels.
class Analyzer final : public Consumer {
 public:
  static StatusOr<std::unique_ptr<Analyzer>> Create(const SampleFormat& format) {
    std::unique_ptr<Analyzer> a(new Analyzer());
    a->channels_ = format.layout.nb_channels;
    a->slice_samples_ = std::max(1, format.rate / kPeakSlicesPerSecond);
    auto library = AvfilterLibrary::Get();
    if (!library.ok()) return library.status();
    const AvfilterLibrary& filters = **library;
    a->filters_ = &filters;
    a->graph_ = FilterGraphPtr(filters.graph_alloc(), FilterGraphDeleter{&filters});
    if (!a->graph_) return Status(StatusCode::kResourceExhausted, "out of memory");
    char layout[128];
    av_channel_layout_describe(&format.layout, layout, sizeof layout);
    const std::string args = "time_base=1/" + std::to_string(format.rate) + ":sample_rate=" +
                             std::to_string(format.rate) + ":sample_fmt=flt:channel_layout=" + layout;
    AVFilterContext* r128 = nullptr;
    int r = filters.graph_create_filter(&a->source_, filters.get_by_name("abuffer"), "in", args.c_str(), nullptr,
                                        a->graph_.get());
    if (r >= 0) {
      // Integrated loudness and range only: the true peak is TruePeakMeter's (true_peak.h says why).
      r = filters.graph_create_filter(&r128, filters.get_by_name("ebur128"), "r128", "peak=none:metadata=1", nullptr,
                                      a->graph_.get());
    }
    if (r >= 0) {
      r = filters.graph_create_filter(&a->sink_, filters.get_by_name("abuffersink"), "out", nullptr, nullptr,
                                      a->graph_.get());
    }
    if (r >= 0) r = filters.link(a->source_, 0, r128, 0);
    if (r >= 0) r = filters.link(r128, 0, a->sink_, 0);
    if (r >= 0) r = filters.graph_config(a->graph_.get(), nullptr);
    if (r < 0) return FfmpegFailure("cannot set up the loudness meter", r);
    a->out_.reset(av_frame_alloc());
    if (!a->out_) return Status(StatusCode::kResourceExhausted, "out of memory");
    a->true_peak_ = std::make_unique<TruePeakMeter>(a->channels_);
    return a;
  }

  Status Consume(const Chunk& chunk) override {
    for (const auto& frame : chunk.frames) {
      CollectPeaks(reinterpret_cast<const float*>(frame->data[0]), frame->nb_samples);
      true_peak_->Add(reinterpret_cast<const float*>(frame->data[0]), frame->nb_samples);
      FramePtr copy(av_frame_clone(frame.get()));
      if (!copy) return Status(StatusCode::kResourceExhausted, "out of memory");
      copy->pts = samples_;
      samples_ += frame->nb_samples;
      if (int r = filters_->buffersrc_add_frame(source_, copy.get()); r < 0) return FfmpegFailure("loudness meter", r);
      if (auto s = Drain(); !s.ok()) return s;
    }
    if (chunk.eof) {
      if (int r = filters_->buffersrc_add_frame(source_, nullptr); r < 0) return FfmpegFailure("loudness meter", r);
      if (auto s = Drain(); !s.ok()) return s;
      if (slice_fill_ > 0) slices_.push_back({slice_min_, slice_max_});
    }
    return OkStatus();
  }

  // Fills the loudness figures and the waveform reduced to `points` pairs.
  void Report(MediaFacts& facts, std::size_t points) const {
    // -70 LUFS is the meter's absolute gate: nothing above it was heard (silence).
    if (integrated_ && *integrated_ > -70.0) {
      facts.integrated_lufs = *integrated_;
      if (range_) facts.loudness_range_lu = *range_;
    }
    if (true_peak_->peak() > 0) facts.true_peak_dbtp = 20.0 * std::log10(true_peak_->peak());
    facts.peaks.clear();
    if (points == 0 || slices_.empty()) return;
    const std::size_t n = std::min(points, slices_.size());
    facts.peaks.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t begin = i * slices_.size() / n, end = (i + 1) * slices_.size() / n;
      float lo = 0, hi = 0;
      for (std::size_t j = begin; j < end; ++j) {
        lo = std::min(lo, slices_[j].first);
        hi = std::max(hi, slices_[j].second);
      }
      facts.peaks.emplace_back(lo, hi);
    }
  }

 private:
  Analyzer() = default;

  void CollectPeaks(const float* samples, int count) {
    for (int i = 0; i < count; ++i) {
      for (int ch = 0; ch < channels_; ++ch) {
        const float v = samples[static_cast<std::size_t>(i) * channels_ + ch];
        slice_min_ = std::min(slice_min_, v);
        slice_max_ = std::max(slice_max_, v);
      }
      if (++slice_fill_ == slice_samples_) {
        slices_.push_back({std::max(slice_min_, -1.0f), std::min(slice_max_, 1.0f)});
        slice_min_ = slice_max_ = 0;
        slice_fill_ = 0;
      }
    }
  }

  // Pulls the meter's output; each frame at a 100 ms block boundary carries the figures so far.
  Status Drain() {
    for (;;) {
      int r = filters_->buffersink_get_frame(sink_, out_.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return OkStatus();
      if (r < 0) return FfmpegFailure("loudness meter", r);
      auto read = [&](const char* key, std::optional<double>& into) {
        if (const AVDictionaryEntry* e = av_dict_get(out_->metadata, key, nullptr, 0)) into = std::strtod(e->value, nullptr);
      };
      read("lavfi.r128.I", integrated_);
      read("lavfi.r128.LRA", range_);
      av_frame_unref(out_.get());
    }
  }

  int channels_ = 0;
  const AvfilterLibrary* filters_ = nullptr;
  FilterGraphPtr graph_;
  AVFilterContext* source_ = nullptr;  // owned by graph_
  AVFilterContext* sink_ = nullptr;    // owned by graph_
  FramePtr out_;
  std::int64_t samples_ = 0;
  std::optional<double> integrated_, range_;
  std::unique_ptr<TruePeakMeter> true_peak_;
  int slice_samples_ = 1;
  int slice_fill_ = 0;
  float slice_min_ = 0, slice_max_ = 0;
  std::vector<std::pair<float, float>> slices_;
};

// Chromaprint fingerprints of the audio, one per requested speed. It takes the decoded frames as
// they are and makes Chromaprint's input itself (ChromaprintInput), in its own steps.
class FingerprintConsumer final : public Consumer {
 public:
  static StatusOr<std::unique_ptr<FingerprintConsumer>> Create(std::vector<double> speeds, int rate,
                                                               AVSampleFormat format, int channels) {
    auto input = ChromaprintInput::Create(rate, format, channels);
    if (!input.ok()) return input.status();
    std::unique_ptr<FingerprintConsumer> f(new FingerprintConsumer(std::move(speeds), std::move(*input)));
    if (auto s = f->fingerprinter_.Start(kChromaprintRate, 1); !s.ok()) return s;
    return f;
  }

  Status Consume(const Chunk& chunk) override {
    samples_.clear();
    for (const auto& frame : chunk.frames) input_.Convert(*frame, &samples_);
    if (chunk.eof) input_.Finish(&samples_);
    if (auto s = fingerprinter_.Feed(samples_); !s.ok()) return s;
    if (!chunk.eof) return OkStatus();
    auto prints = fingerprinter_.Finish();
    if (!prints.ok()) return prints.status();
    prints_ = std::move(*prints);
    return OkStatus();
  }

  std::vector<FingerprintItems> TakePrints() { return std::move(prints_); }

 private:
  FingerprintConsumer(std::vector<double> speeds, ChromaprintInput input)
      : input_(std::move(input)), fingerprinter_(std::move(speeds)) {}

  ChromaprintInput input_;
  Fingerprinter fingerprinter_;
  std::vector<std::int16_t> samples_;
  std::vector<FingerprintItems> prints_;
};

// One output format and the resampler that makes it from the decoded audio; without a resampler,
// the decoded frames themselves.
struct Branch {
  SampleFormat format;
  SwrPtr swr;
  std::shared_ptr<Chunk> pending;
  ~Branch() { av_channel_layout_uninit(&format.layout); }
};

class Pipeline : public std::enable_shared_from_this<Pipeline> {
 public:
  Pipeline(boost::asio::thread_pool& pool, TranscodeRequest request,
           std::function<void(StatusOr<TranscodeResult>)> done)
      : pool_(pool), request_(std::move(request)), done_(std::move(done)) {}

  ~Pipeline() { av_channel_layout_uninit(&source_layout_); }

  void Start() {
    boost::asio::post(pool_, [self = shared_from_this()] { self->DecodeStep(); });
  }

 private:
  // -------------------------------------------------------------------------------------------
  // Set-up (the first decoder step)

  Status Open() {
    AVFormatContext* raw = nullptr;
    int r = avformat_open_input(&raw, request_.input.c_str(), nullptr, nullptr);
    if (r < 0) {
      if (r == AVERROR_INVALIDDATA) {
        return Status(StatusCode::kInvalidArgument, "the upload is not a media file FFmpeg recognises");
      }
      return Status(StatusCode::kInvalidArgument, "cannot read the upload: " + AvErrorText(r));
    }
    input_.reset(raw);
    if ((r = avformat_find_stream_info(raw, nullptr)) < 0) {
      return Status(StatusCode::kInvalidArgument, "cannot read the upload's streams: " + AvErrorText(r));
    }
    const AVCodec* decoder = nullptr;
    r = av_find_best_stream(raw, AVMEDIA_TYPE_AUDIO, -1, -1, &decoder, 0);
    if (r == AVERROR_STREAM_NOT_FOUND) {
      return Status(StatusCode::kInvalidArgument, "the upload has no audio track");
    }
    if (r == AVERROR_DECODER_NOT_FOUND || (r >= 0 && !decoder)) {
      return Status(StatusCode::kUnimplemented, "the upload's audio codec is not supported");
    }
    if (r < 0) return Status(StatusCode::kInvalidArgument, "cannot find audio in the upload: " + AvErrorText(r));
    stream_index_ = r;
    for (unsigned i = 0; i < raw->nb_streams; ++i) {
      if (static_cast<int>(i) != stream_index_) raw->streams[i]->discard = AVDISCARD_ALL;
    }
    decoder_.reset(avcodec_alloc_context3(decoder));
    if (!decoder_) return Status(StatusCode::kResourceExhausted, "out of memory");
    avcodec_parameters_to_context(decoder_.get(), raw->streams[stream_index_]->codecpar);
    if ((r = avcodec_open2(decoder_.get(), decoder, nullptr)) < 0) {
      return Status(StatusCode::kInvalidArgument, "cannot open the " + std::string(decoder->name) +
                                                      " decoder: " + AvErrorText(r));
    }
    if (decoder_->sample_rate <= 0 || decoder_->ch_layout.nb_channels <= 0) {
      return Status(StatusCode::kInvalidArgument, "the audio track has no sample rate or channels");
    }
    if (decoder_->sample_rate < 8000 || decoder_->sample_rate > 384000 || decoder_->ch_layout.nb_channels > 16) {
      return Status(StatusCode::kUnimplemented,
                    "audio at " + std::to_string(decoder_->sample_rate) + " Hz with " +
                        std::to_string(decoder_->ch_layout.nb_channels) + " channels is not supported");
    }
    facts_.codec = avcodec_get_name(decoder->id);  // "mp3", not the decoder's name "mp3float"
    facts_.container = raw->iformat->name;
    struct stat st {};
    if (::stat(request_.input.c_str(), &st) == 0) input_size_ = static_cast<std::uint64_t>(st.st_size);
    packet_.reset(av_packet_alloc());
    decoded_.reset(av_frame_alloc());
    if (!packet_ || !decoded_) return Status(StatusCode::kResourceExhausted, "out of memory");
    return OkStatus();
  }

  // The decoder's first frame fixes the source format; branches and consumers are made from it.
  Status SetUpConsumers(const AVFrame& first) {
    source_rate_ = first.sample_rate;
    source_format_ = static_cast<AVSampleFormat>(first.format);
    if (first.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
      av_channel_layout_default(&source_layout_, first.ch_layout.nb_channels);  // e.g. WAV without a mask
    } else {
      av_channel_layout_copy(&source_layout_, &first.ch_layout);
    }
    facts_.sample_rate = source_rate_;
    facts_.channels = source_layout_.nb_channels;
    char layout[128];
    av_channel_layout_describe(&source_layout_, layout, sizeof layout);
    facts_.channel_layout = layout;

    // Attaches a consumer to the branch making `format`, or, with `as_decoded`, to the branch that
    // hands out the decoded frames themselves.
    auto attach = [&](Consumer& consumer, const SampleFormat& format, bool as_decoded = false) -> Status {
      for (std::size_t i = 0; i < branches_.size(); ++i) {
        if (as_decoded ? !branches_[i]->swr : (branches_[i]->swr && branches_[i]->format == format)) {
          consumer.branch = i;
          return OkStatus();
        }
      }
      auto branch = std::make_unique<Branch>();
      consumer.branch = branches_.size();
      if (as_decoded) {
        branches_.push_back(std::move(branch));
        return OkStatus();
      }
      branch->format.rate = format.rate;
      branch->format.format = format.format;
      av_channel_layout_copy(&branch->format.layout, &format.layout);
      SwrContext* swr = nullptr;
      int r = swr_alloc_set_opts2(&swr, &branch->format.layout, format.format, format.rate, &source_layout_, source_format_,
                                  source_rate_, 0, nullptr);
      branch->swr.reset(swr);
      if (r < 0 || (r = swr_init(swr)) < 0) return FfmpegFailure("cannot set up a resampler", r);
      branches_.push_back(std::move(branch));
      return OkStatus();
    };

    for (const auto& spec : request_.renditions) {
      auto encoder = Encoder::Create(spec, request_.output_dir / (spec.name + "." + spec.extension), source_layout_,
                                     source_rate_);
      if (!encoder.ok()) return encoder.status();
      if (auto s = attach(**encoder, (*encoder)->format()); !s.ok()) return s;
      encoders_.push_back(encoder->get());
      consumers_.push_back(std::move(*encoder));
    }
    if (request_.analyze) {
      // Packed float at 48 kHz: the rate the loudness meter works at (it would resample anything
      // else itself), and the format Opus takes, so a mono or stereo source shares one resampler
      // with the Opus renditions.
      SampleFormat analysis;
      analysis.rate = 48000;
      analysis.format = AV_SAMPLE_FMT_FLT;
      av_channel_layout_copy(&analysis.layout, &source_layout_);
      auto analyzer = Analyzer::Create(analysis);
      if (!analyzer.ok()) {
        av_channel_layout_uninit(&analysis.layout);
        return analyzer.status();
      }
      Status s = attach(**analyzer, analysis);
      av_channel_layout_uninit(&analysis.layout);
      if (!s.ok()) return s;
      analyzer_ = analyzer->get();
      consumers_.push_back(std::move(*analyzer));
    }
    if (!request_.fingerprint_speeds.empty()) {
      auto fingerprint = FingerprintConsumer::Create(request_.fingerprint_speeds, source_rate_, source_format_,
                                                     source_layout_.nb_channels);
      if (!fingerprint.ok()) return fingerprint.status();
      if (auto s = attach(**fingerprint, SampleFormat{}, /*as_decoded=*/true); !s.ok()) return s;
      (*fingerprint)->with_decoder = true;
      fingerprint_ = fingerprint->get();
      consumers_.push_back(std::move(*fingerprint));
    }
    if (consumers_.empty()) return Status(StatusCode::kInvalidArgument, "nothing to produce");
    return OkStatus();
  }

  // -------------------------------------------------------------------------------------------
  // Decoding

  // Converts a decoded frame into every branch's format.
  Status Distribute(const AVFrame& frame) {
    if (frame.sample_rate != source_rate_ || frame.format != source_format_ ||
        frame.ch_layout.nb_channels != source_layout_.nb_channels) {
      return Status(StatusCode::kUnimplemented, "the audio format changes in the middle of the track");
    }
    for (auto& branch : branches_) {
      if (!branch->swr) {
        FramePtr copy(av_frame_clone(&frame));  // a new reference to the same buffers
        if (!copy) return Status(StatusCode::kResourceExhausted, "out of memory");
        branch->pending->frames.push_back(std::move(copy));
        continue;
      }
      const int room = swr_get_out_samples(branch->swr.get(), frame.nb_samples);
      if (room <= 0) continue;
      FramePtr out = AllocFrame(branch->format, room);
      if (!out) return Status(StatusCode::kResourceExhausted, "out of memory");
      const int n = swr_convert(branch->swr.get(), out->extended_data, room,
                                const_cast<const std::uint8_t**>(frame.extended_data), frame.nb_samples);
      if (n < 0) return FfmpegFailure("resampling failed", n);
      if (n == 0) continue;
      out->nb_samples = n;
      branch->pending->frames.push_back(std::move(out));
    }
    return OkStatus();
  }

  // Empties the resamplers' delay lines at the end of the input.
  Status FlushBranches() {
    for (auto& branch : branches_) {
      if (!branch->swr) continue;
      for (;;) {
        const int room = swr_get_out_samples(branch->swr.get(), 0);
        if (room <= 0) break;
        FramePtr out = AllocFrame(branch->format, room);
        if (!out) return Status(StatusCode::kResourceExhausted, "out of memory");
        const int n = swr_convert(branch->swr.get(), out->extended_data, room, nullptr, 0);
        if (n < 0) return FfmpegFailure("resampling failed", n);
        if (n == 0) break;
        out->nb_samples = n;
        branch->pending->frames.push_back(std::move(out));
      }
    }
    return OkStatus();
  }

  // Decodes about kChunkSeconds of audio into the branches' pending chunks.
  Status DecodeChunk(bool* eof) {
    const std::int64_t limit_samples =
        request_.max_duration_ms > 0 && source_rate_ > 0 ? request_.max_duration_ms * source_rate_ / 1000 : 0;
    std::int64_t decoded_now = 0;
    for (;;) {
      for (;;) {
        int r = avcodec_receive_frame(decoder_.get(), decoded_.get());
        if (r == AVERROR(EAGAIN)) break;
        if (r == AVERROR_EOF) {
          if (total_samples_ == 0) {
            return Status(StatusCode::kInvalidArgument,
                          facts_.decode_errors > 0 ? "no audio in the upload could be decoded (the file is damaged)"
                                                   : "the upload contains no audio samples");
          }
          *eof = true;
          return FlushBranches();
        }
        if (r < 0) {
          ++facts_.decode_errors;
          break;
        }
        if (consumers_.empty()) {
          if (auto s = SetUpConsumers(*decoded_); !s.ok()) return s;
          for (auto& branch : branches_) branch->pending = std::make_shared<Chunk>();
        }
        Status s = Distribute(*decoded_);
        total_samples_ += decoded_->nb_samples;
        decoded_now += decoded_->nb_samples;
        av_frame_unref(decoded_.get());
        if (!s.ok()) return s;
        if (limit_samples > 0 && total_samples_ > limit_samples) {
          return Status(StatusCode::kResourceExhausted,
                        "the audio is longer than the limit of " + std::to_string(request_.max_duration_ms / 1000) + " s");
        }
      }
      if (source_rate_ > 0 && decoded_now >= static_cast<std::int64_t>(source_rate_ * kChunkSeconds)) return OkStatus();
      if (input_eof_) {
        // The decoder was flushed; receive_frame will report EOF. Guard against a decoder that
        // keeps answering EAGAIN after the flush.
        if (++flush_spins_ > 2) {
          *eof = true;
          if (total_samples_ == 0) return Status(StatusCode::kInvalidArgument, "the upload contains no audio samples");
          return FlushBranches();
        }
        continue;
      }
      int r = av_read_frame(input_.get(), packet_.get());
      if (r < 0) {
        // End of file, or a file cut short: decode what arrived.
        if (r != AVERROR_EOF) ++facts_.decode_errors;
        input_eof_ = true;
        avcodec_send_packet(decoder_.get(), nullptr);
        continue;
      }
      if (packet_->stream_index == stream_index_) {
        r = avcodec_send_packet(decoder_.get(), packet_.get());
        if (r < 0 && r != AVERROR(EAGAIN)) ++facts_.decode_errors;  // a damaged packet: skip it
      }
      av_packet_unref(packet_.get());
    }
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling

  std::size_t MaxBacklogLocked() const {
    std::size_t most = 0;
    for (const auto& c : consumers_) {
      if (!c->finished) most = std::max(most, c->inbox.size());
    }
    return most;
  }

  void FailLocked(Status status) {
    if (failure_.ok()) failure_ = std::move(status);
    if (decoder_parked_) {
      decoder_parked_ = false;
      boost::asio::post(pool_, [self = shared_from_this()] { self->DecodeStep(); });
    }
  }

  Status StopReason() const {
    if (request_.cancel && request_.cancel->load()) return Status(StatusCode::kCancelled, "the job was cancelled");
    if (std::chrono::steady_clock::now() > request_.deadline) {
      return Status(StatusCode::kDeadlineExceeded, "the job ran past its time limit");
    }
    return OkStatus();
  }

  void ScheduleLocked(std::size_t index) {
    auto& c = *consumers_[index];
    if (c.scheduled || c.finished) return;
    c.scheduled = true;
    boost::asio::post(pool_, [self = shared_from_this(), index] { self->ConsumeStep(index); });
  }

  void DecodeStep() {
    LowerThisThreadsPriority();
    const double cpu_start = ThreadCpuSeconds();
    Status status = StopReason();
    bool eof = false;
    {
      std::lock_guard lock(mutex_);
      if (!failure_.ok()) status = failure_;
    }
    if (status.ok() && !input_) status = Open();
    if (status.ok()) status = DecodeChunk(&eof);
    decode_cpu_ += ThreadCpuSeconds() - cpu_start;

    std::vector<ChunkPtr> chunks;
    const double progress =
        input_ && input_size_ > 0 ? std::clamp(static_cast<double>(avio_tell(input_->pb)) / input_size_, 0.0, 1.0) : 0;
    for (auto& branch : branches_) {
      auto chunk = std::exchange(branch->pending, std::make_shared<Chunk>());
      chunk->eof = eof;
      chunk->progress = eof ? 1.0 : progress;
      chunks.push_back(std::move(chunk));
    }

    // The consumers that run with the decoder; only this step touches them until they finish.
    // (`status` already carries a failure recorded before this step.)
    for (std::size_t i = 0; status.ok() && i < consumers_.size(); ++i) {
      Consumer& c = *consumers_[i];
      if (!c.with_decoder) continue;
      const double consumer_cpu_start = ThreadCpuSeconds();
      status = c.Consume(*chunks[c.branch]);
      c.cpu_seconds += ThreadCpuSeconds() - consumer_cpu_start;
    }

    bool complete = false;
    {
      std::lock_guard lock(mutex_);
      if (!status.ok()) FailLocked(status);
      decoder_parked_ = false;
      if (!failure_.ok()) {
        // Stop: every consumer still running gets an end marker, so each retires.
        auto stop = std::make_shared<Chunk>();
        stop->eof = true;
        for (std::size_t i = 0; i < consumers_.size(); ++i) {
          if (consumers_[i]->with_decoder) {
            consumers_[i]->finished = true;
            continue;
          }
          consumers_[i]->inbox.push_back(stop);
          ScheduleLocked(i);
        }
        decoder_done_ = true;
      } else {
        for (std::size_t i = 0; i < consumers_.size(); ++i) {
          Consumer& c = *consumers_[i];
          if (c.with_decoder) {
            c.progress = chunks[c.branch]->progress;
            c.finished = eof;
            continue;
          }
          c.inbox.push_back(chunks[c.branch]);
          ScheduleLocked(i);
        }
        if (eof) {
          decoder_done_ = true;
        } else if (MaxBacklogLocked() < kWindowChunks) {
          boost::asio::post(pool_, [self = shared_from_this()] { self->DecodeStep(); });
        } else {
          decoder_parked_ = true;
        }
      }
      complete = CompleteLocked();
    }
    if (complete) Finish();
  }

  void ConsumeStep(std::size_t index) {
    LowerThisThreadsPriority();
    Consumer& c = *consumers_[index];
    ChunkPtr chunk;
    bool stopping = false;
    {
      std::lock_guard lock(mutex_);
      if (c.inbox.empty()) {
        c.scheduled = false;
        return;
      }
      chunk = std::move(c.inbox.front());
      c.inbox.pop_front();
      stopping = !failure_.ok();
    }
    Status status = stopping ? OkStatus() : StopReason();
    if (!stopping && status.ok()) {
      const double cpu_start = ThreadCpuSeconds();
      status = c.Consume(*chunk);
      c.cpu_seconds += ThreadCpuSeconds() - cpu_start;
    }
    bool complete = false;
    double progress = 1.0;
    {
      std::lock_guard lock(mutex_);
      if (!status.ok()) FailLocked(status);
      if (chunk->eof || !failure_.ok()) {
        c.finished = true;
        c.inbox.clear();
      }
      c.progress = chunk->progress;
      for (const auto& other : consumers_) progress = std::min(progress, other->progress);
      if (decoder_parked_ && MaxBacklogLocked() < kWindowChunks) {
        decoder_parked_ = false;
        boost::asio::post(pool_, [self = shared_from_this()] { self->DecodeStep(); });
      }
      c.scheduled = false;
      if (!c.finished && !c.inbox.empty()) ScheduleLocked(index);
      complete = CompleteLocked();
    }
    if (request_.on_progress && !complete) {
      // Reported under its own lock, which Finish takes before `done`: no report runs during or
      // after `done` (found by ThreadSanitizer; a caller's state may be gone by then).
      std::lock_guard lock(progress_mutex_);
      if (!progress_closed_) request_.on_progress(progress);
    }
    if (complete) Finish();
  }

  bool CompleteLocked() {
    if (!decoder_done_ || completed_) return false;
    for (const auto& c : consumers_) {
      if (!c->finished) return false;
    }
    completed_ = true;
    return true;
  }

  void Finish() {
    {
      std::lock_guard lock(progress_mutex_);
      progress_closed_ = true;
    }
    Status failure;
    {
      std::lock_guard lock(mutex_);
      failure = failure_;
    }
    if (!failure.ok()) {
      done_(failure);
      return;
    }
    TranscodeResult result;
    facts_.duration_ms = source_rate_ > 0 ? total_samples_ * 1000 / source_rate_ : 0;
    result.facts = facts_;
    if (analyzer_) analyzer_->Report(result.facts, request_.waveform_points);
    result.cpu_seconds = decode_cpu_;
    for (const auto& c : consumers_) result.cpu_seconds += c->cpu_seconds;
    for (const Encoder* e : encoders_) result.renditions.push_back(e->output());
    if (fingerprint_) {
      result.fingerprints = fingerprint_->TakePrints();
      result.fingerprint_cpu_seconds = fingerprint_->cpu_seconds;
    }
    done_(std::move(result));
  }

  boost::asio::thread_pool& pool_;
  TranscodeRequest request_;
  std::function<void(StatusOr<TranscodeResult>)> done_;

  // Decoder state: touched only by the decoder step (one at a time).
  InputFormatPtr input_;
  CodecContextPtr decoder_;
  PacketPtr packet_;
  FramePtr decoded_;
  int stream_index_ = -1;
  std::uint64_t input_size_ = 0;
  bool input_eof_ = false;
  int flush_spins_ = 0;
  int source_rate_ = 0;
  AVSampleFormat source_format_ = AV_SAMPLE_FMT_NONE;
  AVChannelLayout source_layout_{};
  std::int64_t total_samples_ = 0;
  double decode_cpu_ = 0;
  MediaFacts facts_;
  std::vector<std::unique_ptr<Branch>> branches_;
  // Made once by the decoder's first frame, before any consumer step is posted.
  std::vector<std::unique_ptr<Consumer>> consumers_;
  std::vector<Encoder*> encoders_;  // the encoders among consumers_, in the request's order
  Analyzer* analyzer_ = nullptr;
  FingerprintConsumer* fingerprint_ = nullptr;

  std::mutex mutex_;
  Status failure_;             // guarded by mutex_
  bool decoder_parked_ = false;  // guarded by mutex_
  bool decoder_done_ = false;    // guarded by mutex_
  bool completed_ = false;       // guarded by mutex_
  std::mutex progress_mutex_;
  bool progress_closed_ = false;  // guarded by progress_mutex_: set before `done` is called
};

}  // namespace

void StartTranscode(boost::asio::thread_pool& pool, TranscodeRequest request,
                    std::function<void(StatusOr<TranscodeResult>)> done) {
  QuietFfmpegLogs();
  Status refused;
  if (request.renditions.empty() && !request.analyze && request.fingerprint_speeds.empty()) {
    refused = Status(StatusCode::kInvalidArgument, "nothing to produce");
  }
  for (double speed : request.fingerprint_speeds) {
    // Fingerprinter would clamp a speed silently; a caller asking for one out of range has a bug.
    if (!(speed >= 0.5 && speed <= 2.0)) {
      refused = Status(StatusCode::kInvalidArgument, "a fingerprint speed must be in [0.5, 2]");
    }
  }
  if (!refused.ok()) {
    boost::asio::post(pool, [done = std::move(done), refused] { done(refused); });
    return;
  }
  std::make_shared<Pipeline>(pool, std::move(request), std::move(done))->Start();
}

StatusOr<TranscodeResult> TranscodeAndWait(boost::asio::thread_pool& pool, TranscodeRequest request) {
  std::promise<StatusOr<TranscodeResult>> promise;
  auto future = promise.get_future();
  StartTranscode(pool, std::move(request),
                 [&promise](StatusOr<TranscodeResult> result) { promise.set_value(std::move(result)); });
  return future.get();
}

}  // namespace plyr::transcoder

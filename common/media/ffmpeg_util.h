// Owning handles for FFmpeg objects and FFmpeg error text: the one place that wraps FFmpeg's
// manual memory management for every service that decodes or encodes audio.
#pragma once

#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libswresample/swresample.h>
}

namespace plyr::media {

struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct SwrDeleter {
  void operator()(SwrContext* swr) const { swr_free(&swr); }
};
struct FifoDeleter {
  void operator()(AVAudioFifo* fifo) const { av_audio_fifo_free(fifo); }
};
// An input opened with avformat_open_input.
struct InputFormatDeleter {
  void operator()(AVFormatContext* context) const { avformat_close_input(&context); }
};
// An output: closes its file (if still open) and frees the context.
struct OutputFormatDeleter {
  void operator()(AVFormatContext* context) const {
    if (context && context->pb && !(context->oformat->flags & AVFMT_NOFILE)) avio_closep(&context->pb);
    avformat_free_context(context);
  }
};

using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using SwrPtr = std::unique_ptr<SwrContext, SwrDeleter>;
using FifoPtr = std::unique_ptr<AVAudioFifo, FifoDeleter>;
using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatDeleter>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatDeleter>;

// av_strerror's text for an FFmpeg error code.
std::string AvErrorText(int error);

// Routes FFmpeg's own log lines (decoder complaints about a damaged file, for example) to our log
// at debug level, once per process; a job reports what matters in its own error.
void QuietFfmpegLogs();

}  // namespace plyr::media

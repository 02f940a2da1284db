// AvfilterLibrary: libavfilter, loaded the first time a job measures loudness rather than when
// the process starts.
//
// Why: libavfilter and the 32 shared libraries it brings cost every plyr-core process about 16 ms
// of start-up in the dynamic loader (bench/RESULTS.md), which only the transcoder's loudness meter
// (EBU R128 through the ebur128 filter) needs; `plyr-core fingerprint`, `plyr-core job` and the
// other services never do. The functions are taken from the soname the headers were built for.
//
// Thread-safe: Get loads once; the functions may be called from any thread.
#pragma once

#include <cstdint>  // before FFmpeg's headers, which need UINT64_C
#include <memory>

extern "C" {
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
}

#include "common/status.h"

namespace plyr::transcoder {

struct AvfilterLibrary {
  decltype(&avfilter_graph_alloc) graph_alloc = nullptr;
  decltype(&avfilter_graph_free) graph_free = nullptr;
  decltype(&avfilter_get_by_name) get_by_name = nullptr;
  decltype(&avfilter_graph_create_filter) graph_create_filter = nullptr;
  decltype(&avfilter_link) link = nullptr;
  decltype(&avfilter_graph_config) graph_config = nullptr;
  decltype(&av_buffersrc_add_frame) buffersrc_add_frame = nullptr;
  decltype(&av_buffersink_get_frame) buffersink_get_frame = nullptr;

  // The library, loaded on the first call; Unavailable (naming the file) when it cannot be.
  static StatusOr<const AvfilterLibrary*> Get();
};

// An AVFilterGraph freed through the loaded library.
struct FilterGraphDeleter {
  const AvfilterLibrary* library = nullptr;
  void operator()(AVFilterGraph* graph) const { library->graph_free(&graph); }
};
using FilterGraphPtr = std::unique_ptr<AVFilterGraph, FilterGraphDeleter>;

}  // namespace plyr::transcoder

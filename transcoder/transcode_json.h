// The JSON shapes of a transcode's facts and renditions, shared by the job API, the job's stored
// result and the `plyr-core transcode` command.
#pragma once

#include <boost/json/object.hpp>

#include "transcoder/transcode.h"

namespace plyr::transcoder {

// {"duration_ms", "codec", "container", "sample_rate", "channels", "channel_layout",
//  "decode_errors", "loudness": {"integrated_lufs", "range_lu", "true_peak_dbtp"} (null when
//  silent), "peaks": [[min, max], ...]}
boost::json::object FactsJson(const MediaFacts& facts);
// {"name", "codec", "bitrate", "content_type", "size", "duration_ms", "sample_rate", "channels"}
boost::json::object RenditionJson(const RenditionOutput& output);

}  // namespace plyr::transcoder

#include "transcoder/transcode_json.h"

#include <cmath>

#include <boost/json/array.hpp>

namespace plyr::transcoder {

namespace {

// Four decimals are plenty for a player's waveform and keep 1 000 pairs near 20 KB.
double Round4(double v) { return std::round(v * 1e4) / 1e4; }
double Round2(double v) { return std::round(v * 1e2) / 1e2; }

}  // namespace

boost::json::object FactsJson(const MediaFacts& facts) {
  boost::json::object loudness;
  auto put = [&](const char* key, const std::optional<double>& v) {
    if (v) {
      loudness[key] = Round2(*v);
    } else {
      loudness[key] = nullptr;
    }
  };
  put("integrated_lufs", facts.integrated_lufs);
  put("range_lu", facts.loudness_range_lu);
  put("true_peak_dbtp", facts.true_peak_dbtp);
  boost::json::array peaks;
  peaks.reserve(facts.peaks.size());
  for (const auto& [lo, hi] : facts.peaks) peaks.push_back(boost::json::array{Round4(lo), Round4(hi)});
  return boost::json::object{{"duration_ms", facts.duration_ms},
                             {"codec", facts.codec},
                             {"container", facts.container},
                             {"sample_rate", facts.sample_rate},
                             {"channels", facts.channels},
                             {"channel_layout", facts.channel_layout},
                             {"decode_errors", facts.decode_errors},
                             {"loudness", std::move(loudness)},
                             {"peaks", std::move(peaks)}};
}

boost::json::object RenditionJson(const RenditionOutput& output) {
  return boost::json::object{{"name", output.spec.name},
                             {"codec", output.spec.codec},
                             {"bitrate", output.spec.bitrate},
                             {"content_type", output.spec.content_type},
                             {"size", output.size},
                             {"duration_ms", output.duration_ms},
                             {"sample_rate", output.sample_rate},
                             {"channels", output.channels}};
}

}  // namespace plyr::transcoder

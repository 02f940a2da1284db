#include "transcoder/avfilter_library.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include <libavutil/macros.h>

namespace plyr::transcoder {

namespace {

constexpr const char* kSoname = "libavfilter.so." AV_STRINGIFY(LIBAVFILTER_VERSION_MAJOR);

template <typename Function>
bool Take(void* handle, const char* name, Function* into) {
  *into = reinterpret_cast<Function>(dlsym(handle, name));
  return *into != nullptr;
}

StatusOr<AvfilterLibrary> Load() {
  // Never closed: the functions stay valid for the life of the process.
  void* handle = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return Status(StatusCode::kUnavailable,
                  std::string("cannot load ") + kSoname + " (the loudness meter): " + (why ? why : "unknown error"));
  }
  AvfilterLibrary library;
  const bool complete = Take(handle, "avfilter_graph_alloc", &library.graph_alloc) &&
                        Take(handle, "avfilter_graph_free", &library.graph_free) &&
                        Take(handle, "avfilter_get_by_name", &library.get_by_name) &&
                        Take(handle, "avfilter_graph_create_filter", &library.graph_create_filter) &&
                        Take(handle, "avfilter_link", &library.link) &&
                        Take(handle, "avfilter_graph_config", &library.graph_config) &&
                        Take(handle, "av_buffersrc_add_frame", &library.buffersrc_add_frame) &&
                        Take(handle, "av_buffersink_get_frame", &library.buffersink_get_frame);
  if (!complete) {
    return Status(StatusCode::kUnavailable, std::string(kSoname) + " lacks a function the loudness meter uses");
  }
  return library;
}

}  // namespace

StatusOr<const AvfilterLibrary*> AvfilterLibrary::Get() {
  static const StatusOr<AvfilterLibrary> loaded = Load();
  if (!loaded.ok()) return loaded.status();
  return &*loaded;
}

}  // namespace plyr::transcoder

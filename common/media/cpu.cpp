#include "common/media/cpu.h"

#include <cstdlib>

namespace plyr::media {

bool CpuHasAvx2() {
  static const bool avx2 = [] {
    if (std::getenv("PLYR_NO_AVX2") != nullptr) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return avx2;
}

}  // namespace plyr::media

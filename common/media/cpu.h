// What the CPU offers the audio loops that are compiled twice (for any x86-64, and with AVX2)
// and chosen at run time. (Not GCC's target_clones: its ifunc resolvers run before the
// sanitizers' runtimes start, and crash ThreadSanitizer builds.)
#pragma once

namespace plyr::media {

// True when the CPU runs AVX2, unless the environment sets PLYR_NO_AVX2 (so the tests can run the
// loops built for any x86-64 too); checked once.
bool CpuHasAvx2();

}  // namespace plyr::media

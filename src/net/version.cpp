// SPDX-License-Identifier: Apache-2.0
// evchan::version(): the version the library was built as.
#include <evchan/version.h>

namespace evchan {

// Compiled into the library, so it reports the headers the library was built
// with, not the ones a caller includes.
Version version() noexcept {
  return Version{EVCHAN_VERSION_MAJOR, EVCHAN_VERSION_MINOR, EVCHAN_VERSION_PATCH, EVCHAN_VERSION,
                 EVCHAN_VERSION_STRING};
}

}  // namespace evchan

// SPDX-License-Identifier: Apache-2.0
// requireDescriptors(): the hard descriptor limit, or a skipped test.
#include "support/posix/descriptor_limit.h"

#include <sys/resource.h>

#include <string>

#include <cppunit/extensions/HelperMacros.h>

#include "support/skip.h"

namespace evchan::test {

void requireDescriptors(long needed) {
  rlimit limit{};
  CPPUNIT_ASSERT(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < static_cast<rlim_t>(needed)) {
    EVCHAN_SKIP("RLIMIT_NOFILE " + std::to_string(limit.rlim_cur) + " is below " + std::to_string(needed));
  }
}

}  // namespace evchan::test

// SPDX-License-Identifier: Apache-2.0
// requireDescriptors(): the hard descriptor limit, or a skipped test;
// FullDescriptorTable: none left.
#include "support/posix/descriptor_limit.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <cppunit/extensions/HelperMacros.h>

#include "support/skip.h"

// The vptr check's cache, which UBSan's runtime defines only when that
// check is linked in: a weak reference is null everywhere else.
extern "C" __attribute__((weak)) const unsigned long __ubsan_vptr_type_cache[];

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

FullDescriptorTable::FullDescriptorTable() {
  CPPUNIT_ASSERT(getrlimit(RLIMIT_NOFILE, &saved_) == 0);
  const int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CPPUNIT_ASSERT(probe >= 0);
  close(probe);
  int highest = probe;
  for (int fd = probe; fd < probe + 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  rlimit lowered = saved_;
  lowered.rlim_cur = static_cast<rlim_t>(highest + 8);
  CPPUNIT_ASSERT(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  try {
    for (;;) {
      const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        CPPUNIT_ASSERT_EQUAL(EMFILE, errno);
        break;
      }
      fillers_.push_back(fd);
    }
    CPPUNIT_ASSERT(!fillers_.empty());
  } catch (...) {
    restore();  // no destructor runs for a constructor that throws
    throw;
  }
}

FullDescriptorTable::~FullDescriptorTable() { restore(); }

void FullDescriptorTable::restore() noexcept {
  for (int fd : fillers_) close(fd);
  fillers_.clear();
  setrlimit(RLIMIT_NOFILE, &saved_);
}

void FullDescriptorTable::release() {
  close(fillers_.back());
  fillers_.pop_back();
}

void skipUnderUbsanVptrCheck() {
  // Through a volatile copy: GCC assumes an array's address is never null
  // (-Waddress), which a weak declaration makes untrue.
  const unsigned long* volatile cache = __ubsan_vptr_type_cache;
  if (cache != nullptr) EVCHAN_SKIP("UBSan's vptr check needs a pipe(), which a full descriptor table refuses");
}

}  // namespace evchan::test

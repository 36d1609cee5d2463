// SPDX-License-Identifier: Apache-2.0
// For suites that need thousands of descriptors, or none left (POSIX).
#ifndef EVCHAN_TEST_SUPPORT_POSIX_DESCRIPTOR_LIMIT_H
#define EVCHAN_TEST_SUPPORT_POSIX_DESCRIPTOR_LIMIT_H

#include <sys/resource.h>

#include <vector>

namespace evchan::test {

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; the test
/// reports itself skipped (EVCHAN_SKIP) when that is below `needed`.
void requireDescriptors(long needed);

/// Fills the descriptor table: lowers the soft RLIMIT_NOFILE to a few above
/// the highest open descriptor and opens /dev/null until EMFILE.  release()
/// frees one slot; the destructor closes the rest and restores the limit.
///
/// Call skipUnderUbsanVptrCheck() before making one: whenever the small
/// per-process cache of UBSan's vptr check (-fsanitize=vptr, part of
/// -fsanitize=undefined) misses, it probes memory through pipe(), which
/// fails with the table full, and it reports a false "invalid vptr".
/// Which checks miss depends on where ASLR put the vtables, so no warm-up
/// avoids it.
class FullDescriptorTable {
 public:
  FullDescriptorTable();
  ~FullDescriptorTable();
  FullDescriptorTable(const FullDescriptorTable&) = delete;
  FullDescriptorTable& operator=(const FullDescriptorTable&) = delete;

  /// Frees one slot, e.g. for an accepted socket.
  void release();

 private:
  void restore() noexcept;

  rlimit saved_{};
  std::vector<int> fillers_;
};

/// Reports the test skipped (EVCHAN_SKIP) in a build with UBSan's vptr
/// check, where a full descriptor table gives false reports (see above).
void skipUnderUbsanVptrCheck();

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_DESCRIPTOR_LIMIT_H

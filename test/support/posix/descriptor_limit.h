// SPDX-License-Identifier: Apache-2.0
// For suites that open thousands of descriptors (POSIX).
#ifndef EVCHAN_TEST_SUPPORT_POSIX_DESCRIPTOR_LIMIT_H
#define EVCHAN_TEST_SUPPORT_POSIX_DESCRIPTOR_LIMIT_H

namespace evchan::test {

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; the test
/// reports itself skipped (EVCHAN_SKIP) when that is below `needed`.
void requireDescriptors(long needed);

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_POSIX_DESCRIPTOR_LIMIT_H

// SPDX-License-Identifier: Apache-2.0
// Reporting a test case as skipped when the machine lacks a feature.
#ifndef EVCHAN_TEST_SUPPORT_SKIP_H
#define EVCHAN_TEST_SUPPORT_SKIP_H

#include <stdexcept>
#include <string>

namespace evchan::test {

/// Thrown by EVCHAN_SKIP; the runner reports the test as SKIP with the reason.
class SkipTest : public std::runtime_error {
 public:
  explicit SkipTest(const std::string& reason) : std::runtime_error(reason) {}
};

}  // namespace evchan::test

/// Ends the current test case as skipped, e.g. when the kernel has no IPv6.
#define EVCHAN_SKIP(reason) throw ::evchan::test::SkipTest(reason)

#endif  // EVCHAN_TEST_SUPPORT_SKIP_H

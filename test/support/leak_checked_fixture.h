// SPDX-License-Identifier: Apache-2.0
// A CppUnit fixture base that fails a test which leaves descriptors open.
#ifndef EVCHAN_TEST_SUPPORT_LEAK_CHECKED_FIXTURE_H
#define EVCHAN_TEST_SUPPORT_LEAK_CHECKED_FIXTURE_H

#include <cppunit/extensions/HelperMacros.h>

namespace evchan::test {

/// Counts the process's open descriptors in setUp() and asserts in
/// tearDown() that the test closed every one it opened.  Derived fixtures
/// that override setUp()/tearDown() must call these.
class LeakCheckedFixture : public CppUnit::TestFixture {
 public:
  void setUp() override;
  void tearDown() override;

 private:
  int descriptorsAtStart_ = -1;
};

/// The number of open descriptors of this process, -1 where unknown.
int openDescriptorCount();

/// openDescriptorCount() less the sockets connected to a name server's
/// port (53): the system resolver's own.  A lookup a cancel abandoned
/// keeps its socket until the name server answers or the resolver gives
/// up, and where the server drops queries that has been seen to take 31 s
/// (glibc's default: 5 s a try, two tries, and it may retry the A and AAAA
/// queries one by one).  evchan opens no such socket, so leaving them out
/// hides none of its leaks.
int openDescriptorCountBesidesNameServerSockets();

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_LEAK_CHECKED_FIXTURE_H

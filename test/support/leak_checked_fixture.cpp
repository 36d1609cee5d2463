// SPDX-License-Identifier: Apache-2.0
// LeakCheckedFixture; the host counts descriptors (openDescriptorCount() in
// support/posix/ and support/win32/descriptor_count.cpp).
#include "support/leak_checked_fixture.h"

namespace evchan::test {

void LeakCheckedFixture::setUp() { descriptorsAtStart_ = openDescriptorCount(); }

void LeakCheckedFixture::tearDown() {
  if (descriptorsAtStart_ < 0) return;
  // Tests join every thread they start, so everything they opened must be
  // closed by now.
  CPPUNIT_ASSERT_EQUAL_MESSAGE("descriptors open after the test (leak)", descriptorsAtStart_,
                               openDescriptorCount());
}

}  // namespace evchan::test

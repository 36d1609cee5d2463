// SPDX-License-Identifier: Apache-2.0
// The child of test/check-case-timeout: a suite whose middle case hangs, to
// show that test_main's watchdog ends it (EVCHAN_TEST_CASE_TIMEOUT) and
// that the driver records that case as failed and runs the one after it.
#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <thread>

class CaseTimeoutChild : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(CaseTimeoutChild);
  CPPUNIT_TEST(testBefore);
  CPPUNIT_TEST(testHangs);
  CPPUNIT_TEST(testAfter);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testBefore() { CPPUNIT_ASSERT_EQUAL(2, 1 + 1); }
  void testHangs() {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  void testAfter() { CPPUNIT_ASSERT_EQUAL(4, 2 + 2); }
};

CPPUNIT_TEST_SUITE_REGISTRATION(CaseTimeoutChild);

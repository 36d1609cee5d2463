// SPDX-License-Identifier: Apache-2.0
// CPPUNIT_TEST_SUITE with the suite's name given as a string.
#ifndef EVCHAN_TEST_SUPPORT_NAMED_SUITE_H
#define EVCHAN_TEST_SUPPORT_NAMED_SUITE_H

#include <cppunit/extensions/HelperMacros.h>

// CPPUNIT_TEST_SUITE with a suite name given as a string: CppUnit 1.15 has
// no CPPUNIT_TEST_SUITE_NAMED, and its typeid-based name of a template
// instance would read "EventChannelTest<(evchan::Backend)1>".
#define EVCHAN_TEST_SUITE_NAMED(ATestFixtureType, suiteName)                          \
 public:                                                                              \
  typedef ATestFixtureType TestFixtureType;                                           \
                                                                                      \
 private:                                                                             \
  static const CPPUNIT_NS::TestNamer& getTestNamer__() {                              \
    static CPPUNIT_NS::TestNamer testNamer(suiteName);                                \
    return testNamer;                                                                 \
  }                                                                                   \
                                                                                      \
 public:                                                                              \
  typedef CPPUNIT_NS::TestSuiteBuilderContext<TestFixtureType> TestSuiteBuilderContextType; \
                                                                                      \
  static void addTestsToSuite(CPPUNIT_NS::TestSuiteBuilderContextBase& baseContext) { \
    TestSuiteBuilderContextType context(baseContext)

#endif  // EVCHAN_TEST_SUPPORT_NAMED_SUITE_H

// SPDX-License-Identifier: Apache-2.0
// Tests of <evchan/version.h>: the macros agree with each other, with
// evchan::version() and with the version configure was given (AC_INIT's,
// passed in as EVCHAN_CONFIGURED_VERSION).
#include <cppunit/extensions/HelperMacros.h>

// The umbrella header, so that the test also shows it brings version.h in.
#include <evchan/evchan.h>

#include <string>

#ifndef EVCHAN_CONFIGURED_VERSION
#error "build this suite with -DEVCHAN_CONFIGURED_VERSION='\"x.y.z\"' (Makefile.am does)"
#endif

// EVCHAN_VERSION packs minor and patch in two decimal digits each.
static_assert(EVCHAN_VERSION_MINOR >= 0 && EVCHAN_VERSION_MINOR < 100, "minor fits in EVCHAN_VERSION");
static_assert(EVCHAN_VERSION_PATCH >= 0 && EVCHAN_VERSION_PATCH < 100, "patch fits in EVCHAN_VERSION");
// And it is usable where only the preprocessor runs.
#if !defined(EVCHAN_VERSION) || EVCHAN_VERSION < 0
#error "EVCHAN_VERSION is not a preprocessor number"
#endif

namespace {

std::string dotted(int major, int minor, int patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace

class VersionTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(VersionTest);
  CPPUNIT_TEST(testNumberPacksTheParts);
  CPPUNIT_TEST(testStringSpellsTheParts);
  CPPUNIT_TEST(testHeadersAreTheConfiguredVersion);
  CPPUNIT_TEST(testLibraryReportsTheHeadersVersion);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testNumberPacksTheParts() {
    CPPUNIT_ASSERT_EQUAL(EVCHAN_VERSION_MAJOR * 10000 + EVCHAN_VERSION_MINOR * 100 + EVCHAN_VERSION_PATCH,
                         EVCHAN_VERSION);
  }

  void testStringSpellsTheParts() {
    CPPUNIT_ASSERT_EQUAL(dotted(EVCHAN_VERSION_MAJOR, EVCHAN_VERSION_MINOR, EVCHAN_VERSION_PATCH),
                         std::string(EVCHAN_VERSION_STRING));
  }

  void testHeadersAreTheConfiguredVersion() {
    CPPUNIT_ASSERT_EQUAL(std::string(EVCHAN_CONFIGURED_VERSION), std::string(EVCHAN_VERSION_STRING));
  }

  void testLibraryReportsTheHeadersVersion() {
    const evchan::Version library = evchan::version();
    CPPUNIT_ASSERT_EQUAL(EVCHAN_VERSION_MAJOR, library.major);
    CPPUNIT_ASSERT_EQUAL(EVCHAN_VERSION_MINOR, library.minor);
    CPPUNIT_ASSERT_EQUAL(EVCHAN_VERSION_PATCH, library.patch);
    CPPUNIT_ASSERT_EQUAL(EVCHAN_VERSION, library.number);
    CPPUNIT_ASSERT(library.string != nullptr);
    CPPUNIT_ASSERT_EQUAL(std::string(EVCHAN_VERSION_STRING), std::string(library.string));
    // The string lives as long as the program: a second call sees the same.
    CPPUNIT_ASSERT_EQUAL(std::string(library.string), std::string(evchan::version().string));
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(VersionTest);

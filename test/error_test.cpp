// SPDX-License-Identifier: Apache-2.0
// Tests of apr_category(), evchan_category() and SystemError.
#include <apr_errno.h>

#include <cppunit/extensions/HelperMacros.h>

#include <evchan/error.h>
#include <evchan/system_error.h>

#include "support/host_behaviour.h"

#include <string>

class ErrorTest : public CppUnit::TestFixture {
  CPPUNIT_TEST_SUITE(ErrorTest);
  CPPUNIT_TEST(testAprSuccessIsNoError);
  CPPUNIT_TEST(testAprMessageComesFromAprStrerror);
  CPPUNIT_TEST(testAprStatusesMatchPortableConditions);
  CPPUNIT_TEST(testAprErrnoFallsBackToGenericConditions);
  CPPUNIT_TEST(testOutOfSocketsIsTooManyFilesOpen);
  CPPUNIT_TEST(testAprOwnStatusKeepsItsCategory);
  CPPUNIT_TEST(testEvchanErrorsHaveMessagesAndConditions);
  CPPUNIT_TEST(testSystemErrorNamesOperationAndPeer);
  CPPUNIT_TEST(testThrowIfErrorOnlyThrowsOnError);
  CPPUNIT_TEST_SUITE_END();

 public:
  void testAprSuccessIsNoError() {
    CPPUNIT_ASSERT(!evchan::makeAprError(APR_SUCCESS));
    CPPUNIT_ASSERT(evchan::makeAprError(APR_EOF));
  }

  void testAprMessageComesFromAprStrerror() {
    char expected[256];
    apr_strerror(APR_TIMEUP, expected, sizeof expected);
    const std::error_code ec = evchan::makeAprError(APR_TIMEUP);
    CPPUNIT_ASSERT_EQUAL(std::string(expected), ec.message());
    CPPUNIT_ASSERT_EQUAL(std::string("apr"), std::string(ec.category().name()));
    CPPUNIT_ASSERT(ec.message().find("timeout") != std::string::npos);
  }

  void testAprStatusesMatchPortableConditions() {
    using evchan::makeAprError;
    CPPUNIT_ASSERT(makeAprError(APR_ECONNREFUSED) == std::errc::connection_refused);
    CPPUNIT_ASSERT(makeAprError(APR_ECONNRESET) == std::errc::connection_reset);
    CPPUNIT_ASSERT(makeAprError(APR_TIMEUP) == std::errc::timed_out);
    CPPUNIT_ASSERT(makeAprError(APR_ETIMEDOUT) == std::errc::timed_out);
    CPPUNIT_ASSERT(makeAprError(APR_EPIPE) == std::errc::broken_pipe);
    CPPUNIT_ASSERT(makeAprError(APR_EAGAIN) == std::errc::resource_unavailable_try_again);
    CPPUNIT_ASSERT(makeAprError(APR_ECONNABORTED) == std::errc::connection_aborted);
    // A different condition must not compare equal.
    CPPUNIT_ASSERT(makeAprError(APR_ECONNREFUSED) != std::errc::timed_out);
  }

  void testAprErrnoFallsBackToGenericConditions() {
    // An OS error APR has no APR_STATUS_IS_ test for (on POSIX an errno
    // value, on Windows a Winsock code) still compares equal to its
    // condition, and its message is APR's text for it.
    const apr_status_t status = APR_FROM_OS_ERROR(evchan::test::addressInUseOsError());
    const std::error_code ec = evchan::makeAprError(status);
    CPPUNIT_ASSERT(ec == std::errc::address_in_use);
    char text[256];
    CPPUNIT_ASSERT_EQUAL(std::string(apr_strerror(status, text, sizeof text)), ec.message());
  }

  // acceptWithBackoff() waits on too_many_files_open: Windows' "out of
  // sockets" (WSAEMFILE) must say so too.  Before, it compared equal to
  // no condition there, and the back-off gave up at once.
  void testOutOfSocketsIsTooManyFilesOpen() {
    const std::error_code ec = evchan::makeAprError(APR_FROM_OS_ERROR(evchan::test::outOfSocketsOsError()));
    CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::too_many_files_open);
  }

  void testAprOwnStatusKeepsItsCategory() {
    const std::error_code ec = evchan::makeAprError(APR_EOF);
    CPPUNIT_ASSERT(ec.default_error_condition().category() == evchan::apr_category());
    CPPUNIT_ASSERT(!ec.message().empty());
  }

  void testEvchanErrorsHaveMessagesAndConditions() {
    const std::error_code eof = evchan::Errc::end_of_stream;
    CPPUNIT_ASSERT_EQUAL(std::string("evchan"), std::string(eof.category().name()));
    CPPUNIT_ASSERT(eof.message().find("end of stream") != std::string::npos);
    CPPUNIT_ASSERT(eof == evchan::Errc::end_of_stream);
    const std::error_code nullBuffer = evchan::Errc::null_buffer;
    CPPUNIT_ASSERT(nullBuffer == std::errc::invalid_argument);
    CPPUNIT_ASSERT(std::error_code(evchan::Errc::port_out_of_range) == std::errc::invalid_argument);
    CPPUNIT_ASSERT(std::error_code(evchan::Errc::not_open) == std::errc::bad_file_descriptor);
    CPPUNIT_ASSERT(eof != std::errc::invalid_argument);
    for (int value = 1; value <= static_cast<int>(evchan::Errc::descriptor_too_large); ++value) {
      const std::string message = std::error_code(value, evchan::evchan_category()).message();
      CPPUNIT_ASSERT_MESSAGE("message for " + std::to_string(value),
                             message.find("unknown") == std::string::npos && !message.empty());
    }
  }

  void testSystemErrorNamesOperationAndPeer() {
    const evchan::SystemError error(evchan::makeAprError(APR_ECONNREFUSED), "connect", "127.0.0.1:9");
    const std::string what = error.what();
    CPPUNIT_ASSERT(what.find("connect") != std::string::npos);
    CPPUNIT_ASSERT(what.find("127.0.0.1:9") != std::string::npos);
    CPPUNIT_ASSERT(what.find(error.code().message()) != std::string::npos);
    CPPUNIT_ASSERT(error.code() == std::errc::connection_refused);
    CPPUNIT_ASSERT_EQUAL(std::string("connect"), error.operation());
    CPPUNIT_ASSERT_EQUAL(std::string("127.0.0.1:9"), error.peer());
    const evchan::SystemError noPeer(evchan::Errc::empty_host, "resolve");
    CPPUNIT_ASSERT(std::string(noPeer.what()).find("peer") == std::string::npos);
  }

  void testThrowIfErrorOnlyThrowsOnError() {
    evchan::throwIfError(std::error_code(), "read");
    CPPUNIT_ASSERT_THROW(evchan::throwIfError(evchan::Errc::not_open, "read"), evchan::SystemError);
    CPPUNIT_ASSERT_THROW(evchan::throwIfError(evchan::Errc::not_open, "read"), std::system_error);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(ErrorTest);

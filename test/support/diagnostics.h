// SPDX-License-Identifier: Apache-2.0
// Small helpers for readable assertion messages and timing in the suites.
#ifndef EVCHAN_TEST_SUPPORT_DIAGNOSTICS_H
#define EVCHAN_TEST_SUPPORT_DIAGNOSTICS_H

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <system_error>

#include <evchan/system_error.h>

namespace evchan::test {

using Clock = std::chrono::steady_clock;

/// "apr:111 (Connection refused)", or "no error".
inline std::string describe(const std::error_code& ec) {
  if (!ec) return "no error";
  return std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + " (" + ec.message() + ")";
}

/// What ended a call that throws when its wait fails: "returned",
/// "cancelled" (operation_canceled), "timed out", or a description.
inline std::string endOfCall(const std::function<void()>& call) {
  try {
    call();
    return "returned";
  } catch (const SystemError& e) {
    if (e.code() == std::errc::operation_canceled) return "cancelled";
    if (e.code() == std::errc::timed_out) return "timed out";
    return "SystemError " + describe(e.code());
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  } catch (...) {
    return "another exception";
  }
}

/// "elapsed 203 ms", for messages of timing assertions.
inline std::string elapsedText(Clock::duration elapsed) {
  return "elapsed " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()) +
         " ms";
}

/// How long `call` took.
template <class Call>
Clock::duration timed(Call&& call) {
  const Clock::time_point start = Clock::now();
  call();
  return Clock::now() - start;
}

}  // namespace evchan::test

/// Asserts that the std::error_code `ec` equals `expected` (a std::errc,
/// an evchan::Errc or an error code), naming both when it does not.
#define ASSERT_ERROR(expected, ec) \
  CPPUNIT_ASSERT_MESSAGE("expected " #expected ", got " + ::evchan::test::describe(ec), (ec) == (expected))
/// Asserts that the std::error_code `ec` holds no error, naming it if it does.
#define ASSERT_NO_ERROR(ec) CPPUNIT_ASSERT_MESSAGE("unexpected error " + ::evchan::test::describe(ec), !(ec))

#endif  // EVCHAN_TEST_SUPPORT_DIAGNOSTICS_H
